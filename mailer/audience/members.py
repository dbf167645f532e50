"""One member at a time: show, export (a subject access request), unsubscribe, forget (erasure).

``show`` and ``export`` include the networks whose mail the member left (``networks_left``); a
member who left every network is still not suppressed (only an unsubscribe from all mail is).

Every function takes the address in any spelling that normalises the same and raises
``UnknownName`` (with a hint) when nobody holds it; the lookups by id at the end (``mail_address``,
``members_added``) answer None or leave a missing member out instead, for a link or an import
that names one erased since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from mailer.audience import addresses, consent, suppression
from mailer.errors import InvalidInput, UnknownName
from mailer.models import (
    ConsentEvent,
    Member,
    MemberField,
    MemberInterest,
    NetworkLeave,
    Region,
    Suppression,
    utcnow,
)


@dataclass(frozen=True)
class SuppressionRecord:
    reason: str
    source: str
    campaign: str | None
    detail: str
    created_at: datetime

    @classmethod
    def of(cls, row: Suppression) -> SuppressionRecord:
        return cls(row.reason, row.source, row.campaign, row.detail, row.created_at)


@dataclass(frozen=True)
class NetworkLeaveRecord:
    """A network whose mail the member left (docs/decisions.md, Networks): how, prompted by which campaign,
    when."""

    network: str
    source: str
    campaign: str | None
    created_at: datetime


@dataclass(frozen=True)
class MemberRecord:
    """Everything in the member's own row, with their region, interests, fields and suppression."""

    id: int
    email: str
    name: str
    postcode: str
    region: str | None  # the slug, e.g. maidstone-medway-swale
    region_label: str | None  # e.g. South East › Kent › Maidstone, Medway & Swale
    interests: list[str]
    fields: dict[str, str]
    created_at: datetime
    updated_at: datetime
    suppression: SuppressionRecord | None
    mailed: int = 0  # campaigns sent to them (their relay accepted the message)
    last_mailed: str | None = None  # the latest of those campaigns' slug
    last_mailed_at: datetime | None = None
    networks_left: list[NetworkLeaveRecord] = field(default_factory=list)  # their mail is not sent to them
    first_name: str = ""  # whom the greeting names ("" greets "Hello,")
    status: str = "subscribed"  # mailable.STATUSES
    status_source: str = ""  # where the status came from: "import:FILE:COLUMN=VALUE", "signup", …
    status_at: datetime | None = None

    @property
    def suppressed(self) -> bool:
        return self.suppression is not None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["suppressed"] = self.suppressed
        out: dict[str, Any] = _jsonable(data)
        return out


@dataclass(frozen=True)
class ConsentRecord:
    action: str
    source: str
    wording: str
    campaign: str | None
    detail: str
    created_at: datetime
    network: str | None = None  # a sign-up's: the network, the form, the version of the wording
    form: str | None = None
    wording_version: str | None = None


@dataclass(frozen=True)
class ForgetReport:
    """What ``forget`` removed and kept."""

    address_hash: str
    interests_removed: int
    fields_removed: int
    consent_events_kept: int  # now holding only the address hash
    newly_suppressed: bool  # False when the address was already suppressed (it stays so)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _normalise(email: str) -> str:
    try:
        return addresses.normalise(email)
    except InvalidInput as exc:
        raise UnknownName(
            f"{email!r} is not a valid address, so no member has it",
            field="email",
            hint=exc.problems[0].message if exc.problems else None,
        ) from None


def _unknown(session: Session, email: str, normalised: str) -> UnknownName:
    erased = session.scalar(
        select(func.max(ConsentEvent.created_at)).where(
            ConsentEvent.address_hash.in_(addresses.hash_candidates(session, normalised)),
            ConsentEvent.action == "erase",
        )
    )
    if erased is not None:
        return UnknownName(
            f"no member has the address {email!r}: its data was erased on {erased:%Y-%m-%d}",
            field="email",
            hint="only its suppression remains, so it will never be mailed or imported again",
        )
    return UnknownName(
        f"no member has the address {email!r}",
        field="email",
        hint="check the spelling; `mailer lists export` lists every member",
    )


def _member(session: Session, email: str) -> Member:
    normalised = _normalise(email)
    member = session.scalar(select(Member).where(Member.email == normalised))
    if member is None:
        raise _unknown(session, email, normalised)
    return member


def _region_label(session: Session, region: Region | None) -> str | None:
    if region is None:
        return None
    slugs = [s for s in region.path.split("/") if s]
    rows = session.execute(select(Region.slug, Region.name).where(Region.slug.in_(slugs)))
    names = {slug: name for slug, name in rows}
    return " › ".join(names.get(s, s) for s in slugs)


def _mailed(session: Session, member_id: int) -> tuple[int, str | None, datetime | None]:
    """How many campaigns were sent to the member, and the latest one's slug and time."""
    from mailer.models import Campaign, Delivery

    sent = (Delivery.member_id == member_id) & (Delivery.status == "sent")
    count = session.scalar(select(func.count()).select_from(Delivery).where(sent)) or 0
    if not count:
        return 0, None, None
    latest = session.execute(
        select(Campaign.slug, Delivery.sent_at)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(sent)
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(1)
    ).one()
    return count, latest.slug, latest.sent_at


def record_of(session: Session, member: Member) -> MemberRecord:
    """The member's own row as a record (subject access reads it: mailer/rights/access.py)."""
    held = session.get(Suppression, member.address_hash)
    mailed, last, last_at = _mailed(session, member.id)
    return MemberRecord(
        id=member.id,
        email=member.email,
        name=member.name,
        postcode=member.postcode,
        region=member.region.slug if member.region else None,
        region_label=_region_label(session, member.region),
        interests=[i.slug for i in member.interests],
        fields={f.name: f.value for f in member.fields},
        created_at=member.created_at,
        updated_at=member.updated_at,
        suppression=SuppressionRecord.of(held) if held else None,
        mailed=mailed,
        last_mailed=last,
        last_mailed_at=last_at,
        first_name=member.first_name,
        status=member.status,
        status_source=member.status_source,
        status_at=member.status_at,
        networks_left=_networks_left(session, member.id),
    )


def _networks_left(session: Session, member_id: int) -> list[NetworkLeaveRecord]:
    rows = session.scalars(
        select(NetworkLeave).where(NetworkLeave.member_id == member_id).order_by(NetworkLeave.network)
    )
    return [NetworkLeaveRecord(r.network, r.source, r.campaign, r.created_at) for r in rows]


def show(session: Session, email: str) -> MemberRecord:
    """The member with address ``email``."""
    return record_of(session, _member(session, email))


def consent_log(session: Session, address_hash: str, member_id: int | None = None) -> list[ConsentRecord]:
    """The consent-log lines for an address (by hash, and by member id where there is one), oldest first."""
    return consent_log_of(session, [address_hash], member_id)


def consent_log_of(session: Session, hashes: list[str], member_id: int | None = None) -> list[ConsentRecord]:
    """``consent_log`` for an address whose lines may be under several hashes (an older key's)."""
    where: ColumnElement[bool] = ConsentEvent.address_hash.in_(hashes)
    if member_id is not None:
        where = where | (ConsentEvent.member_id == member_id)
    rows = session.scalars(
        select(ConsentEvent).where(where).order_by(ConsentEvent.created_at, ConsentEvent.id)
    )
    return [
        ConsentRecord(
            e.action,
            e.source,
            e.wording,
            e.campaign,
            e.detail,
            e.created_at,
            e.network,
            e.form,
            e.wording_version,
        )
        for e in rows
    ]


def export(session: Session, email: str) -> dict[str, Any]:
    """Everything held about the person with address ``email``, JSON-serialisable (a subject access
    request): their member row, region, interests and fields, every consent-log line, and whether and
    why they are suppressed. For an erased address only the suppression and the log remain."""
    normalised = _normalise(email)
    address_hash = addresses.address_hash(session, normalised)
    member = session.scalar(select(Member).where(Member.email == normalised))
    held = session.get(Suppression, address_hash)
    events = consent_log(session, address_hash, member.id if member else None)
    if member is None and held is None and not events:
        raise _unknown(session, email, normalised)
    data: dict[str, Any] = _jsonable(
        {
            "address": normalised,
            "address_hash": address_hash,
            "exported_at": utcnow(),
            "member": record_of(session, member).as_dict() if member else None,
            "suppression": asdict(SuppressionRecord.of(held)) if held else None,
            "consent_log": [asdict(e) for e in events],
            "mailings": mailings_of(session, member.id) if member else [],
        }
    )
    return data


def mailings_of(session: Session, member_id: int) -> list[dict[str, Any]]:
    """Every campaign addressed to the member: what, when, and what became of it."""
    from mailer.models import Campaign, Delivery

    rows = session.execute(
        select(Campaign.slug, Campaign.subject, Delivery.status, Delivery.sent_at, Delivery.last_code)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.member_id == member_id)
        .order_by(Delivery.id)
    ).all()
    return [
        {"campaign": slug, "subject": subject, "status": status, "sent_at": sent_at, "last_code": code}
        for slug, subject, status, sent_at, code in rows
    ]


def unsubscribe(
    session: Session,
    email: str,
    source: str = "admin",
    campaign: str | None = None,
    *,
    reason: str = "unsubscribe",
    detail: str = "",
) -> bool:
    """Suppress the member with address ``email`` (``consent.unsubscribe``); True if they were not
    suppressed before. The member's row stays (they can be shown and exported); they are never mailed again.
    """
    member = _member(session, email)
    return consent.unsubscribe(
        session, member.address_hash, reason=reason, source=source, campaign=campaign, detail=detail
    )


def leave_network(
    session: Session, email: str, network: str, networks: list[str], campaign: str | None = None
) -> bool:
    """The member with address ``email`` leaves ``network``'s mail on their request (source "admin",
    ``consent.leave_network``); True if they had not left it before. ``networks``: the workspace's
    declared networks; with fewer than two there is nothing narrower than all mail (``unsubscribe``).
    """
    if len(networks) < 2:
        raise UnknownName(
            "this workspace has a single network: leaving it is leaving all mail",
            field="--network",
            hint="leave out --network to unsubscribe from everything",
        )
    if network not in networks:
        raise UnknownName(
            f"unknown network {network!r}", field="--network", hint="one of " + ", ".join(networks)
        )
    member = _member(session, email)
    campaign_id = None
    if campaign:
        from mailer.models import Campaign

        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == campaign))
        if campaign_id is None:
            raise UnknownName(f"no campaign {campaign!r} has been sent", field="--campaign")
    left = consent.leave_network(session, member.id, network, source="admin", campaign_id=campaign_id)
    return left is not None and left.newly


def forget(session: Session, email: str) -> ForgetReport:
    """Erase the member with address ``email``: their row, interests and fields are deleted; their
    consent-log lines keep only the address hash; a suppression (reason ``erasure``) keeps them from
    being mailed or imported again, and an ``erase`` event is appended to the log."""
    member = _member(session, email)
    member_id, address_hash = member.id, member.address_hash
    newly = consent.unsubscribe(
        session, address_hash, reason="erasure", source="admin", detail="personal data erased on request"
    )
    interests = session.execute(delete(MemberInterest).where(MemberInterest.member_id == member_id))
    fields = session.execute(delete(MemberField).where(MemberField.member_id == member_id))
    session.execute(delete(NetworkLeave).where(NetworkLeave.member_id == member_id))
    kept = consent.detach_log(session, member_id)
    session.expunge(member)
    session.execute(delete(Member).where(Member.id == member_id))
    return ForgetReport(
        address_hash=address_hash,
        interests_removed=interests.rowcount,  # type: ignore[attr-defined]
        fields_removed=fields.rowcount,  # type: ignore[attr-defined]
        consent_events_kept=kept,
        newly_suppressed=newly,
    )


# ---------------------------------------------------------------------------------------------
# Lookups by id: a signed link's member, the members an import added


def mail_address(session: Session, member_id: int) -> str | None:
    """The member's address, when they exist and have not unsubscribed (a mailed preferences link
    goes only there); else None."""
    row = session.execute(select(Member.email, Member.address_hash).where(Member.id == member_id)).first()
    if row is None or suppression.is_hash_suppressed(session, row.address_hash):
        return None
    return str(row.email)


@dataclass(frozen=True)
class NewMember:
    """A member an import added, as its welcome needs them."""

    id: int
    email: str
    region: str | None
    first_name: str = ""


ADDED_CHUNK = 900  # ids in one IN (…): under the 999 parameters of older SQLite builds


def members_added(session: Session, ids: Sequence[int]) -> list[NewMember]:
    """The members an import added, by their ids (``ImportReport.added_ids``), with their address
    and region, in id order. The import names them itself, so members it only updated, and anyone
    added meanwhile by another way (a sign-up), are never among them. An id whose member is gone
    since is left out."""
    found: list[NewMember] = []
    for start in range(0, len(ids), ADDED_CHUNK):
        rows = session.execute(
            select(Member.id, Member.email, Region.slug, Member.first_name)
            .outerjoin(Region, Region.id == Member.region_id)
            .where(Member.id.in_(ids[start : start + ADDED_CHUNK]))
        ).all()
        found.extend(NewMember(r[0], r[1], r[2], r[3] or "") for r in rows)
    found.sort(key=lambda member: member.id)
    return found
