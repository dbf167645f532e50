"""Approving an issue before it is sent: a second pair of eyes, bound to what they saw.

An approver of the issue's network (``people.may_approve``: never the issue's last editor, the
newest row of ``issue_edits``) approves the issue as it is: the approval keeps a SHA-256
(``fingerprint``) of the issue file's bytes and of its audience as resolved now (the audience
expression, the members per home region and per variant). Any later change to either (an edit of
the file, on the desk or on disk, or a change in who the audience reaches) gives another
fingerprint, and the approval no longer counts: the desk shows "edited since approval", and the
issue cannot be sent until someone approves it again. An approval can be withdrawn. Approvals and
withdrawals are written to the audit log.

Everything here is a library call on a SQLAlchemy session (``resolve`` reads the workspace's
file and the members); the pages are in ``mailer.web.desk.sendpage``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.audience.networks import Network, campaign_network
from mailer.audience.shape import Shape
from mailer.compose import VariantPlan, plan
from mailer.db import Database
from mailer.desk import audit, changes, people, wording
from mailer.desk.issuefile import last_editor
from mailer.desk.people import Person
from mailer.errors import MailerError
from mailer.issue import LoadedIssue, load_campaign
from mailer.issue.load import campaign_path
from mailer.models import Approval, User
from mailer.sending import SendPlan, plan_send
from mailer.settings import Settings


class ApprovalRefused(MailerError):
    """An approval that cannot be given: the person may not, or the issue changed meanwhile."""


@dataclass(frozen=True)
class Audience:
    """Who an issue reaches, as resolved at one moment: its audience expression, the members per
    home region (largest first) and per variant (key, label, members; largest first)."""

    expression: str
    total: int
    by_region: tuple[tuple[str, int], ...]
    by_variant: tuple[tuple[str, str, int], ...]

    @property
    def variants(self) -> list[tuple[str, int]]:
        """(label, members) of each variant."""
        return [(label, n) for _key, label, n in self.by_variant]

    def as_dict(self) -> dict[str, Any]:
        return {
            "audience": self.expression,
            "total": self.total,
            "by_region": [list(r) for r in self.by_region],
            "by_variant": [list(v) for v in self.by_variant],
        }


def audience_of(variants: VariantPlan) -> Audience:
    """The audience of a variant plan (``mailer.compose.plan``, or a send plan's ``prepared.plan``)."""
    regions: dict[str, int] = {}
    for planned in variants.variants:
        for group in planned.groups:
            label = variants.shape.label(group.region) if group.region else "(no region)"
            regions[label] = regions.get(label, 0) + group.members
    by_region = tuple(sorted(((k, n) for k, n in regions.items() if n), key=lambda r: (-r[1], r[0])))
    by_variant = tuple((p.variant.key, p.label, p.members) for p in variants.variants if p.members)
    return Audience(variants.audience, variants.total, by_region, by_variant)


def words(exc: MailerError) -> str:
    """An error's message and hint (an invalid issue's first problems) for a person on a page,
    in the desk's words (``wording``: no command-line options, no file lines)."""
    return wording.words(exc)


def fingerprint(data: bytes, audience: Audience) -> str:
    """The SHA-256 an approval is bound to: the issue file's bytes and its audience as resolved."""
    digest = hashlib.sha256()
    digest.update(b"mailer-approval-v1\0")
    digest.update(hashlib.sha256(data).hexdigest().encode("ascii"))
    digest.update(b"\0")
    digest.update(json.dumps(audience.as_dict(), sort_keys=True, ensure_ascii=True).encode("ascii"))
    return digest.hexdigest()


@dataclass(frozen=True)
class IssueNow:
    """An issue as it is now: its file (and that file's SHA-256, ``version``), the network it
    speaks as (``key``: that network in roles, "" for a workspace's only one), its audience, and
    the fingerprint an approval of it would carry."""

    loaded: LoadedIssue
    network: Network
    key: str
    version: str
    audience: Audience
    fingerprint: str
    data: bytes = b""

    @property
    def slug(self) -> str:
        return self.loaded.slug

    @property
    def title(self) -> str:
        return self.loaded.issue.title


def read_issue(settings: Settings, shape: Shape, slug: str) -> tuple[bytes, LoadedIssue]:
    """The issue file's bytes and the issue loaded from them (read again if it changed meanwhile);
    UnknownName for no such issue, InvalidInput for a broken one."""
    for _ in range(5):
        path: Path = campaign_path(settings.workspace, slug)
        before = path.read_bytes() if path.is_file() else b""
        loaded = load_campaign(settings.workspace, slug, shape)
        if path.read_bytes() == before:
            return before, loaded
    raise ApprovalRefused(
        f"the issue file of {slug!r} keeps changing", hint="wait until nobody is saving it and try again"
    )


def network_key(shape: Shape, network: Network) -> str:
    """A network's key in roles: its slug, or "" for the one network of a workspace without
    ``lists/networks.toml``."""
    return network.slug if shape.networks else ""


def resolve(session: Session, settings: Settings, shape: Shape, slug: str) -> IssueNow:
    """The issue ``slug`` as it is now (file, network, audience, fingerprint); raises for no such
    issue, a broken one, or one whose network cannot be told. Its network is the send's
    (``networks.campaign_network``, as ``sending.prepare`` finds it): in a workspace without
    ``lists/networks.toml`` the only one, whatever the file's ``network:`` says."""
    data, loaded = read_issue(settings, shape, slug)
    network = campaign_network(shape, settings, loaded.issue.network, audience=loaded.issue.audience)
    audience = audience_of(plan(session, loaded, shape))
    version = hashlib.sha256(data).hexdigest()
    return IssueNow(
        loaded, network, network_key(shape, network), version, audience, fingerprint(data, audience), data
    )


# ---------------------------------------------------------------------------------------------
# Approvals and who may give them


@dataclass(frozen=True)
class Given:
    """An approval given and not withdrawn."""

    id: int
    approver_id: int | None
    approver: str  # their name, else their address; "" when the person is gone
    fingerprint: str
    at: datetime


@dataclass(frozen=True)
class Standing:
    """Where an issue stands: its newest approval not withdrawn (if any), whether that approval
    is of the issue as it is now, and who edited it last."""

    approval: Given | None
    fingerprint: str
    last_editor_id: int | None

    @property
    def approved(self) -> bool:
        return self.approval is not None and self.approval.fingerprint == self.fingerprint

    @property
    def edited_since(self) -> bool:
        """Approved once, but the issue or its audience has changed since: the approval is void."""
        return self.approval is not None and self.approval.fingerprint != self.fingerprint

    @property
    def words(self) -> str:
        if self.approval is None:
            return "not approved yet"
        return "approved" if self.approved else "edited since approval"

    def as_dict(self) -> dict[str, Any]:
        given = self.approval
        return {
            "approved": self.approved,
            "edited_since_approval": self.edited_since,
            "approval": None
            if given is None
            else {"by": given.approver, "at": given.at.isoformat(), "fingerprint": given.fingerprint},
            "fingerprint": self.fingerprint,
        }


def standing(session: Session, slug: str, current: str) -> Standing:
    """How issue ``slug`` stands against ``current``, its fingerprint now."""
    found = _newest(session, slug)
    return Standing(found[0] if found else None, current, last_editor(session, slug))


def _newest(session: Session, slug: str) -> tuple[Given, str | None] | None:
    """The newest approval of ``slug`` not withdrawn, and the copy it keeps of what was approved."""
    row = session.execute(
        select(Approval, User.name, User.email)
        .outerjoin(User, User.id == Approval.approver_id)
        .where(Approval.slug == slug, Approval.withdrawn_at.is_(None))
        .order_by(Approval.created_at.desc(), Approval.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    approval, name, email = row
    given = Given(
        approval.id, approval.approver_id, name or email or "", approval.content_hash, approval.created_at
    )
    return given, approval.approved_copy


def may_approve(session: Session, person: Person, issue: IssueNow) -> bool:
    """Whether ``person`` may approve ``issue``: an approver (or admin) of its network who did not
    edit it last (``people.may_approve``)."""
    return people.may_approve(person, issue.key, last_editor(session, issue.slug))


def looked_at(session: Session, person: Person, issue: IssueNow) -> tuple[Standing, bool]:
    """How ``issue`` stands, and whether ``person`` may approve it."""
    return standing(session, issue.slug, issue.fingerprint), may_approve(session, person, issue)


def approve(session: Session, issue: IssueNow, person: Person, *, seen: str, now: datetime) -> Given:
    """Approve ``issue`` as ``person``, who saw it with fingerprint ``seen``: refused when they may
    not (``may_approve``) or when the issue is no longer what they saw. Written to the audit log."""
    if not may_approve(session, person, issue):
        if people.can(person, "approve", issue.key):
            raise ApprovalRefused(
                "you edited this issue last, so someone else must approve it",
                field="approver",
                hint="ask another approver of the network",
            )
        raise ApprovalRefused("your roles do not let you approve this network's issues", field="approver")
    if seen != issue.fingerprint:
        raise ApprovalRefused(
            "the issue or its audience changed after you opened it, so it was not approved",
            field="fingerprint",
            hint="look at it again as it is now, then approve",
        )
    existing = standing(session, issue.slug, issue.fingerprint)
    if existing.approved and existing.approval is not None:
        return existing.approval
    row = Approval(
        slug=issue.slug,
        approver_id=person.id,
        content_hash=issue.fingerprint,
        created_at=now,
        approved_copy=copy_of(issue),
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "issue.approve",
        by=person.id,
        object=issue.slug,
        detail=f"{issue.audience.total} members, {len(issue.audience.by_variant)} variants",
        now=now,
    )
    return Given(row.id, person.id, person.name or person.email, issue.fingerprint, now)


def copy_of(issue: IssueNow) -> str:
    """What an approval keeps of what was approved: the file's text and the audience, as JSON."""
    text = issue.data.decode("utf-8", errors="replace")
    return json.dumps({"issue": text, "audience": issue.audience.as_dict()}, ensure_ascii=False)


@dataclass(frozen=True)
class Since:
    """The issue now against its last approval still standing: ``approval`` (None: never
    approved, or every approval withdrawn), whether a copy of what was approved is kept
    (``kept``: approvals given before copies were kept have none), and what changed since
    (``changes``: None when there is nothing to compare)."""

    approval: Given | None
    kept: bool
    changes: changes.Changes | None


def since_approval(session: Session, issue: IssueNow) -> Since:
    """What changed in ``issue`` since its last approval still standing (``changes.compare``)."""
    found = _newest(session, issue.slug)
    if found is None:
        return Since(None, False, None)
    given, kept = found
    try:
        copy = json.loads(kept) if kept else None
    except ValueError:
        copy = None
    if not isinstance(copy, dict):
        return Since(given, False, None)
    now_text = issue.data.decode("utf-8", errors="replace")
    changed = changes.compare(
        str(copy.get("issue", "")), copy.get("audience") or {}, now_text, issue.audience.as_dict()
    )
    return Since(given, True, changed)


def may_withdraw(person: Person, issue: IssueNow) -> bool:
    """Whoever may approve the network's issues may withdraw an approval of one."""
    return people.can(person, "approve", issue.key)


def withdraw(session: Session, issue: IssueNow, person: Person, *, now: datetime) -> int:
    """Withdraw every approval of ``issue`` still standing; how many. Written to the audit log."""
    if not may_withdraw(person, issue):
        raise ApprovalRefused("your roles do not let you withdraw this network's approvals", field="approver")
    result = session.execute(
        update(Approval)
        .where(Approval.slug == issue.slug, Approval.withdrawn_at.is_(None))
        .values(withdrawn_at=now)
    )
    count = int(result.rowcount)  # type: ignore[attr-defined]
    if count:
        audit.record(
            session,
            "issue.approval.withdraw",
            by=person.id,
            object=issue.slug,
            detail=f"{count} withdrawn",
            now=now,
        )
    return count


# ---------------------------------------------------------------------------------------------
# Sending what was approved


@dataclass(frozen=True)
class Choice:
    """When to send: ``now``, or ``later`` at ``at`` (wall-clock in the timezone setting)."""

    when: str
    at: str


def may_send_as(person: Person, key: str, choice: Choice, *, approved: bool) -> bool:
    """Whether ``person`` may send (now) or schedule (later) an issue of network ``key``."""
    if choice.when == "later":
        return approved and people.can(person, "schedule", key)
    return people.may_send(person, key, approved=approved)


def plan_bound(
    db: Database, settings: Settings, shape: Shape, slug: str, choice: Choice
) -> tuple[SendPlan, str]:
    """The send plan of ``slug`` (queued for the workers, or scheduled ``choice.at``) and the
    fingerprint of the issue as it was planned, to check against its approval; raises before
    anything is written."""
    data, _loaded = read_issue(settings, shape, slug)
    planned = plan_send(db, settings, shape, slug, at=choice.at or None, to_workers=True)
    again, _ = read_issue(settings, shape, slug)
    if again != data:
        raise ApprovalRefused("the issue file changed while it was being read", hint="try again")
    return planned, fingerprint(data, audience_of(planned.prepared.plan))
