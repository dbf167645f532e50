"""What the desk's previews read from the database: a named member (within the issue's network)
with the warnings about their copy, and the variants the issue's audience gets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience.networks import Network, member_network
from mailer.audience.shape import Shape
from mailer.compose import plan
from mailer.errors import MailerError
from mailer.issue.load import LoadedIssue
from mailer.models import Member
from mailer.preview import MemberChoice, find_member, member_warnings
from mailer.settings import Settings


def member_address(session: Session, member_id: int) -> str | None:
    """The address of the member a preview link names by id (a signed token, never the address)."""
    found = session.scalar(select(Member.email).where(Member.id == member_id))
    return None if found is None else str(found)


def looked_up(session: Session, email: str, *, by: int, now: datetime) -> int | None:
    """Record a desk user's look-up of a member by address (docs/data.md, Audit) and return the
    member's id (None: nobody has it)."""
    from mailer.desk import audit

    found = session.scalar(select(Member.id).where(Member.email == email))
    audit.record(
        session,
        "desk.member-lookup",
        by=by,
        object=email,
        detail="found" if found else "no such member",
        now=now,
    )
    return None if found is None else int(found)


def member(
    session: Session,
    settings: Settings,
    shape: Shape,
    loaded: LoadedIssue,
    email: str,
    *,
    network: Network | None,
    any_network: bool = False,
) -> tuple[MemberChoice, list[str]] | None:
    """The member at ``email`` and the warnings about their copy of ``loaded``; None when there
    is no such member, or they are outside ``network`` (unless ``any_network``: an admin of every
    network), so whether an address is a member elsewhere is not told."""
    try:
        who = find_member(session, email)
    except MailerError:
        return None
    theirs = member_network(shape, settings, who.region)  # the organisation's for no network's region
    if not any_network and theirs != network:
        return None
    return who, member_warnings(session, shape, loaded, who, None, settings)


@dataclass(frozen=True)
class Audience:
    """One variant the audience gets: its label, how many members, and the region and interests
    of its first group (to preview it as)."""

    label: str
    members: int
    region: str
    interests: tuple[str, ...]


def audience(session: Session, shape: Shape, loaded: LoadedIssue) -> list[Audience]:
    out = []
    for planned in plan(session, loaded, shape).variants:
        group = planned.groups[0] if planned.groups else None
        out.append(
            Audience(
                planned.label,
                planned.members,
                (group.region or "") if group else "",
                tuple(sorted(group.interests)) if group else (),
            )
        )
    return out
