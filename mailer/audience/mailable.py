"""Who may be mailed: the one predicate every count and every send uses.

A member may be mailed when their status is ``subscribed`` (not ``not-opted-in``, ``unsubscribed``
or ``cleaned``: see docs/import.md, "Consent is data") and their address is not suppressed. A
mailing of one network also leaves out the members who left that network's mail. ``lists count``,
``campaigns check`` and a send's confirmation all count with ``reachable``, and the send's snapshot
selects with the same condition, so the numbers they print are the members who would really be mailed.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session

from mailer.audience.suppression import suppressed_clause
from mailer.models import Member, NetworkLeave

SUBSCRIBED: Final = "subscribed"
NOT_OPTED_IN: Final = "not-opted-in"
UNSUBSCRIBED: Final = "unsubscribed"
CLEANED: Final = "cleaned"
STATUSES: Final = (SUBSCRIBED, NOT_OPTED_IN, UNSUBSCRIBED, CLEANED)
"""Every status, from the one that may be mailed to the most final: a "no" outranks a "yes"."""

RANK: Final = {status: rank for rank, status in enumerate(STATUSES)}


def worse(a: str | None, b: str | None) -> str | None:
    """The more final of two statuses (a "no" from anywhere wins over a "yes")."""
    if a is None:
        return b
    if b is None:
        return a
    return a if RANK[a] >= RANK[b] else b


def may_be_mailed() -> ColumnElement[bool]:
    """A condition on ``Member``: subscribed and not suppressed."""
    return and_(Member.status == SUBSCRIBED, suppressed_clause())


def not_left(network: str) -> ColumnElement[bool]:
    """A condition on ``Member``: has not left ``network`` (no ``network_leaves`` row for it)."""
    return ~exists().where(NetworkLeave.member_id == Member.id, NetworkLeave.network == network)


def reachable(condition: ColumnElement[bool], network: str = "") -> ColumnElement[bool]:
    """``condition`` (a compiled segment, which includes ``may_be_mailed``) narrowed to the members
    a mailing of ``network`` would reach ("": the workspace's only network, left by suppression)."""
    return and_(condition, not_left(network)) if network else condition


def count_reachable(session: Session, condition: ColumnElement[bool], network: str = "") -> int:
    """How many members a mailing to ``condition`` as ``network`` would really reach."""
    query = select(func.count()).select_from(Member).where(reachable(condition, network))
    return int(session.scalar(query) or 0)
