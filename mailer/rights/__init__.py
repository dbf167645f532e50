"""Members' rights over their data (docs/data.md): subject access (``access``), erasure
(``erasure``), retention (``retention``, `mailer purge` and the workers' daily chore).

It reads the audience, the sending queue, inbound mail and the desk's tables and files, so it comes
after ``mailer.desk`` and before ``mailer.chores``, which lists its purge chore.
"""
