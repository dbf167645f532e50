"""The editorial desk's pages at ``/desk/``: each parses the request, calls the library
(``mailer.desk``) and renders. No SQL here: the library owns the database.

- ``common``: the signed-in check, CSRF, the page decorators and the session cookie;
- ``signin``, ``home`` (people), ``contributions`` (contribute, inbox), ``compose``, ``previews``,
  ``sendpage`` (approve, send, report): the pages; ``routes``: every route, mounted by
  ``mailer.web.app.create_app``.
"""
