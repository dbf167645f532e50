"""``mailer inbound process SOURCE``: read inbound mail, classify it, and act, once per mail.

The pipeline, per mail, in one transaction:

1. ``classify`` the bytes (``mailer.inbound.classify``): a kind, the delivery named by VERP, and
   each recipient's failure with its RFC 3463 status.
2. Record the mail's fingerprint in ``inbound_messages`` (``INSERT … ON CONFLICT DO NOTHING``): a
   mail seen before, from any source, stops here and changes nothing.
3. Find whom it concerns: the member of the delivery (``deliveries.member_id``) when the VERP address
   or Message-ID names one, else the member whose address the report names.
4. Act on its kind, recording a ``bounce_events`` row for each bounce, delay or complaint:

   ========== ===========================================================================
   hard       suppress at once (reason hard-bounce, source bounce, the campaign's slug)
   soft       suppress once ``soft_bounce_limit`` soft bounces fall within ``soft_bounce_days``
   policy     recorded against the campaign; the member is not touched
   delay      recorded; nothing else (the relay is still trying)
   complaint  suppress (reason complaint, source bounce)
   unsubscribe verify the token (purpose unsubscribe) and suppress (reason unsubscribe, source mailto,
              the token's campaign)
   auto-reply, unknown: recorded as seen; nothing else
   ========== ===========================================================================

Every suppression goes through ``mailer.audience.consent``, which logs it in the consent log. Then
the source sets the mail aside (``Source.done``), after the commit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer import tokens
from mailer.audience import addresses, consent
from mailer.db import Database
from mailer.errors import InvalidInput, TokenError
from mailer.inbound.classify import Classification, Failure, classify
from mailer.inbound.sources import opened
from mailer.models import BounceEvent, Campaign, Delivery, InboundMessage, Member
from mailer.settings import Settings


@dataclass(frozen=True)
class Outcome:
    """What processing one mail did."""

    key: str  # where the mail was (file name, mbox number, IMAP uid)
    kind: str  # the classification's kind
    action: str  # what was done, in words: "suppressed (hard-bounce)", "ignored", "duplicate", …
    duplicate: bool = False
    suppressed: bool = False  # a new suppression was added
    delivery_id: int | None = None
    campaign: str | None = None
    member_id: int | None = None
    status: str = ""
    reason: str = ""


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
    docstring. Running it again changes nothing."""
    with opened(spec, imap_password=imap_password) as source:
        report = ProcessReport(source.name)
        for item in source.items():
            outcome = process_message(db, settings, item.raw, key=item.key, source=source.name, now=now)
            source.done(item)
            report.outcomes.append(outcome)
    return report


def process_message(
    db: Database,
    settings: Settings,
    raw: bytes,
    *,
    key: str = "",
    source: str = "",
    now: datetime | None = None,
) -> Outcome:
    """Classify one mail and act on it, in one transaction; a mail seen before changes nothing."""
    c = classify(raw, settings.list_domain)
    moment = now or datetime.now(UTC)
    with db.session() as session:
        inbound_id = _record(session, c, source=f"{source}:{key}" if key else source, now=moment)
        if inbound_id is None:
            return Outcome(
                key, c.kind, "duplicate: processed before", duplicate=True, delivery_id=c.delivery_id
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
            source=source[:500],
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
        self.delivery = session.get(Delivery, c.delivery_id) if c.delivery_id is not None else None
        self.campaign_id = self.delivery.campaign_id if self.delivery else None
        self.campaign = (
            session.scalar(select(Campaign.slug).where(Campaign.id == self.campaign_id))
            if self.campaign_id is not None
            else None
        )
        self.delivery_member: _Target | None = None
        if self.delivery is not None and self.delivery.member_id is not None:
            member_hash = session.scalar(
                select(Member.address_hash).where(Member.id == self.delivery.member_id)
            )
            if member_hash is not None:
                self.delivery_member = _Target(member_hash, self.delivery.member_id)

    def run(self) -> Outcome:
        kind = self.c.kind
        if kind in ("hard-bounce", "soft-bounce", "policy", "delay"):
            return self.bounce()
        if kind == "complaint":
            return self.complaint()
        if kind == "unsubscribe":
            return self.unsubscribe()
        return self.outcome("ignored")

    # -- the kinds ----------------------------------------------------------------------------------

    def bounce(self) -> Outcome:
        failures = list(self.c.failures)
        if self.delivery_member is not None:
            # VERP names the delivery: one decision for its member, by the failure that set the kind.
            decisive = self._decisive(failures)
            pairs = [(self.delivery_member, decisive)]
        else:
            pairs = [(self._by_address(f.recipient), f) for f in failures]
        actions: list[str] = []
        suppressed = False
        for target, failure in pairs:
            self._event(target, failure.kind, failure.status, failure.diagnostic)
            if target.address_hash is None or target.member_id is None:
                actions.append(f"{failure.kind}: no member found for {failure.recipient or 'this bounce'}")
                continue
            if failure.kind == "hard":
                suppressed |= self._suppress(target, "hard-bounce", f"{failure.status} {failure.diagnostic}")
                actions.append("suppressed (hard bounce)")
            elif failure.kind == "soft":
                count = self._soft_count(target.address_hash)
                limit = self.settings.soft_bounce_limit
                if count >= limit:
                    detail = (
                        f"{count} soft bounces in {self.settings.soft_bounce_days} days; last: "
                        f"{failure.status} {failure.diagnostic}"
                    )
                    suppressed |= self._suppress(target, "hard-bounce", detail)
                    actions.append(f"suppressed ({count} soft bounces)")
                else:
                    actions.append(f"soft bounce {count} of {limit}")
            elif failure.kind == "policy":
                actions.append("recorded against the campaign (policy)")
            else:
                actions.append("recorded (delayed, still being retried)")
        status = self.c.status
        return self.outcome("; ".join(actions) or "nothing found", suppressed=suppressed, status=status)

    def complaint(self) -> Outcome:
        target = self.delivery_member or self._by_address(self.c.complainant)
        self._event(target, "complaint", "", f"ARF {self.c.feedback_type}".strip())
        if target.address_hash is None or target.member_id is None:
            return self.outcome("complaint: no member found")
        suppressed = self._suppress(target, "complaint", f"feedback report: {self.c.feedback_type}")
        return self.outcome("suppressed (complaint)", suppressed=suppressed)

    def unsubscribe(self) -> Outcome:
        assert self.c.token is not None
        try:
            data = tokens.verify(self.c.token, "unsubscribe", keys=self.settings.secrets)
        except TokenError as exc:
            why = getattr(exc, "reason", str(exc))
            return self.outcome(f"ignored: the unsubscribe token is not valid ({why})")
        done = consent.unsubscribe_member(
            self.session,
            data.member_id,
            source="mailto",
            campaign_id=data.campaign,
            detail=f"mail to the unsubscribe address: {self.c.message_id}"[:500],
        )
        if done is None:
            return self.outcome("ignored: the member no longer exists")
        return Outcome(
            self.key,
            self.c.kind,
            "unsubscribed" if done.newly else "unsubscribed (was already suppressed)",
            suppressed=done.newly,
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
            member_id=self.delivery_member.member_id if self.delivery_member else None,
            status=status,
            reason=self.c.reason,
        )

    def _decisive(self, failures: list[Failure]) -> Failure:
        wanted = {"hard-bounce": "hard", "soft-bounce": "soft", "policy": "policy", "delay": "delay"}[
            self.c.kind
        ]
        return next(f for f in failures if f.kind == wanted)

    def _by_address(self, address: str) -> _Target:
        if not address:
            return _Target(None, None)
        try:
            address_hash = addresses.hash_of(address)
        except InvalidInput:
            return _Target(None, None)
        member_id = self.session.scalar(select(Member.id).where(Member.address_hash == address_hash))
        return _Target(address_hash, member_id)

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

    def _soft_count(self, address_hash: str) -> int:
        since = self.now - timedelta(days=self.settings.soft_bounce_days)
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(BounceEvent)
                .where(
                    BounceEvent.address_hash == address_hash,
                    BounceEvent.kind == "soft",
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
