"""Members' address hashes made again under the newest key of the suppression hash.

``mailer.audience.addresses.keys_of`` calls ``bring_up_to_date`` once per open database: when the
key recorded in ``address_key_state`` is not the newest (a new workspace, a rotation with
`mailer secret rotate-address-key`, or a database from before keyed hashes), every member's hash is
made again, and the suppressions, consent-log lines and bounce records under the old hash follow it,
in the session's transaction. Two processes doing it at once do the same work; the second finds
every hash already made. The suppressions of people erased earlier keep their old hash
(docs/data.md, The suppression hash).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from mailer.models import AddressKeyState, BounceEvent, ConsentEvent, Member, Suppression, utcnow
from mailer.secret_key import AddressKeys

CHUNK = 5000


def bring_up_to_date(session: Session, keys: AddressKeys, digest: Callable[[str], str]) -> int:
    """Make every member's hash under the newest key (``digest``: ``addresses.address_hash``'s HMAC
    under it) if the database was hashed under another; how many hashes changed."""
    state = session.get(AddressKeyState, 1)
    if state is not None and state.fingerprint == keys.fingerprint:
        keys.up_to_date = True
        return 0
    session.flush()
    changed = 0
    last = 0
    while True:
        rows = session.execute(
            select(Member.id, Member.email, Member.address_hash)
            .where(Member.id > last)
            .order_by(Member.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        moves = [
            {"old": r.address_hash, "new": new} for r in rows if (new := digest(r.email)) != r.address_hash
        ]
        if moves:
            _move(session, moves)
            changed += len(moves)
    if changed:
        session.expire_all()  # rows already loaded carry the old hashes
    if state is None:
        session.add(AddressKeyState(id=1, fingerprint=keys.fingerprint, members=changed, changed_at=utcnow()))
    else:
        state.fingerprint, state.members, state.changed_at = keys.fingerprint, changed, utcnow()
    session.flush()
    keys.up_to_date = True
    return changed


def _move(session: Session, moves: list[dict[str, str]]) -> None:
    """Each ``old`` hash becomes ``new`` in every table that keys by it."""
    conn = session.connection()
    for model in (Suppression, ConsentEvent, BounceEvent, Member):
        table: Table = model.__table__  # type: ignore[assignment]
        conn.execute(
            update(table)
            .where(table.c.address_hash == bindparam("old"))
            .values(address_hash=bindparam("new")),
            moves,
        )


def state(session: Session) -> int:
    """How many members' hashes the last change of key made again."""
    row = session.get(AddressKeyState, 1)
    return row.members if row is not None else 0
