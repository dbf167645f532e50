"""Sign-up: double opt-in, and the only way a suppression is lifted (a confirmed sign-up)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.audience import suppression
from mailer.audience.addresses import address_hash
from mailer.audience.choices import first_word, record_member_choice
from mailer.audience.consent.log import log_line, stamp
from mailer.audience.mailable import SUBSCRIBED
from mailer.errors import MailerError
from mailer.models import Interest, Member, NetworkLeave, Region, Suppression, utcnow

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
    """The member id when the address hash ``digest`` belongs to a member who may be mailed (a
    sign-up then only reminds them); None for a new, unsubscribed or not-opted-in address, which
    must confirm (a confirmed sign-up is how a member an import marked "not opted in" opts in)."""
    row = session.execute(select(Member.id, Member.status).where(Member.address_hash == digest)).first()
    if row is None or row.status != SUBSCRIBED or suppression.is_hash_suppressed(session, digest):
        return None
    return int(row.id)


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
        f"campaign {held.campaign or '-'}, since {stamp(held.created_at)}"
    )
    detail = f"suppression lifted by a confirmed sign-up requested {stamp(requested_at)}; it was: {was}"
    log_line(session, member_id, digest, "resubscribe", "signup", wording=wording, detail=detail)
    session.delete(held)
    session.flush()
    return True


def confirm_signup(session: Session, data: SignupData, *, network: str = "") -> Confirmed:
    """Create or update the member of a confirmed sign-up and log the consent.

    ``network``: the network the sign-up was for (its region's, from the signed confirmation link):
    a member who had left that network's mail rejoins it (a ``join-network`` line, source "signup"),
    since they asked for it again and proved the address. Other networks they left stay left.

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
            first_name=first_word(data.name),
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
            member.first_name = first_word(data.name)
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
    detail = (
        f"double opt-in: requested {stamp(data.issued_at)}, confirmed from the link mailed to the "
        f"address; region {data.region or '-'}; interests {', '.join(data.interests) or '-'}"
    )
    log_line(session, member.id, digest, "subscribe", "signup", wording=data.wording, detail=detail)
    # They chose these themselves: subscribed (whatever an import said), and the rest as given.
    member.status, member.status_source, member.status_at = SUBSCRIBED, "signup", utcnow()
    chosen = ["status", "interests", *(["name"] if data.name else []), *(["region"] if region_id else [])]
    record_member_choice(session, member.id, chosen, source="signup")
    if network:
        left = delete(NetworkLeave).where(
            NetworkLeave.member_id == member.id, NetworkLeave.network == network
        )
        if session.execute(left).rowcount:  # type: ignore[attr-defined]
            detail = f"network {network}; rejoined by a confirmed sign-up to it"
            log_line(session, member.id, digest, "join-network", "signup", detail=detail)
    session.flush()
    return Confirmed(member.id, created, resubscribed)
