"""Subject access: everything held about a person, as JSON and as a readable page
(docs/data.md, Access).

``subject_access`` gathers their member row (region, interests, fields, status), the consent log,
every delivery, bounce and complaint, inbound mail from or about them, their event answers, their
desk account with its roles, sessions and audit lines, every other row whose text mentions their
address, and the workspace's files that mention them — for a member, a desk-only person, or an
address erased earlier (then only its suppression and consent lines are left). It also says what
mailer cannot see: backups, other machines' logs, the relay's and the recipients' copies.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from mailer.audience import members
from mailer.errors import UnknownName
from mailer.models import (
    AuditEntry,
    BounceEvent,
    Campaign,
    DeskSession,
    InboundMessage,
    Suppression,
    UserRole,
    utcnow,
)
from mailer.rights import events, files
from mailer.rights.person import Person, find, mentions
from mailer.settings import Settings

NOT_HERE = (
    "backups of the database and the workspace (kept as the operator's backup plan says)",
    "logs on other machines: the web server's or proxy's access log, the relay's mail log",
    "copies delivered to the person's own mailbox, and anything the relay kept",
)


@dataclass(frozen=True)
class SubjectAccess:
    """Everything held about one person; ``as_dict`` is the JSON of `mailer members export`."""

    address: str
    address_hash: str
    exported_at: datetime
    member: dict[str, Any] | None
    suppression: dict[str, Any] | None
    consent_log: list[dict[str, Any]]
    mailings: list[dict[str, Any]]
    bounces: list[dict[str, Any]]
    inbound: list[dict[str, Any]]
    rsvps: list[dict[str, Any]]
    desk: dict[str, Any] | None
    mentions: list[dict[str, Any]]
    files: list[dict[str, Any]]
    files_not_read: list[str] = field(default_factory=list)
    not_held_here: list[str] = field(default_factory=lambda: list(NOT_HERE))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = members._jsonable(asdict(self))
        return out


def subject_access(session: Session, settings: Settings, address: str) -> SubjectAccess:
    """Everything held about the person at ``address`` (any spelling that normalises the same).
    Raises ``UnknownName`` when nothing at all is held about it."""
    person = find(session, address)
    held = session.scalar(select(Suppression).where(Suppression.address_hash.in_(person.hashes)))
    log = members.consent_log_of(session, list(person.hashes), person.member.id if person.member else None)
    found_files, not_read = files.mentions(settings, person.terms)
    other = [m for m in mentions(session, person)]
    if (
        person.member is None
        and person.user is None
        and held is None
        and not log
        and not other
        and not found_files
    ):
        raise UnknownName(
            f"nothing is held about {address!r}",
            field="email",
            hint="check the spelling; `mailer lists export` lists every member",
        )
    member_id = person.member.id if person.member else None
    return SubjectAccess(
        address=person.address,
        address_hash=person.address_hash,
        exported_at=utcnow(),
        member=members.record_of(session, person.member).as_dict() if person.member else None,
        suppression=asdict(members.SuppressionRecord.of(held)) if held else None,
        consent_log=[asdict(e) for e in log],
        mailings=members.mailings_of(session, member_id) if member_id else [],
        bounces=_bounces(session, person),
        inbound=_inbound(session, person),
        rsvps=events.rsvps_of(session, member_id, person.address),
        desk=_desk(session, person),
        mentions=[{"table": m.table, "column": m.column, "row": m.key} for m in other],
        files=[asdict(f) for f in found_files],
        files_not_read=not_read,
    )


def _bounces(session: Session, person: Person) -> list[dict[str, Any]]:
    who: list[ColumnElement[bool]] = [BounceEvent.address_hash.in_(person.hashes)]
    if person.member is not None:
        who.append(BounceEvent.member_id == person.member.id)
    rows = session.execute(
        select(BounceEvent, Campaign.slug)
        .outerjoin(Campaign, Campaign.id == BounceEvent.campaign_id)
        .where(or_(*who))
        .order_by(BounceEvent.id)
    ).all()
    return [
        {
            "kind": b.kind,
            "status": b.status,
            "diagnostic": b.diagnostic,
            "campaign": slug,
            "created_at": b.created_at,
            "inbound_id": b.inbound_id,
        }
        for b, slug in rows
    ]


def _inbound(session: Session, person: Person) -> list[dict[str, Any]]:
    """Inbound mail about them (a bounce or complaint naming them) or from them (its record
    mentions their address)."""
    about: ColumnElement[bool] = BounceEvent.address_hash.in_(person.hashes)
    if person.member is not None:
        about = or_(about, BounceEvent.member_id == person.member.id)
    linked = select(BounceEvent.inbound_id).where(about)
    text = [
        column.icontains(term, autoescape=True)
        for column in (
            InboundMessage.source,
            InboundMessage.subject,
            InboundMessage.detail,
            InboundMessage.message_id,
        )
        for term in person.terms
    ]
    rows = session.scalars(
        select(InboundMessage).where(or_(InboundMessage.id.in_(linked), *text)).order_by(InboundMessage.id)
    ).all()
    return [
        {
            "id": m.id,
            "kind": m.kind,
            "subject": m.subject,
            "detail": m.detail,
            "source": m.source,
            "message_id": m.message_id,
            "processed_at": m.processed_at,
        }
        for m in rows
    ]


def _desk(session: Session, person: Person) -> dict[str, Any] | None:
    user = person.user
    if user is None:
        return None
    roles = session.scalars(select(UserRole).where(UserRole.user_id == user.id).order_by(UserRole.id)).all()
    sessions = session.scalars(
        select(DeskSession).where(DeskSession.user_id == user.id).order_by(DeskSession.created_at)
    ).all()
    audit = session.scalars(
        select(AuditEntry).where(AuditEntry.user_id == user.id).order_by(AuditEntry.id)
    ).all()
    return {
        "account": {
            "email": user.email,
            "name": user.name,
            "created_at": user.created_at,
            "disabled_at": user.disabled_at,
            "has_password": user.password_hash is not None,
        },
        "roles": [
            {"role": r.role, "network": r.network, "region": r.region, "created_at": r.created_at}
            for r in roles
        ],
        "sessions": [
            {
                "created_at": s.created_at,
                "last_seen_at": s.last_seen_at,
                "expires_at": s.expires_at,
                "revoked_at": s.revoked_at,
                "user_agent": s.user_agent,
            }
            for s in sessions
        ],
        "audit": [
            {"action": a.action, "object": a.object, "detail": a.detail, "created_at": a.created_at}
            for a in audit
        ],
    }


# --- the readable page (`mailer members export --html FILE`) ------------------------------------

SECTIONS = (
    ("member", "Membership"),
    ("suppression", "Unsubscribed or suppressed"),
    ("consent_log", "Consent log"),
    ("mailings", "Mail sent to you"),
    ("bounces", "Bounces and complaints"),
    ("inbound", "Mail received from or about you"),
    ("rsvps", "Event answers"),
    ("desk", "Editors' desk account"),
    ("mentions", "Other records that mention your address"),
    ("files", "Files that mention you"),
    ("files_not_read", "Files that could not be looked through"),
    ("not_held_here", "Not held by this system"),
)


def to_html(access: SubjectAccess, organisation: str) -> str:
    """A plain, self-contained page of ``access`` for the person to read."""
    data = access.as_dict()
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>Your data held by {html.escape(organisation)}</title>",
        "<style>body{font-family:sans-serif;max-width:50rem;margin:1rem auto;padding:0 1rem;line-height:1.4}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2rem .4rem;text-align:left;"
        "vertical-align:top}</style></head><body>",
        f"<h1>Your data held by {html.escape(organisation)}</h1>",
        f"<p>For {html.escape(access.address)}, as of {access.exported_at:%d %B %Y at %H:%M} UTC.</p>",
    ]
    for key, title in SECTIONS:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(_html_value(data.get(key)))
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_value(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "<p>None.</p>"
    if isinstance(value, dict):
        rows = "".join(
            f"<tr><th scope='row'>{html.escape(str(k).replace('_', ' '))}</th><td>{_html_value(v)}</td></tr>"
            for k, v in value.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{_html_value(v)}</li>" for v in value) + "</ul>"
    return html.escape(str(value))
