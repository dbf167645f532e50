"""The audience: who the members are, where they are, what they care about, what they agreed to,
and who must never be mailed again.

- ``shape``: regions (a tree), interests, saved segments and postcode areas from ``lists/*.toml``.
- ``addresses``: validating and normalising addresses, and the hash that keys suppressions.
- ``importer``: CSV imports that never resubscribe anyone (read, apply, report).
- ``bulk``: fast bulk inserts for imports.
- ``segments``: the segment language, compiled to SQLAlchemy expressions.
- ``members``: one person: show, export (subject access), unsubscribe, forget.
- ``suppression``: the never-mail-again list.
- ``consent``: subscribe, confirm, resubscribe-after-confirm, unsubscribe, preferences, and their
  consent-log lines: the one place consent changes.
- ``stats``: members and suppressions per region and interest.
"""
