"""``mailer inbound process SOURCE``: read inbound mail, classify it, and act, once per mail.

The pipeline, per mail, in one transaction:

1. ``classify`` the bytes (``mailer.inbound.classify``): a kind, what the mail offers as proof of
   the delivery it answers, and each recipient's failure with its RFC 3463 status. A mail that
   cannot be read is **quarantined**: recorded with the reason, set aside by the source (a Maildir's
   ``.quarantine`` folder; IMAP: flagged ``$MailerQuarantined``), and the run goes on.
2. Record the mail's fingerprint in ``inbound_messages`` (``INSERT … ON CONFLICT DO NOTHING``): a
   mail seen before, from any source, stops here and changes nothing.
3. **Prove** whom a bounce, delay, policy block or complaint concerns (anyone can write to our
   addresses): its signed VERP tag verified, or the returned message quotes the Message-ID the
   delivery really had (its signed tag verified, the campaign's slug included) and the delivery's
   member is the recipient the report names in its recipient fields (a DSN's,
   ``X-Failed-Recipients``, an ARF Original-Rcpt-To). Anything else is recorded as **unverified**,
   with the reason, and changes nothing: an address in free text, an unsigned or forged VERP address,
   a guessed Message-ID (the old form without a tag, or a tag that does not verify), a bounce sent to
   the untagged ``bounces@`` address of system mail.
4. Act on its kind, recording a ``bounce_events`` row for each proven bounce, delay or complaint:

   ========== ===========================================================================
   hard       suppress at once (reason hard-bounce, source bounce, the campaign's slug)
   soft       suppress once soft bounces of ``soft_bounce_limit`` distinct deliveries fall within
              ``soft_bounce_days`` (the same delivery bouncing again counts once)
   policy     recorded against the campaign; the member is not touched
   delay      recorded; nothing else (the relay is still trying)
   complaint  suppress (reason complaint, source bounce)
   unsubscribe verify the token (purpose unsubscribe), then leave the network of the token's campaign
              (source mailto), or, in a single-network workspace, suppress (reason unsubscribe)
   unsubscribe-request  a person's reply asking to leave (``mailer.inbound.requests``): acted on
              when its From is proved by an aligned DKIM signature (or our MTA's
              Authentication-Results), else kept pending for a person
   auto-reply, unknown: recorded as seen; nothing else
   ========== ===========================================================================

Every suppression goes through ``mailer.audience.consent``, which logs it in the consent log. Then
the source sets the mail aside (``Source.done`` or ``Source.quarantine``), after the commit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer import tokens
from mailer.audience import addresses, consent
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import ConfigError, InvalidInput, TokenError
from mailer.inbound import requests
from mailer.inbound.authentic import Authenticity, authenticate
from mailer.inbound.classify import NEEDS_PROOF, Classification, Failure, classify
from mailer.inbound.parse import parse_headers
from mailer.inbound.sources import opened
from mailer.message import message_id
from mailer.models import BounceEvent, Campaign, Delivery, InboundMessage, Member
from mailer.settings import Settings

#: Failure kinds, worst first: the one that decides when a report names several.
_SEVERITY = ("hard", "policy", "soft", "delay")
_KIND_OF_FAILURE = {"hard": "hard-bounce", "soft": "soft-bounce", "policy": "policy", "delay": "delay"}


@dataclass(frozen=True)
class Outcome:
    """What processing one mail did."""

    key: str  # where the mail was (file name, mbox number, IMAP uid)
    kind: str  # the classification's kind; "unverified" when it proved nothing; "quarantined"
    action: str  # what was done, in words: "suppressed (hard-bounce)", "ignored", "duplicate", …
    duplicate: bool = False
    suppressed: bool = False  # a new suppression was added
    delivery_id: int | None = None
    campaign: str | None = None
    member_id: int | None = None
    status: str = ""
    reason: str = ""
    claimed: str = ""  # for an unverified mail: the kind it looked like
    quarantined: bool = False  # set aside unread (this time, or when first seen if a duplicate)
    pending: bool = False  # a reply asking to leave, kept for a person (its From not proved)


@dataclass
class ProcessReport:
    """What ``process_source`` did with every mail of a source."""

    source: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return len(self.outcomes)

    @property
    def duplicates(self) -> int:
        return sum(o.duplicate for o in self.outcomes)

    @property
    def suppressed(self) -> int:
        return sum(o.suppressed for o in self.outcomes)

    @property
    def quarantined(self) -> int:
        """Mails quarantined by this run (not counting those seen before)."""
        return sum(o.quarantined and not o.duplicate for o in self.outcomes)

    @property
    def pending(self) -> int:
        """Replies asking to leave that wait for a person (their From not proved)."""
        return sum(o.pending and not o.duplicate for o in self.outcomes)

    @property
    def unverified(self) -> int:
        """Bounces and complaints that proved nothing, so changed nothing."""
        return sum(o.kind == "unverified" and not o.duplicate for o in self.outcomes)

    @property
    def by_kind(self) -> dict[str, int]:
        """New (not duplicate) mails by kind."""
        return dict(Counter(o.kind for o in self.outcomes if not o.duplicate))

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "messages": self.messages,
            "new": self.messages - self.duplicates,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "quarantined": self.quarantined,
            "unverified": self.unverified,
            "pending": self.pending,
            "by_kind": self.by_kind,
            "messages_detail": [asdict(o) for o in self.outcomes],
        }


def process_source(
    db: Database,
    settings: Settings,
    spec: str | Path,
    *,
    imap_password: str | None = None,
    now: datetime | None = None,
) -> ProcessReport:
    """Process every mail in the Maildir, mbox file or ``imaps://`` folder ``spec``; see the module
    docstring. A mail that cannot be read is quarantined and the run goes on. Running it again
    changes nothing."""
    shape = _shape(settings)
    with opened(spec, imap_password=imap_password) as source:
        report = ProcessReport(source.name)
        for item in source.items():
            outcome = process_message(
                db, settings, item.raw, key=item.key, source=source.name, now=now, shape=shape
            )
            if outcome.quarantined:
                source.quarantine(item)
            else:
                source.done(item)
            report.outcomes.append(outcome)
    return report


def process_sources(
    db: Database,
    settings: Settings,
    specs: list[str] | None = None,
    *,
    imap_password: str | None = None,
    now: datetime | None = None,
) -> list[ProcessReport]:
    """``process_source`` for each of ``specs``, by default every configured source (the
    ``reply_sources`` setting); ``ConfigError`` with the fix when none is configured."""
    chosen = list(specs) if specs else settings.reply_source_list
    if not chosen:
        raise ConfigError(
            "no mailbox to read: name one, or set reply_sources in mailer.toml",
            field="reply_sources",
            hint='e.g. reply_sources = ["maildir:/var/mail/kent-replies"], or `mailer inbound process PATH`',
        )
    return [process_source(db, settings, spec, imap_password=imap_password, now=now) for spec in chosen]


def process_message(
    db: Database,
    settings: Settings,
    raw: bytes,
    *,
    key: str = "",
    source: str = "",
    now: datetime | None = None,
    shape: Shape | None = None,
) -> Outcome:
    """Classify one mail and act on it, in one transaction; a mail seen before changes nothing.
    ``shape``: the workspace's lists (read when a reply asks to leave, if not given)."""
    c = classify(raw, settings.list_domain, keys=settings.secrets)
    moment = now or datetime.now(UTC)
    auth = _authenticity(raw, settings) if c.kind == "unsubscribe-request" else None
    with db.session() as session:
        inbound_id = _record(session, c, source=f"{source}:{key}" if key else source, now=moment)
        if inbound_id is None:
            first = session.scalar(
                select(InboundMessage.kind).where(InboundMessage.fingerprint == c.fingerprint)
            )
            return Outcome(
                key,
                c.kind,
                "duplicate: processed before",
                duplicate=True,
                delivery_id=c.delivery_id,
                quarantined=first == "quarantined",
            )
        if c.kind == "quarantined":
            return Outcome(key, c.kind, f"set aside unread: {c.reason}", reason=c.reason, quarantined=True)
        if auth is not None:
            got = requests.receive(
                session, settings, shape or _shape(settings), c, auth, inbound_id=inbound_id, now=moment
            )
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbound_id)
                .values(detail=f"{c.reason}; reply {got.request_id}: {got.action}"[:2000])
            )
            return Outcome(
                key,
                c.kind,
                f"reply {got.request_id}: {got.action}",
                suppressed=got.acted and got.action.startswith("unsubscribed"),
                member_id=got.member_id,
                reason=c.reason,
                pending=not got.acted,
            )
        return _Act(session, settings, c, inbound_id, key, moment).run()


# ---------------------------------------------------------------------------------------------------


def _record(session: Session, c: Classification, *, source: str, now: datetime) -> int | None:
    """Insert the mail's fingerprint; None if it was there already."""
    dialect = session.get_bind().dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert_(InboundMessage)
        .values(
            fingerprint=c.fingerprint,
            message_id=c.message_id,
            source=source.encode("utf-8", "replace").decode("utf-8").replace("\0", " ")[:500],
            kind=c.kind,
            subject=c.subject,
            detail=c.reason,
            processed_at=now,
        )
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(InboundMessage.id)
    )
    row = session.execute(stmt).first()
    return None if row is None else int(row[0])


def _authenticity(raw: bytes, settings: Settings) -> Authenticity:
    """Whether a reply proves its From (its DKIM signature looked up in the DNS: before the
    transaction opens, so that no look-up holds one)."""
    try:
        return authenticate(raw, parse_headers(raw), settings)
    except Exception as exc:  # hostile bytes met a corner of a parser: not proved, never a crash
        return Authenticity(False, "", why=f"it could not be checked ({type(exc).__name__})")


def _shape(settings: Settings) -> Shape:
    """The workspace's lists; lists that cannot be read count as one network (so a reply's
    unsubscribe leaves all mail: never narrower than the member asked)."""
    from mailer.audience.shape import load_shape
    from mailer.errors import MailerError

    try:
        return load_shape(settings.path("lists"))
    except (MailerError, OSError):
        return Shape()


def _declared_networks(settings: Settings) -> list[str]:
    """The networks the workspace declares (``lists/networks.toml``), for the scope of a mailed
    unsubscribe. Lists that cannot be read count as one network, so the unsubscribe leaves all mail:
    never narrower than the member asked."""
    from mailer.audience.shape import load_shape
    from mailer.errors import MailerError

    try:
        return list(load_shape(settings.path("lists")).networks)
    except (MailerError, OSError):
        return []


@dataclass(frozen=True)
class _Target:
    """Whom a failure or complaint concerns."""

    address_hash: str | None
    member_id: int | None


class _Act:
    def __init__(
        self,
        session: Session,
        settings: Settings,
        c: Classification,
        inbound_id: int,
        key: str,
        now: datetime,
    ) -> None:
        self.session = session
        self.settings = settings
        self.c = c
        self.inbound_id = inbound_id
        self.key = key
        self.now = now
        self.delivery: Delivery | None = None
        self.campaign_id: int | None = None
        self.campaign: str | None = None
        self.member: _Target | None = None
        self.failures = list(c.failures)  # those that concern the proven member

    def run(self) -> Outcome:
        kind = self.c.kind
        if kind in NEEDS_PROOF:
            why = self.prove()
            if why:
                return self.unverified(why)
            if self.member is None:
                return self.outcome(f"ignored: delivery {self.c.delivery_id} or its member no longer exists")
            return self.complaint() if kind == "complaint" else self.bounce()
        if kind == "unsubscribe":
            return self.unsubscribe()
        return self.outcome("ignored")

    # -- proof --------------------------------------------------------------------------------------

    def prove(self) -> str:
        """Why the mail does not prove which delivery it answers; "" when it does (then loaded)."""
        c = self.c
        if c.proof == "verp":  # signed by us: the delivery is the one it names, if it still exists
            assert c.delivery_id is not None
            self._load(c.delivery_id)
            return ""
        if c.proof != "message-id" or c.delivery_id is None:
            return c.unproven or "nothing in it proves it answers a message we sent"
        quoted = c.quoted_message_id
        self._load(c.delivery_id)
        if self.delivery is None or self.campaign is None:
            return f"{c.unproven.split(';')[0]}; the quoted Message-ID {quoted} names no delivery we sent"
        domain = self.settings.list_domain
        had = {
            message_id(self.delivery.id, self.campaign, domain, keys=[k]).lower()
            for k in self.settings.secrets
        }
        if quoted not in had:  # under any of the keys: it may have been sent before a rotation
            return f"the quoted Message-ID {quoted} is not the one delivery {self.delivery.id} had"
        if c.kind == "complaint":
            named = [c.complainant]
        else:
            self.failures = [f for f in c.failures if f.source != "text" and self._is_member(f.recipient)]
            named = [f.recipient for f in self.failures]
        if not any(self._is_member(address) for address in named):
            return (
                f"the quoted Message-ID {quoted} names delivery {self.delivery.id}, but its member is not "
                "a recipient this report names in a recipient field"
            )
        return ""

    def _load(self, delivery_id: int) -> None:
        self.delivery = self.session.get(Delivery, delivery_id)
        if self.delivery is None:
            return
        self.campaign_id = self.delivery.campaign_id
        self.campaign = self.session.scalar(select(Campaign.slug).where(Campaign.id == self.campaign_id))
        if self.delivery.member_id is not None:
            member_hash = self.session.scalar(
                select(Member.address_hash).where(Member.id == self.delivery.member_id)
            )
            if member_hash is not None:
                self.member = _Target(member_hash, self.delivery.member_id)

    def _is_member(self, address: str) -> bool:
        if not address or self.member is None:
            return False
        try:
            return addresses.hash_of(self.session, address) == self.member.address_hash
        except InvalidInput:
            return False

    # -- the kinds ----------------------------------------------------------------------------------

    def unverified(self, why: str) -> Outcome:
        c = self.c
        what = " ".join(x for x in (c.kind, c.status) if x)
        detail = f"{what} ({c.reason}), unverified: {why}"
        self.session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == self.inbound_id)
            .values(kind="unverified", detail=detail[:2000])
        )
        return Outcome(
            self.key,
            "unverified",
            f"looks like a {what} but changed nothing: {why}",
            delivery_id=c.delivery_id,
            status=c.status,
            reason=why,
            claimed=c.kind,
        )

    def bounce(self) -> Outcome:
        assert self.member is not None
        failure = self._decisive()
        self._event(self.member, failure.kind, failure.status, failure.diagnostic)
        suppressed = False
        if failure.kind == "hard":
            suppressed = self._suppress(self.member, "hard-bounce", f"{failure.status} {failure.diagnostic}")
            action = "suppressed (hard bounce)"
        elif failure.kind == "soft":
            count = self._soft_count(self.member.address_hash)
            limit = self.settings.soft_bounce_limit
            if count >= limit:
                detail = (
                    f"{count} soft bounces in {self.settings.soft_bounce_days} days; last: "
                    f"{failure.status} {failure.diagnostic}"
                )
                suppressed = self._suppress(self.member, "hard-bounce", detail)
                action = f"suppressed ({count} soft bounces)"
            else:
                action = f"soft bounce {count} of {limit}"
        elif failure.kind == "policy":
            action = "recorded against the campaign (policy)"
        else:
            action = "recorded (delayed, still being retried)"
        return self.outcome(action, suppressed=suppressed, status=failure.status)

    def complaint(self) -> Outcome:
        assert self.member is not None
        self._event(self.member, "complaint", "", f"ARF {self.c.feedback_type}".strip())
        suppressed = self._suppress(self.member, "complaint", f"feedback report: {self.c.feedback_type}")
        return self.outcome("suppressed (complaint)", suppressed=suppressed)

    def unsubscribe(self) -> Outcome:
        assert self.c.token is not None
        try:
            data = tokens.verify(self.c.token, "unsubscribe", keys=self.settings.secrets)
        except TokenError as exc:
            why = getattr(exc, "reason", str(exc))
            return self.outcome(f"ignored: the unsubscribe token is not valid ({why})")
        done = consent.unsubscribe_scoped(
            self.session,
            data.member_id,
            source="mailto",
            campaign_id=data.campaign,
            networks=_declared_networks(self.settings),
            detail=f"mail to the unsubscribe address: {self.c.message_id}"[:500],
        )
        if done is None:
            return self.outcome("ignored: the member no longer exists")
        if done.network is not None:
            action = f"left network {done.network}" + ("" if done.newly else " (had left it already)")
        else:
            action = "unsubscribed" if done.newly else "unsubscribed (was already suppressed)"
        return Outcome(
            self.key,
            self.c.kind,
            action,
            suppressed=done.newly and done.network is None,
            campaign=done.campaign,
            member_id=data.member_id,
            reason=self.c.reason,
        )

    # -- helpers -------------------------------------------------------------------------------------

    def outcome(self, action: str, *, suppressed: bool = False, status: str = "") -> Outcome:
        return Outcome(
            self.key,
            self.c.kind,
            action,
            suppressed=suppressed,
            delivery_id=self.delivery.id if self.delivery else self.c.delivery_id,
            campaign=self.campaign,
            member_id=self.member.member_id if self.member else None,
            status=status,
            reason=self.c.reason,
        )

    def _decisive(self) -> Failure:
        """The worst failure among those that concern the member (all of them, with a VERP tag)."""
        failures = self.failures or list(self.c.failures)
        return min(failures, key=lambda f: _SEVERITY.index(f.kind))

    def _event(self, target: _Target, kind: str, status: str, diagnostic: str) -> None:
        self.session.add(
            BounceEvent(
                inbound_id=self.inbound_id,
                campaign_id=self.campaign_id,
                delivery_id=self.delivery.id if self.delivery else None,
                member_id=target.member_id,
                address_hash=target.address_hash,
                kind=kind,
                status=status[:16],
                diagnostic=diagnostic[:2000],
                created_at=self.now,
            )
        )
        self.session.flush()

    def _soft_count(self, address_hash: str | None) -> int:
        """Distinct deliveries to the address that soft-bounced within the window."""
        since = self.now - timedelta(days=self.settings.soft_bounce_days)
        return int(
            self.session.scalar(
                select(func.count(func.distinct(BounceEvent.delivery_id))).where(
                    BounceEvent.address_hash == address_hash,
                    BounceEvent.kind == "soft",
                    BounceEvent.delivery_id.is_not(None),
                    BounceEvent.created_at > since,
                    BounceEvent.created_at <= self.now,
                )
            )
            or 0
        )

    def _suppress(self, target: _Target, reason: str, detail: str) -> bool:
        assert target.address_hash is not None
        return consent.unsubscribe(
            self.session,
            target.address_hash,
            reason=reason,
            source="bounce",
            campaign=self.campaign,
            detail=" ".join(detail.split())[:500],
        )
