"""Reminders and change mails, sent by the workers (docs/events.md, Reminders and changes).

The ``event-mails`` chore (listed in ``mailer.chores``) finds, on each round, the mails due:

- a **reminder** to each attendee (a "yes", confirmed) ``remind_hours`` before the event starts
  (24 by default, per event), with the place, the online link and the event as an ICS file;
- a **change** when the event's time, place or title changed after they answered (its ``sequence``
  raised by ``mailer.events.sync_events``), with the updated ICS (``METHOD:REQUEST``, the new
  SEQUENCE);
- a **cancel** when it is cancelled (``METHOD:CANCEL``, ``STATUS:CANCELLED``);
- **moved-up** to someone on the waiting list who got a place;
- an **organiser**'s message to the people coming (``mailer.events.organiser``), queued by the
  desk as one row per recipient and claimed here by moving it from ``queued`` to ``claimed``.

Each mail is sent once, however many workers run: it is claimed by inserting its ``event_mails``
row (unique per event, answer, kind and sequence) before it is sent, and marked sent after. A
worker that dies in between leaves the row claimed: that mail is lost, never sent twice.

Mail goes as the event's network (``mailer.identity``), DKIM-signed with the network's keys, over
the worker's transport; a member's mail carries List-Unsubscribe (leaving the network of the
event's issue) and is not sent to a member who may not be mailed or left that network
(``mailer.audience.mailable``); nobody whose address is suppressed gets one.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

import icalendar
from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from mailer.audience.mailable import may_be_mailed, not_left
from mailer.audience.networks import default_network, named
from mailer.audience.shape import Shape, load_shape
from mailer.audience.suppression import is_suppressed
from mailer.db import Database, Session
from mailer.errors import MailerError
from mailer.events.organiser import KIND as ORGANISER
from mailer.events.views import EventInfo, info
from mailer.identity import Identity
from mailer.issue.calendar_text import calendar_url, day_text, time_text
from mailer.message.dkim import SigningPlan, dkim_keys, signer_for
from mailer.message.template import DKIM_HEADERS, DKIM_OVERSIGNED, list_id
from mailer.models import Campaign, EventMail, EventRow, Member, OrganiserMessage, Rsvp
from mailer.sending.chores import Chore, ChoreContext
from mailer.sending.control import parse_send_time
from mailer.settings import Settings
from mailer.tokens import LINK_PATHS, bounce_address, mailto_address, sign
from mailer.transport import Transport, data_payload, transport_for

log = logging.getLogger(__name__)

KINDS = ("reminder", "change", "cancel", "moved-up", ORGANISER)
#: A cancellation or change is told until the event is this long over; later, nobody needs it.
TELL_UNTIL = timedelta(hours=1)
#: The longest ``remind_hours`` an event may have (30 days).
MAX_REMIND = timedelta(hours=24 * 30)
#: At most this many mails a round (the next round sends the rest).
ROUND = 500


@dataclass(frozen=True)
class DueMail:
    """One mail due: its kind, the event, and the attendee (their answer's id, their member id or
    None for someone who answered without being a member, address and name); for an organiser's
    message, its queued ``event_mails`` row and its subject and text."""

    kind: str
    event: EventInfo
    rsvp_id: int
    member_id: int | None
    email: str
    name: str
    queued_id: int | None = None
    subject: str = ""
    text: str = ""


@dataclass
class Round:
    """What one round did: mails sent, failed (the relay said no), and skipped (taken by another
    worker, or not to be mailed)."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0

    def line(self) -> str:
        if not (self.sent or self.failed):
            return ""
        return f"{self.sent} event mail(s) sent, {self.failed} failed"


# ---------------------------------------------------------------------------------------------
# What is due


def events_now(settings: Settings, now: datetime) -> datetime:
    """The time the events' chores take as now: ``now``, unless the ``events_clock`` setting says
    otherwise (rehearsals and tests)."""
    return parse_send_time(settings.events_clock, settings.zone) if settings.events_clock else now


def _attending() -> object:
    return and_(Rsvp.answer == "yes", or_(Rsvp.member_id.is_not(None), Rsvp.confirmed_at.is_not(None)))


def due_mails(session: Session, now: datetime, limit: int = ROUND) -> list[DueMail]:
    """The mails due at ``now`` and not claimed yet: reminders, changes, cancellations, moves up."""
    base = (
        select(EventRow, Rsvp, Member.email)
        .join(Rsvp, Rsvp.event_id == EventRow.id)
        .outerjoin(Member, Member.id == Rsvp.member_id)
    )
    attending = and_(Rsvp.answer == "yes", or_(Rsvp.member_id.is_not(None), Rsvp.confirmed_at.is_not(None)))
    live = EventRow.cancelled_at.is_(None)
    told_until = EventRow.ends_at > now - TELL_UNTIL
    changed_since = EventRow.last_modified > Rsvp.answered_at  # they answered the old version
    cancelled_since = EventRow.cancelled_at > Rsvp.answered_at
    asks: list[tuple[str, ColumnElement[bool], bool]] = [
        # in the reminder's window (the longest remind_hours; each event's own is checked below)
        ("reminder", and_(live, EventRow.starts_at > now, EventRow.starts_at <= now + MAX_REMIND), False),
        (
            "change",
            and_(live, EventRow.sequence > 0, changed_since, told_until),
            True,
        ),
        (
            "cancel",
            and_(EventRow.cancelled_at.is_not(None), cancelled_since, told_until),
            True,
        ),
        ("moved-up", and_(live, Rsvp.promoted_at.is_not(None), EventRow.ends_at > now), False),
    ]
    out: list[DueMail] = []
    for kind, condition, by_sequence in asks:
        claimed = exists().where(
            EventMail.event_id == EventRow.id,
            EventMail.rsvp_id == Rsvp.id,
            EventMail.kind == kind,
            EventMail.sequence == (EventRow.sequence if by_sequence else 0),
        )
        query = base.where(attending, condition, ~claimed).order_by(EventRow.starts_at, Rsvp.id).limit(limit)
        for event, rsvp, member_email in session.execute(query).all():
            if kind == "reminder" and event.starts_at - timedelta(hours=event.remind_hours) > now:
                continue
            email = member_email or rsvp.email or ""
            out.append(DueMail(kind, info(event), rsvp.id, rsvp.member_id, email, rsvp.name))
    return out + queued_messages(session, limit)


def queued_messages(session: Session, limit: int = ROUND) -> list[DueMail]:
    """The organisers' messages queued and not claimed yet, to answers that still say yes (or wait)."""
    query = (
        select(EventMail.id, EventRow, Rsvp, Member.email, OrganiserMessage.subject, OrganiserMessage.body)
        .join(EventRow, EventRow.id == EventMail.event_id)
        .join(Rsvp, Rsvp.id == EventMail.rsvp_id)
        .join(OrganiserMessage, OrganiserMessage.id == EventMail.sequence)
        .outerjoin(Member, Member.id == Rsvp.member_id)
        .where(EventMail.kind == ORGANISER, EventMail.status == "queued")
        .order_by(EventMail.id)
        .limit(limit)
    )
    out: list[DueMail] = []
    for queued_id, event, rsvp, member_email, subject, body in session.execute(query).all():
        email = member_email or rsvp.email or ""
        out.append(
            DueMail(
                ORGANISER, info(event), rsvp.id, rsvp.member_id, email, rsvp.name, queued_id, subject, body
            )
        )
    return out


def may_mail(session: Session, mail: DueMail) -> bool:
    """A member who may be mailed and has not left the event's network; an address not suppressed;
    for an organiser's message, an answer that still says yes (or waits)."""
    if mail.kind == ORGANISER:
        answer = session.scalar(select(Rsvp.answer).where(Rsvp.id == mail.rsvp_id))
        if answer not in ("yes", "waitlist"):
            return False
    if mail.member_id is not None:
        condition = and_(Member.id == mail.member_id, may_be_mailed())
        if mail.event.network:
            condition = and_(condition, not_left(mail.event.network))
        return session.scalar(select(Member.id).where(condition)) is not None
    return bool(mail.email) and not is_suppressed(session, mail.email)


# ---------------------------------------------------------------------------------------------
# Claiming, once


def claim(db: Database, mail: DueMail, worker: str, now: datetime) -> int | None:
    """Claim ``mail`` for this worker (its ``event_mails`` row); None when another has it."""
    if mail.queued_id is not None:
        with db.session() as session:
            moved = session.execute(
                update(EventMail)
                .where(EventMail.id == mail.queued_id, EventMail.status == "queued")
                .values(status="claimed", claimed_by=worker[:200], claimed_at=now)
            )
            return mail.queued_id if moved.rowcount == 1 else None  # type: ignore[attr-defined]
    sequence = mail.event.sequence if mail.kind in ("change", "cancel") else 0
    try:
        with db.session() as session:
            row = EventMail(
                event_id=mail.event.id,
                rsvp_id=mail.rsvp_id,
                kind=mail.kind,
                sequence=sequence,
                status="claimed",
                claimed_by=worker[:200],
                claimed_at=now,
            )
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        return None


def finish(
    db: Database, mail_id: int, mail: DueMail, *, ok: bool, detail: str, now: datetime, status: str = ""
) -> None:
    status = status or ("sent" if ok else "failed")
    with db.session() as session:
        session.execute(
            update(EventMail)
            .where(EventMail.id == mail_id)
            .values(status=status, sent_at=now if ok else None, detail=detail[:500])
        )
        if ok and mail.kind == "moved-up":
            session.execute(update(Rsvp).where(Rsvp.id == mail.rsvp_id).values(promotion_mailed_at=now))


# ---------------------------------------------------------------------------------------------
# The message


def ics(event: EventInfo, settings: Settings, *, cancel: bool, now: datetime) -> bytes:
    """The event as an iCalendar file: ``METHOD:REQUEST`` (or ``CANCEL``, ``STATUS:CANCELLED``),
    its UID, SEQUENCE and LAST-MODIFIED as the events table has them."""
    cal = icalendar.Calendar()
    cal.add("prodid", f"-//{settings.organisation}//mailer//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancel else "REQUEST")
    ev = icalendar.Event()
    ev.add("uid", event.full_uid(settings.list_domain))
    ev.add("sequence", event.sequence)
    ev.add("dtstamp", now.astimezone(UTC).replace(microsecond=0))
    ev.add("last-modified", event.last_modified.astimezone(UTC).replace(microsecond=0))
    if event.all_day:
        ev.add("dtstart", event.starts_at.astimezone(settings.zone).date())
        ev.add("dtend", event.ends_at.astimezone(settings.zone).date())
    else:
        ev.add("dtstart", event.starts_at.astimezone(UTC))
        ev.add("dtend", event.ends_at.astimezone(UTC))
    ev.add("summary", event.title)
    if event.place:
        ev.add("location", event.place)
    if event.online_url:
        ev.add("url", event.online_url)
    ev.add("transp", "TRANSPARENT" if event.all_day else "OPAQUE")  # an all-day event marks nobody busy
    ev.add("status", "CANCELLED" if cancel else "CONFIRMED")
    cal.add_component(ev)
    return bytes(cal.to_ical())


def when_words(event: EventInfo, settings: Settings) -> str:
    """``Tuesday 18 November at 7:30pm`` (``Saturday 29 November`` for an all-day event)."""
    start = event.starts_at.astimezone(settings.zone)
    if event.all_day:
        return day_text(start.date())
    return f"{day_text(start.date())} at {time_text(start.time())}"


SUBJECTS = {
    "reminder": "Reminder: {title}, {when}",
    "change": "Changed: {title}, now {when}",
    "cancel": "Cancelled: {title}, {when}",
    "moved-up": "A place for you: {title}, {when}",
}
OPENINGS = {
    "reminder": "A reminder: you said you will come to {title}.",
    "change": "{title} has changed. Here it is as it is now; your calendar file below has the update.",
    "cancel": "{title} is cancelled. We are sorry; the calendar file below takes it out of your calendar.",
    "moved-up": "A place has come free at {title}, and it is yours: you were next on the waiting list.",
}


def organiser_text(mail: DueMail, settings: Settings, identity: Identity, unsubscribe: str) -> str:
    """An organiser's message as it is written, then who sends it and why the person gets it: a
    member can unsubscribe; someone who is not a member is told how to cancel their answer."""
    ev = mail.event
    lines = [mail.text.rstrip("\n"), "", "--"]  # the organiser greets them as they choose
    lines.append(
        f"Sent by {identity.sender_name} for the organisers of {ev.title} ({when_words(ev, settings)}), "
        "to the people who answered that they are coming or are waiting for a place."
    )
    if mail.member_id is None:
        page = f"{settings.base_url.rstrip('/')}/events/{ev.uid}"
        lines.append(f"You are not on our mailing list: you get this only because you answered on {page}")
        lines.append("To cancel your answer, say there that you cannot come.")
    if identity.network.postal_address:
        lines.append(identity.network.postal_address)
    privacy = identity.network.privacy_url
    if privacy:
        lines.append(
            f"Privacy: {settings.base_url.rstrip('/')}{privacy}"
            if privacy.startswith("/")
            else f"Privacy: {privacy}"
        )
    if unsubscribe:
        lines += ["", f"Unsubscribe: {unsubscribe}"]
    return "\n".join(lines) + "\n"


def body_text(mail: DueMail, settings: Settings, identity: Identity, unsubscribe: str) -> str:
    if mail.kind == ORGANISER:
        return organiser_text(mail, settings, identity, unsubscribe)
    ev = mail.event
    lines = [
        f"Dear {mail.name}," if mail.name else "Hello,",
        "",
        OPENINGS[mail.kind].format(title=ev.title),
        "",
    ]
    lines.append(f"When: {when_words(ev, settings)}")
    if ev.place:
        lines.append(f"Where: {ev.place}")
    if ev.online_url:
        lines.append(f"Online: {ev.online_url}")
    if mail.kind != "cancel":
        lines += [
            "",
            f"Add to calendar: {calendar_url(settings.base_url, ev.full_uid(settings.list_domain))}",
        ]
    lines += ["", identity.sign_off.strip() or identity.sender_name, "", "--"]
    lines.append(f"Sent by {identity.sender_name} because you answered this event.")
    if identity.network.postal_address:
        lines.append(identity.network.postal_address)
    if unsubscribe:
        lines += ["", f"Unsubscribe: {unsubscribe}"]
    return "\n".join(lines) + "\n"


def build_message(
    mail: DueMail, settings: Settings, shape: Shape, campaign_id: int | None, now: datetime
) -> tuple[str, bytes]:
    """(envelope sender, message bytes) of ``mail``: as the event's network, DKIM-signed."""
    network = default_network(settings)
    if mail.event.network and shape.networks:
        with contextlib.suppress(MailerError):  # a network gone from the lists: the default speaks
            network = named(shape, settings, mail.event.network)
    identity = Identity(network)
    speaking = identity.settings(settings)
    domain = settings.list_domain
    base = settings.base_url.rstrip("/")
    token = ""
    if mail.member_id is not None:
        token = sign("unsubscribe", mail.member_id, keys=settings.secrets, campaign=campaign_id)
    unsubscribe = f"{base}{LINK_PATHS['unsubscribe']}{token}" if token else ""
    ev = mail.event
    msg = EmailMessage()
    msg["From"] = formataddr((identity.sender_name, speaking.from_address))
    msg["To"] = formataddr((mail.name, mail.email)) if mail.name else mail.email
    if identity.reply_to:
        msg["Reply-To"] = identity.reply_to
    if mail.kind == ORGANISER:  # one line, checked when it was written (mailer.events.organiser)
        msg["Subject"] = mail.subject
    else:
        msg["Subject"] = SUBJECTS[mail.kind].format(title=ev.title, when=when_words(ev, settings))
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = make_msgid(f"event{ev.id}.{mail.kind}", domain=domain)
    msg["List-Id"] = f"{identity.list_name} <{list_id(identity.list_name, identity.list_slug, domain)}>"
    if token:
        msg["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{mailto_address(token, domain)}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body_text(mail, settings, identity, unsubscribe))
    if mail.kind != ORGANISER:  # an organiser's message is text only
        cancel = mail.kind == "cancel"
        msg.add_attachment(
            ics(ev, settings, cancel=cancel, now=now),
            maintype="text",
            subtype="calendar",
            filename="event.ics",
            params={"method": "CANCEL" if cancel else "REQUEST"},
        )
    data = msg.as_bytes(policy=SMTP)
    keys = dkim_keys(speaking)
    if keys:
        plan = SigningPlan([signer_for(k) for k in keys], [data], [], {}, DKIM_HEADERS, DKIM_OVERSIGNED)
        data = plan.sign([data], int(now.timestamp())) + data
    return bounce_address(domain), data


# ---------------------------------------------------------------------------------------------
# A round


def _campaign_ids(session: Session, slugs: set[str]) -> dict[str, int]:
    if not slugs:
        return {}
    return dict(session.execute(select(Campaign.slug, Campaign.id).where(Campaign.slug.in_(slugs))).all())


async def send_due(
    db: Database, settings: Settings, transport: Transport, worker: str, now: datetime
) -> Round:
    """Send every mail due at ``now``: each claimed first (``claim``), then sent, then marked."""
    done = Round()
    shape = load_shape(settings.workspace / "lists")
    with db.session() as session:
        due = due_mails(session, now)
        allowed = [m for m in due if may_mail(session, m)]
        campaigns = _campaign_ids(session, {m.event.campaign_slug for m in allowed})
    done.skipped += len(due) - len(allowed)
    for mail in due:  # an organiser's message not to be mailed is not looked at again
        if mail.queued_id is not None and mail not in allowed and claim(db, mail, worker, now):
            finish(db, mail.queued_id, mail, ok=False, detail="not to be mailed", now=now, status="skipped")
    for mail in allowed:
        mail_id = claim(db, mail, worker, now)
        if mail_id is None:
            done.skipped += 1
            continue
        try:
            sender, data = build_message(mail, settings, shape, campaigns.get(mail.event.campaign_slug), now)
            result = await transport.send(sender, mail.email, data_payload(data))
        except Exception as exc:  # recorded on its row; the mail is not tried again
            log.exception("event mail %s to %s failed", mail.kind, mail.rsvp_id)
            finish(db, mail_id, mail, ok=False, detail=str(exc), now=now)
            done.failed += 1
            continue
        finish(db, mail_id, mail, ok=result.ok, detail=f"{result.code} {result.text}", now=now)
        if result.ok:
            done.sent += 1
        else:
            done.failed += 1
    return done


async def event_mails_chore(context: ChoreContext) -> str:
    """The ``event-mails`` chore: send the reminders, changes, cancellations and moves up due now,
    over the worker's transport (or one of this chore's own when it has none)."""
    settings = context.settings
    now = events_now(settings, context.now)
    if context.transport is not None:
        done = await send_due(context.db, settings, context.transport, context.worker, now)
        return done.line()
    async with transport_for(settings) as transport:
        done = await send_due(context.db, settings, transport, context.worker, now)
    return done.line()


EVENT_MAILS = Chore("event-mails", timedelta(seconds=5), event_mails_chore)
"""Every five seconds, one worker at a time: the reminders and change mails due (a change or a
cancellation is told within seconds; a round with nothing due is a few indexed queries)."""
