"""The audience: who the members are, where they are, what they care about, what they agreed to,
and who must never be mailed again.

- ``tree``: the map as plain data: regions (a tree), interests, saved segments, postcode areas and
  networks, with lookups over them; no database, no files.
- ``segments``: the segment language, compiled to SQLAlchemy expressions over the map.
- ``networks``: ``lists/networks.toml`` read and checked; which network a region, a member or an issue
  belongs to, and who a mailing speaks as.
- ``shape``: the map read from ``lists/*.toml`` and synced to the database. The four import one
  another in one direction only: ``tree ← segments ← networks ← shape``.
- ``addresses``: validating and normalising addresses, and the hash that keys suppressions.
- ``importer``: CSV imports that never resubscribe anyone (read, apply, report).
- ``bulk``: fast bulk inserts for imports.
- ``members``: one person: show, export (subject access), unsubscribe, forget.
- ``suppression``: the never-mail-again list.
- ``consent``: subscribe, confirm, resubscribe-after-confirm, unsubscribe, preferences, and their
  consent-log lines: the one place consent changes.
- ``stats``: members and suppressions per region and interest.
"""
