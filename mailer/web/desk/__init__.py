"""The editorial desk at ``/desk/`` (issue 14): people and roles scoped to networks and regions,
sign-in by a one-time mailed link, server-side sessions, CSRF on every form, an audit log.

- ``people``: persons, roles and ``can(person, action, network, region)``;
- ``sessions``: sign-in links and sessions, the cookie;
- ``passwords``: the optional password (Argon2id);
- ``audit``: the audit log;
- ``common``, ``signin``, ``home``: the pages; ``routes``: every route, mounted by
  ``mailer.web.app.create_app``.
"""
