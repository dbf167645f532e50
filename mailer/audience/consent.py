"""Consent: the one place that subscribes, confirms, unsubscribes and changes preferences.

Every change to what a person agreed to goes through here, and each appends its line to the consent
log (``consent_log``), so the web pages, inbound mail and the CLI apply the same rules:

- **Sign-up** is double opt-in. ``already_subscribed`` decides what a sign-up request mails: a
  current member is told they are subscribed; a new or unsubscribed address gets a confirmation
  link carrying the pending sign-up (``SignupData``). ``confirm_signup`` creates or updates the
  member when the link comes back and logs a ``subscribe`` event (source "signup", the wording shown).
  A name with a web or mail address in it, or over 80 characters, is refused
  (``signup_name_problem``); sign-up mails are counted per mailbox (``mailbox_key``: plus-tags and
  Gmail's dots stripped) so that one mailbox's variants cannot be mail-bombed.
- **Resubscribe after confirm**: a confirmed sign-up is the only thing that lifts a suppression, and
  only when its link was issued after the suppression; the ``resubscribe`` event records what was
  lifted. No other code in mailer removes a suppression.
- **Unsubscribe** (``unsubscribe``, ``unsubscribe_member``) adds a suppression with its reason, its
  source (one-click, link, mailto, bounce, admin) and the campaign that prompted it; the
  suppression is added once and every request is logged (``suppression.suppress_hash``).
- **Preferences** (``save_preferences``): name, home region and interests; a ``preferences`` event
  says what changed. An unsubscribed member's preferences are never saved, and saving never
  resubscribes anyone.
- **Imports** (``subscribe_imported``) log one ``subscribe`` event per new member; an import never
  lifts a suppression.
- **Erasure** (``detach_log``) keeps the member's log lines with only the address hash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.orm import Session

from mailer.audience import bulk, suppression
from mailer.audience.addresses import address_hash
from mailer.errors import MailerError
from mailer.models import Campaign, ConsentEvent, Interest, Member, Region, Suppression, utcnow

IMPORT_SOURCE: Final = "import"
"""The source of an imported member's ``subscribe`` event when the file names none."""

_consent_t = cast(Table, ConsentEvent.__table__)


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


# ---------------------------------------------------------------------------------------------
# Sign-up (double opt-in)


@dataclass(frozen=True)
class SignupData:
    """A sign-up waiting for confirmation. ``email`` is normalised; ``issued_at`` is aware UTC."""

    email: str
    name: str
    region: str | None
    postcode: str
    interests: tuple[str, ...]
    wording: str
    issued_at: datetime


#: The longest name a sign-up may give: it greets the member in every mail.
SIGNUP_NAME_LIMIT: Final = 80

# A web or mail address in a name: a scheme (https://), www., an @, a host followed by a path
# (evil.example/login) or a host ending in a common top-level domain (bit.ly, evil.com).
_ADDRESS_IN_NAME = re.compile(
    r"[a-z][a-z0-9+.-]*:/|\bwww\.|@|[a-z0-9-]\.[a-z]{2,}/"
    r"|\b[a-z0-9-]{2,}\.(?:com|net|org|info|biz|io|co|uk|ly|me|xyz|top|ru|cn|app|dev|link|click|site"
    r"|online|shop|example)\b",
    re.IGNORECASE,
)
_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def signup_name_problem(name: str) -> str | None:
    """Why a name given at sign-up is refused, in words for the form, or None if it is fine.

    A name greets the member in every mail the organisation sends, so it may not carry a web or
    mail address (an attacker's "Click https://evil.example/login now") and is at most
    ``SIGNUP_NAME_LIMIT`` characters.
    """
    if len(name) > SIGNUP_NAME_LIMIT:
        return f"Your name can be at most {SIGNUP_NAME_LIMIT} characters long."
    if _ADDRESS_IN_NAME.search(name):
        return "Your name cannot contain a web or email address."
    return None


def mailbox_key(normalised: str) -> str:
    """The mailbox a normalised address delivers to, for counting sign-up mails per mailbox.

    Plus-tags are stripped (``victim+1@example.net`` is ``victim@example.net``), and at gmail.com
    and googlemail.com, which ignore dots and are one service, dots too (``v.i.c.t.i.m@googlemail.com``
    is ``victim@gmail.com``). For counting only: a member keeps the address they gave.
    """
    local, _, domain = normalised.lower().rpartition("@")
    local = local.strip('"').split("+", 1)[0]
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


class StaleConfirmation(MailerError):
    """A confirmation link issued before the address was suppressed: it cannot lift the suppression."""


@dataclass(frozen=True)
class Confirmed:
    member_id: int
    created: bool
    resubscribed: bool


def already_subscribed(session: Session, digest: str) -> int | None:
    """The member id when the address hash ``digest`` belongs to a member who is not suppressed (a
    sign-up then only reminds them); None for a new or unsubscribed address, which must confirm."""
    member_id = session.scalar(select(Member.id).where(Member.address_hash == digest))
    if member_id is None or suppression.is_hash_suppressed(session, digest):
        return None
    return member_id


def _resubscribe_confirmed(
    session: Session, digest: str, *, member_id: int | None, wording: str, requested_at: datetime
) -> bool:
    """Lift the suppression of ``digest`` because its owner confirmed a new sign-up.

    The only code in mailer that removes a suppression. The caller holds a confirmation that came
    back from the address itself (double opt-in) and was issued after the suppression (see
    ``confirm_signup``). Appends a ``resubscribe`` event to the consent log recording the suppression
    lifted. Returns False when the address was not suppressed.
    """
    held = session.get(Suppression, digest)
    if held is None:
        return False
    was = (
        f"reason {held.reason}, source {held.source}, "
        f"campaign {held.campaign or '-'}, since {_stamp(held.created_at)}"
    )
    session.add(
        ConsentEvent(
            member_id=member_id,
            address_hash=digest,
            action="resubscribe",
            source="signup",
            wording=wording,
            campaign=None,
            detail=f"suppression lifted by a confirmed sign-up requested {_stamp(requested_at)}; "
            f"it was: {was}",
            created_at=utcnow(),
        )
    )
    session.delete(held)
    session.flush()
    return True


def confirm_signup(session: Session, data: SignupData) -> Confirmed:
    """Create or update the member of a confirmed sign-up and log the consent.

    Raises ``StaleConfirmation`` when the address was suppressed after the link was issued (an old
    link must not undo a later unsubscribe). Confirming twice is harmless: the member is updated to
    the same choices and the log gets a second line.
    """
    digest = address_hash(data.email)
    held = session.get(Suppression, digest)
    if held is not None and held.created_at.replace(microsecond=0) > data.issued_at:
        raise StaleConfirmation(
            "this confirmation link was issued before the address unsubscribed",
            hint="sign up again to get a new confirmation link",
        )
    region_id = None
    if data.region:
        region_id = session.scalar(select(Region.id).where(Region.slug == data.region))
    member = session.scalar(select(Member).where(Member.address_hash == digest))
    created = member is None
    if member is None:
        member = Member(
            email=data.email,
            address_hash=digest,
            name=data.name,
            postcode=data.postcode,
            region_id=region_id,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(member)
        session.flush()
    else:
        if data.name:
            member.name = data.name
        if data.postcode:
            member.postcode = data.postcode
        if region_id is not None:
            member.region_id = region_id
        member.updated_at = utcnow()
    rows = session.scalars(select(Interest).where(Interest.slug.in_(data.interests))).all()
    member.interests = sorted(rows, key=lambda i: i.slug)
    resubscribed = False
    if held is not None:
        resubscribed = _resubscribe_confirmed(
            session, digest, member_id=member.id, wording=data.wording, requested_at=data.issued_at
        )
    session.add(
        ConsentEvent(
            member_id=member.id,
            address_hash=digest,
            action="subscribe",
            source="signup",
            wording=data.wording,
            campaign=None,
            detail=f"double opt-in: requested {_stamp(data.issued_at)}, confirmed from the "
            f"link mailed to the address; region {data.region or '-'}; "
            f"interests {', '.join(data.interests) or '-'}",
            created_at=utcnow(),
        )
    )
    session.flush()
    return Confirmed(member.id, created, resubscribed)


# ---------------------------------------------------------------------------------------------
# Unsubscribing


@dataclass(frozen=True)
class Unsubscribed:
    """What ``unsubscribe_member`` did: the campaign recorded, and whether the suppression is new."""

    address_hash: str
    campaign: str | None
    newly: bool  # False when the address was suppressed already


def campaign_label(session: Session, campaign_id: int | None) -> str | None:
    """The campaign a token names, as recorded in the consent log: its slug (``#id`` if unknown)."""
    if campaign_id is None:
        return None
    slug = session.scalar(select(Campaign.slug).where(Campaign.id == campaign_id))
    return slug or f"#{campaign_id}"


def unsubscribe(
    session: Session,
    digest: str,
    *,
    source: str,
    campaign: str | None = None,
    reason: str = "unsubscribe",
    detail: str = "",
) -> bool:
    """Never mail the address with hash ``digest`` again; True if it was not suppressed before.

    ``source`` says how the request came (one-click, link, mailto, bounce, admin); ``reason`` is
    ``unsubscribe`` or, for bounces, complaints and erasure, ``hard-bounce``, ``complaint`` or
    ``erasure``; ``campaign`` names the campaign that prompted it. The suppression is added once;
    the consent log gets a line for every request.
    """
    return suppression.suppress_hash(
        session, digest, reason=reason, source=source, campaign=campaign, detail=detail
    )


def unsubscribe_member(
    session: Session, member_id: int, *, source: str, campaign_id: int | None, detail: str = ""
) -> Unsubscribed | None:
    """Unsubscribe the member a signed link names (``campaign_id``: the campaign of the link).

    None when the member has been erased since the mail went out: they have no row (and their
    suppression outlived them), so there is nothing to do.
    """
    digest = session.scalar(select(Member.address_hash).where(Member.id == member_id))
    if digest is None:
        return None
    campaign = campaign_label(session, campaign_id)
    newly = unsubscribe(session, digest, source=source, campaign=campaign, detail=detail)
    return Unsubscribed(digest, campaign, newly)


# ---------------------------------------------------------------------------------------------
# Preferences


@dataclass(frozen=True)
class Preferences:
    """A member's choices: name, home region (a slug) and interests (slugs), already checked."""

    name: str
    region: str | None
    interests: frozenset[str]


@dataclass(frozen=True)
class MemberPreferences:
    """A member's current choices, and whether they have unsubscribed."""

    member_id: int
    name: str
    region: str | None
    interests: frozenset[str]
    suppressed: bool


def preferences_of(session: Session, member_id: int) -> MemberPreferences | None:
    """The member's current choices; None when the member no longer exists."""
    member = session.get(Member, member_id)
    if member is None:
        return None
    return MemberPreferences(
        member_id=member.id,
        name=member.name,
        region=member.region.slug if member.region is not None else None,
        interests=frozenset(i.slug for i in member.interests),
        suppressed=suppression.is_hash_suppressed(session, member.address_hash),
    )


def save_preferences(
    session: Session, member_id: int, choice: Preferences, *, campaign_id: int | None
) -> list[str] | None:
    """Apply ``choice`` to the member and log what changed; the changes in words, or None when the
    member is gone or has unsubscribed (nothing is changed then). An unchanged choice logs nothing."""
    member = session.get(Member, member_id)
    if member is None or suppression.is_hash_suppressed(session, member.address_hash):
        return None
    changes: list[str] = []
    if choice.name != member.name:
        member.name = choice.name
        changes.append("name changed")
    current_region = member.region.slug if member.region is not None else None
    if choice.region != current_region:
        region = session.scalar(select(Region).where(Region.slug == choice.region)) if choice.region else None
        member.region_id = region.id if region is not None else None
        changes.append(f"region {current_region or '-'} -> {choice.region or '-'}")
    current = {i.slug for i in member.interests}
    joined = sorted(choice.interests - current)
    left = sorted(current - choice.interests)
    if joined or left:
        rows = session.scalars(select(Interest).where(Interest.slug.in_(sorted(choice.interests)))).all()
        member.interests = sorted(rows, key=lambda i: i.slug)
        changes.extend(f"joined interest {s}" for s in joined)
        changes.extend(f"left interest {s}" for s in left)
    if changes:
        member.updated_at = utcnow()
        session.add(
            ConsentEvent(
                member_id=member.id,
                address_hash=member.address_hash,
                action="preferences",
                source="link",
                wording="",
                campaign=campaign_label(session, campaign_id),
                detail="; ".join(changes),
                created_at=utcnow(),
            )
        )
    return changes


# ---------------------------------------------------------------------------------------------
# Imports and erasure


def subscribe_imported(conn: Connection, imported: Iterable[tuple[int, str, str, str]], *, at: Any) -> None:
    """Log a ``subscribe`` event for each newly imported member, in bulk, in ``conn``'s transaction.

    ``imported`` holds (member id, address hash, consent source from the file or "", detail); ``at``
    is the time as the dialect stores it. The source is the file's, else "import".
    """
    rows = [
        {
            "member_id": member_id,
            "address_hash": digest,
            "action": "subscribe",
            "source": source or IMPORT_SOURCE,
            "wording": "",
            "campaign": None,
            "detail": detail,
            "created_at": at,
        }
        for member_id, digest, source, detail in imported
    ]
    bulk.insert_many(conn, _consent_t, rows)


def detach_log(session: Session, member_id: int) -> int:
    """Keep the member's consent-log lines with only the address hash (they are being erased); how
    many lines were kept."""
    kept = session.execute(
        update(ConsentEvent).where(ConsentEvent.member_id == member_id).values(member_id=None)
    )
    return int(kept.rowcount)  # type: ignore[attr-defined]
