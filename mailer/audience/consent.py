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
- **Networks** (issue 12): a member may leave one network's mail (``leave_network``: a
  ``network_leaves`` row, added once, and a ``leave-network`` line in the log every time) and rejoin
  it from their preferences page only (``rejoin_network``: ``join-network``; never an import).
  An unsubscribe link or mail leaves the network of the campaign it came from
  (``unsubscribe_scoped``, ``unsubscribe_scope``); in a workspace with a single network, or for a
  campaign of the default network (``Campaign.network`` ""), that is leaving all mail: the
  suppression, which stays the final word.
- **Imports** (``subscribe_imported``) log one ``subscribe`` event per new member; an import never
  lifts a suppression and never rejoins a network.
- **Erasure** (``detach_log``) keeps the member's log lines with only the address hash.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer.audience import bulk, suppression
from mailer.audience.addresses import address_hash
from mailer.errors import MailerError
from mailer.models import Campaign, ConsentEvent, Interest, Member, NetworkLeave, Region, Suppression, utcnow

IMPORT_SOURCE: Final = "import"
"""The source of an imported member's ``subscribe`` event when the file names none."""

_consent_t = cast(Table, ConsentEvent.__table__)


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def _log(
    session: Session,
    member_id: int | None,
    digest: str,
    action: str,
    source: str,
    *,
    campaign: str | None = None,
    detail: str = "",
    wording: str = "",
) -> None:
    """Append one line to the consent log."""
    session.add(
        ConsentEvent(
            member_id=member_id,
            address_hash=digest,
            action=action,
            source=source,
            wording=wording,
            campaign=campaign,
            detail=detail,
            created_at=utcnow(),
        )
    )


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
    detail = f"suppression lifted by a confirmed sign-up requested {_stamp(requested_at)}; it was: {was}"
    _log(session, member_id, digest, "resubscribe", "signup", wording=wording, detail=detail)
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
    detail = (
        f"double opt-in: requested {_stamp(data.issued_at)}, confirmed from the link mailed to the "
        f"address; region {data.region or '-'}; interests {', '.join(data.interests) or '-'}"
    )
    _log(session, member.id, digest, "subscribe", "signup", wording=data.wording, detail=detail)
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
# Networks: leaving one network's mail (issue 12)

#: How a member may leave a network (one-click, a page's button, mailto, an admin on request).
LEAVE_SOURCES: Final = ("one-click", "link", "mailto", "admin")
#: How a member may rejoin a network: only their own preferences page (never an import).
REJOIN_SOURCES: Final = ("link",)


@dataclass(frozen=True)
class Left:
    """What an unsubscribe did: ``network`` is the network left, or None for all mail (the
    suppression); the campaign recorded; whether it is new (False when it was so already)."""

    network: str | None
    campaign: str | None
    newly: bool


def _member_hash(session: Session, member_id: int) -> str | None:
    return session.scalar(select(Member.address_hash).where(Member.id == member_id))


def leave_network(
    session: Session,
    member_id: int,
    network_slug: str,
    *,
    source: str,
    campaign_id: int | None,
    detail: str = "",
) -> Left | None:
    """The member leaves ``network_slug``'s mail: that network's campaigns skip them from now on;
    other networks' mail is unchanged. The ``network_leaves`` row is added once; the consent log
    gets a ``leave-network`` line naming the network every time. ``source``: one of
    ``LEAVE_SOURCES``. None when the member no longer exists.
    """
    if source not in LEAVE_SOURCES or not network_slug:
        raise MailerError(
            f"cannot leave network {network_slug!r} with source {source!r}",
            hint="name a network, and a source of " + ", ".join(LEAVE_SOURCES),
        )
    digest = _member_hash(session, member_id)
    if digest is None:
        return None
    campaign = campaign_label(session, campaign_id)
    detail = f"network {network_slug}" + (f"; {detail}" if detail else "")
    _log(session, member_id, digest, "leave-network", source, campaign=campaign, detail=detail)
    # INSERT … ON CONFLICT DO NOTHING: two requests at once both succeed; the row is added once.
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    row = dict(
        member_id=member_id, network=network_slug, source=source, campaign=campaign, created_at=utcnow()
    )
    stmt = insert_(NetworkLeave).values(row).on_conflict_do_nothing(index_elements=["member_id", "network"])
    newly = session.execute(stmt.returning(NetworkLeave.member_id)).first() is not None
    session.flush()
    return Left(network_slug, campaign, newly)


def rejoin_network(
    session: Session,
    member_id: int,
    network_slug: str,
    *,
    source: str,
    campaign_id: int | None,
    detail: str = "",
) -> bool | None:
    """The member gets ``network_slug``'s mail again: the row is removed and a ``join-network`` line
    logged. Only the member can do this, from their preferences page (``source`` "link"): never an
    import or an admin. True when they had left it; False when they had not (nothing is logged);
    None when the member is gone or has left all mail (a suppression: nothing is changed then).
    """
    if source not in REJOIN_SOURCES:
        raise MailerError(
            f"a network is rejoined only by the member, from their preferences page (not {source!r})",
            hint="the member ticks the network at their preferences link",
        )
    digest = _member_hash(session, member_id)
    if digest is None or suppression.is_hash_suppressed(session, digest):
        return None
    removed = session.execute(
        delete(NetworkLeave).where(NetworkLeave.member_id == member_id, NetworkLeave.network == network_slug)
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        return False
    campaign = campaign_label(session, campaign_id)
    detail = f"network {network_slug}" + (f"; {detail}" if detail else "")
    _log(session, member_id, digest, "join-network", source, campaign=campaign, detail=detail)
    session.flush()
    return True


def has_left(session: Session, member_id: int, network_slug: str) -> bool:
    """Whether the member has left ``network_slug``'s mail (its campaigns skip them)."""
    where = (NetworkLeave.member_id == member_id) & (NetworkLeave.network == network_slug)
    return session.scalar(select(NetworkLeave.member_id).where(where)) is not None


def networks_left(session: Session, member_id: int) -> list[str]:
    """The slugs of the networks the member has left, sorted."""
    where = NetworkLeave.member_id == member_id
    return list(session.scalars(select(NetworkLeave.network).where(where).order_by(NetworkLeave.network)))


def campaign_network(session: Session, campaign_id: int | None) -> str | None:
    """The network (slug) the campaign ``campaign_id`` speaks as: "" for the workspace's default
    network; None when there is no such campaign."""
    if campaign_id is None:
        return None
    return session.scalar(select(Campaign.network).where(Campaign.id == campaign_id))


def unsubscribe_scope(session: Session, campaign_id: int | None, networks: Collection[str]) -> str | None:
    """The network an unsubscribe link of ``campaign_id`` leaves, or None when it leaves all mail.

    ``networks``: the slugs of the networks the workspace declares (``Shape.networks``). With fewer
    than two, leaving the only network is leaving all mail. A campaign of the default network
    (``Campaign.network`` ""), of a network no longer declared, or no campaign at all: all mail too,
    as before networks (an unsubscribe is never narrower than the member can be sure of).
    """
    if len(networks) < 2:
        return None
    network = campaign_network(session, campaign_id)
    return network if network and network in networks else None


def unsubscribe_scoped(
    session: Session,
    member_id: int,
    *,
    source: str,
    campaign_id: int | None,
    networks: Collection[str],
    detail: str = "",
) -> Left | None:
    """An unsubscribe from a link or mail (one-click, the page's button, mailto): leave the network
    of the campaign the signed token names (``unsubscribe_scope``), or all mail
    (``unsubscribe_member``) in a single-network workspace. The scope comes only from the token's
    campaign, never from anything else in the request. None when the member no longer exists.
    """
    network = unsubscribe_scope(session, campaign_id, networks)
    if network is None:
        done = unsubscribe_member(session, member_id, source=source, campaign_id=campaign_id, detail=detail)
        return None if done is None else Left(None, done.campaign, done.newly)
    return leave_network(session, member_id, network, source=source, campaign_id=campaign_id, detail=detail)


def save_networks(
    session: Session,
    member_id: int,
    keep: Collection[str],
    networks: Collection[str],
    *,
    campaign_id: int | None,
) -> list[str] | None:
    """The member's choice of networks from their preferences page: of the workspace's
    ``networks``, those in ``keep`` are rejoined (if they had left them) and the others left (if
    they had not), each change logged. The changes in words; None when the member is gone or has
    left all mail (nothing is changed then)."""
    digest = _member_hash(session, member_id)
    if digest is None or suppression.is_hash_suppressed(session, digest):
        return None
    left = set(networks_left(session, member_id))
    changes: list[str] = []
    for network in networks:
        if network in keep and network in left:
            if rejoin_network(session, member_id, network, source="link", campaign_id=campaign_id):
                changes.append(f"rejoined network {network}")
        elif network not in keep and network not in left:
            leave_network(
                session, member_id, network, source="link", campaign_id=campaign_id, detail="preferences page"
            )
            changes.append(f"left network {network}")
    return changes


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
    networks_left: frozenset[str] = frozenset()


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
        networks_left=frozenset(networks_left(session, member.id)),
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
        campaign = campaign_label(session, campaign_id)
        _log(
            session,
            member.id,
            member.address_hash,
            "preferences",
            "link",
            campaign=campaign,
            detail="; ".join(changes),
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
