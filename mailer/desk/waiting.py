"""What waits for a person on the desk: contributions to review, issues someone asked them to
approve, approved issues they may send. Their desk home lists it ("Waiting for you"); asking for
approval records an ``approval_asks`` row, which waits until an approval newer than it is given.

Cheap on purpose: it reads rows, never an issue file, so the home page stays fast however many
issues there are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.desk import audit, people
from mailer.desk.issuefile import last_editor
from mailer.desk.people import Person
from mailer.models import Approval, ApprovalAsk, Campaign, Contribution


@dataclass(frozen=True)
class Waiting:
    """One line of "Waiting for you": ``what`` in words, the page that deals with it, and how many."""

    what: str
    url: str
    count: int = 1
    network: str = ""


def ask_approval(session: Session, slug: str, network: str, *, by: int, now: datetime) -> int:
    """``by`` asks the approvers of ``network`` to approve issue ``slug``; the ask's id."""
    ask = ApprovalAsk(slug=slug, network=network, asked_by=by, asked_at=now)
    session.add(ask)
    session.flush()
    audit.record(session, "issue.ask-approval", by=by, object=slug, detail=network, now=now)
    return ask.id


def asked(session: Session, slugs: list[str] | None = None) -> dict[str, datetime]:
    """The issues asked to be approved and not approved since, with when they were asked last."""
    last_ask = select(ApprovalAsk.slug, func.max(ApprovalAsk.asked_at).label("at")).group_by(ApprovalAsk.slug)
    if slugs is not None:
        last_ask = last_ask.where(ApprovalAsk.slug.in_(slugs))
    last_approval = dict(
        session.execute(
            select(Approval.slug, func.max(Approval.created_at))
            .where(Approval.withdrawn_at.is_(None))
            .group_by(Approval.slug)
        ).all()
    )
    out: dict[str, datetime] = {}
    for slug, at in session.execute(last_ask).all():
        approved_at = last_approval.get(slug)
        if approved_at is None or approved_at < at:
            out[slug] = at
    return out


def _started(session: Session, slugs: list[str]) -> set[str]:
    """Of ``slugs``, those whose campaign has been scheduled or sent."""
    rows = session.scalars(select(Campaign.slug).where(Campaign.slug.in_(slugs), Campaign.status != "draft"))
    return set(rows)


def waiting_for(session: Session, person: Person, networks: Mapping[str, str]) -> list[Waiting]:
    """What waits for ``person`` in ``networks`` (each network's key to its slug in the desk's URLs)."""
    out: list[Waiting] = []
    asks = {a.slug: a for a in session.scalars(select(ApprovalAsk).order_by(ApprovalAsk.asked_at))}
    open_asks = asked(session)
    for key, slug in networks.items():
        if people.can(person, "review", key):
            new = session.scalar(
                select(func.count())
                .select_from(Contribution)
                .where(Contribution.network == key, Contribution.status == "new")
            )
            if new:
                words = "contribution" if new == 1 else "contributions"
                out.append(Waiting(f"{new} new {words} to review", f"/desk/networks/{slug}/inbox", new, key))
        for issue in sorted(open_asks):
            ask = asks[issue]
            if ask.network == key and people.may_approve(person, key, last_editor(session, issue)):
                out.append(
                    Waiting("An issue waits for your approval", f"/desk/issues/{issue}/approve", 1, key)
                )
        if people.can(person, "send", key):
            approved = [a.slug for a in asks.values() if a.network == key and a.slug not in open_asks]
            for issue in sorted(set(approved) - _started(session, approved)):
                out.append(
                    Waiting("An approved issue is ready to send", f"/desk/issues/{issue}/send", 1, key)
                )
    return out
