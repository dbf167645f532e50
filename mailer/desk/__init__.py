"""The editorial desk as a library: plain functions over the database, usable from Python, the
CLI, the web pages and tests without a web request.

- ``people``: persons, roles scoped to a network (and a region) and ``can(...)``;
- ``sessions``: one-time sign-in links and server-side sessions;
- ``passwords``: the optional password (Argon2id);
- ``audit``: the audit log;
- ``contribution_forms``: a contributor's item or event, checked; ``inbox``: the contributions
  waiting for an editor, accepted or declined;
- ``issuefile``: an issue's file loaded, changed and written back with its comments kept, refusing
  a write over someone else's; ``issueform``, ``formfields``, ``itemparts``: the issue form;
- ``approvals``: approvals bound to an issue's content and audience.

The pages that drive it live in ``mailer.web.desk``; nothing here imports from ``mailer.web``.
"""
