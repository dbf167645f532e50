"""The editorial desk as a library: plain functions over the database, usable from Python, the
CLI, the web pages and tests without a web request.

- ``people``: persons, roles scoped to a network (and a region), ``can(...)`` and what an admin
  does (take a role, sign someone out everywhere);
- ``sessions``: one-time sign-in links and server-side sessions; ``passwords``: the optional
  password (Argon2id); ``audit``: the audit log;
- ``contribution_forms``: a contributor's item or event, checked; ``inbox``: the contributions
  waiting for an editor, accepted into an issue's file or declined;
- ``issuefile``: an issue's file loaded, changed and written back with its comments kept,
  refusing a write over someone else's; ``issueform``, ``formfields``, ``itemparts``,
  ``fieldwrite``: the issue form; ``issues``: where an issue stands and who saved it;
- ``approvals``: approvals bound to an issue's content and audience; ``sends``: a test send, the
  confirmed send, a sent campaign; ``previews``: a member's copy and the audience's variants;
- ``forms``: the people, new-issue and send forms (``mailer.forms``); ``notifications``: the
  mails the desk sends people.

The pages that drive it live in ``mailer.web.desk``; nothing here imports from ``mailer.web``.
"""
