"""What members chose themselves: per field, where and when, so that an import never undoes it.

A member's own change (preferences page, sign-up, unsubscribe) is newer than any CRM export's row,
which cannot know of it: an import keeps such a field as the member left it and lists it in its
report (docs/import.md, "Members' own choices"). ``record_member_choice`` is the one function
that notes it; ``set_status`` changes a member's mailable status with its source and time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer.models import Member, MemberChoice, utcnow

FIELDS: Final = ("name", "region", "interests", "status")
"""The fields whose member-made value an import keeps."""


def record_member_choice(session: Session, member_id: int, fields: Iterable[str], *, source: str) -> None:
    """Note that the member set ``fields`` themselves just now, from ``source`` (preferences,
    signup, one-click, link, mailto): a later import keeps those fields as they are."""
    wanted = [f for f in dict.fromkeys(fields) if f in FIELDS]
    if not wanted:
        return
    now = utcnow()
    dialect = session.get_bind().dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    for name in wanted:
        stmt = insert_(MemberChoice).values(member_id=member_id, field=name, source=source, created_at=now)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["member_id", "field"], set_={"source": source, "created_at": now}
            )
        )


def first_word(name: str) -> str:
    """The name a member who typed ``name`` themselves (sign-up, preferences) is greeted by: its
    first word ("" for no name)."""
    words = name.split()
    return words[0][:100] if words else ""


def set_status(session: Session, *, address_hash: str, status: str, source: str) -> None:
    """Set the mailable status of the member with ``address_hash`` (if any), with its source and time."""
    session.execute(
        update(Member)
        .where(Member.address_hash == address_hash)
        .values(status=status, status_source=source, status_at=utcnow())
        .execution_options(synchronize_session=False)
    )
