"""What the tests share, one module per job; a test file imports from here, never from another test file.

tests/ is on ``sys.path`` under pytest (its rootdir conftest, prepend import mode), so every test,
tests/hostile/ included, writes ``from support.smtp_server import SmtpTestServer``. Fixtures that
every test may take live in tests/conftest.py; the fixtures here (marked "fixture" below) are
imported by the test modules that use them, and listed in their ``__all__``.

- ``axe``: axe-core (tests/vendor/) run on a page in Chromium: no serious or critical violation.
- ``bounces``: the bounce corpus (tests/fixtures/bounces/) and what each fixture must be classified
  as, fixtures rewritten to a real send's deliveries (``adapt``, ``corpus_for``), a DSN for a
  message our relay received (``dsn_for``), and a snapshot of what processing can change.
- ``browser``: the app served by uvicorn (``free_port``, ``live_server``), what every page owes its
  readers (``check_page``), ``WIDTHS``; fixtures ``chromium``, ``tab``, ``pictures``.
- ``cli_runner``: ``MailerCli``, the command line run in-process (conftest's ``mailer_cli``).
- ``consent``: the demo workspace with Bo in both networks and its web app (``open_demo``), and
  readers of what a send and an unsubscribe recorded (networks left, consent log, suppressions).
- ``desk``: the desk's workspaces and app, signing people in, the CSRF values of its forms; fixtures
  ``workspace``, ``networks_workspace``, ``desk``, ``demo_desk``, ``hostile_desk``, ``clock``...
- ``hostile``: the hostile corpora's ``Case``, ``block_cases`` and ``assert_handled``;
  ``form_values`` (http/form-values.txt) and ``CONTROL``.
- ``issue_editor``: the desk's issue form on a commented issue; fixtures ``workspace``, ``editor``.
- ``members``: ten members inserted row by row for the planning tests (``MEMBERS``, ``add_members``).
- ``messages``: a message template's inputs (the seed variant, 240 awkward recipients, settings)
  and the wire-format checks (``check_wire_format``, ``dot_stuff``, ``parse``).
- ``networks``: the two-network demo workspace (fixture ``demo``), an issue sent to a Maildir
  (``send_issue``), the public app at a fixed time (``app_for``).
- ``rendering``: golden files (``check_golden``) and colour contrast (``Colours``, ``contrast``).
- ``seed``: facts of the seed newsletter that several tests check (its 18 highlights).
- ``sending``: a send to the SMTP test server (``Mailing``, conftest's ``mailing``; ``add_campaign``,
  ``add_members``, ``send``, ``sent_to``...).
- ``signatures``: DKIM signatures verified by dkimpy against a stub DNS (``dns_for``, ``verified``,
  ``parse_zone``).
- ``smtp_server``: ``SmtpTestServer``, a real aiosmtpd server that can misbehave (conftest's
  ``smtp_server`` and ``smtp_server_factory``).
"""
