"""Sending a campaign to the SMTP test server (tests/support/smtp_server.py), as the delivery tests set it
up: the Kent newsletter copied into the test's workspace, synthetic members imported, the campaign
prepared and enqueued, and the engine run in this process against the real aiosmtpd server.

conftest.py's ``mailing`` fixture gives a test one ``Mailing`` (its database, settings, shape,
workspace and SMTP test server together); the functions below are the same steps for tests that
hold those fixtures one by one.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import sending, tokens
from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape
from mailer.audience.synthetic import generate, write_csv
from mailer.db import Database
from mailer.message import delivery_id_from_verp
from mailer.models import Delivery, Member, Suppression
from mailer.settings import Settings
from mailer.transport import open_transport
from support.smtp_server import SmtpTestServer

REPO = Path(__file__).resolve().parents[2]
SLUG = "2025-11-kent-network"
FAST_RETRIES = (0.05, 0.1, 0.2)


class Clock:
    """A clock the test moves by hand: the engine's ``now`` (when a deferred delivery is due)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def wait(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def add_campaign(workspace: Path, audience: str | None = None) -> None:
    """The repository's Kent newsletter in ``campaigns/``, for ``audience`` if given."""
    dest = workspace / "campaigns" / SLUG
    shutil.copytree(REPO / "campaigns" / SLUG, dest)
    if audience is not None:
        path = dest / "issue.yaml"
        path.write_text(path.read_text().replace("audience: region:kent", f"audience: {audience}", 1))


def add_members(db: Database, shape: Shape, tmp_path: Path, count: int, seed: int = 11) -> None:
    """``count`` synthetic members imported (none rejected)."""
    csv_path = tmp_path / f"members-{count}.csv"
    write_csv(csv_path, generate(count, shape, seed=seed))
    with db.session() as session:
        report = import_csv(session, csv_path, shape)
    assert report.rejected == 0


def send(
    db: Database, settings: Settings, url: str, *, timeout: float = 2.0, **engine_options: Any
) -> sending.Summary:
    """One run of the engine in this process (what `mailer campaigns send` does) to the relay at
    ``url``, retrying after ``FAST_RETRIES``; ``engine_options`` go to ``sending.Engine``."""
    engine = sending.Engine(db, settings, SLUG, retry_delays=FAST_RETRIES, **engine_options)

    async def main() -> sending.Summary:
        async with open_transport(url, concurrency=4, timeout=timeout) as transport:
            return await engine.run(transport)

    return asyncio.run(main())


def prepare_and_enqueue(db: Database, settings: Settings, shape: Shape) -> sending.Enqueued:
    prepared = sending.prepare(db, settings, shape, SLUG)
    return sending.enqueue(db, prepared)


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def delivery_id_of(mail_from: str) -> int:
    m = re.fullmatch(r"bounces\+(\d+)(?:-[a-z0-9]+)?@.+", mail_from)  # the id, then its signed tag
    assert m, mail_from
    return int(m.group(1))


def expected_audience(db: Database, shape: Shape, region: str) -> set[str]:
    """Members of ``region`` or below who are not suppressed, computed without the segment compiler."""
    below = set(shape.descendants(region))
    with db.session() as session:
        suppressed = set(session.scalars(select(Suppression.address_hash)))
        return {
            m.email
            for m in session.scalars(select(Member))
            if m.region is not None and m.region.slug in below and m.address_hash not in suppressed
        }


def sent_to(session: Session, got: Any, settings: Settings | None = None) -> tuple[Delivery, Member]:
    """The delivery a message that reached the server is of, and its member: the delivery is sent
    and the member is the message's one recipient. The delivery is read from the VERP sender; given
    ``settings``, its signed tag is verified too (``delivery_id_from_verp``)."""
    if settings is None:
        delivery_id: int | None = delivery_id_of(got.mail_from)
    else:
        delivery_id = delivery_id_from_verp(got.mail_from, settings.list_domain, keys=settings.secrets)
    assert delivery_id is not None, got.mail_from
    d = session.get(Delivery, delivery_id)
    assert d is not None and d.status == "sent"
    member = session.get(Member, d.member_id)
    assert member is not None and got.rcpt_tos == [member.email]
    return d, member


def check_unsubscribe_token(msg: EmailMessage, settings: Settings, d: Delivery, member: Member) -> None:
    """The message's one-click unsubscribe link holds a token, signed with the workspace's keys, for
    this member and this campaign."""
    unsub = re.search(r"/u/([a-z0-9]+)>", str(msg["List-Unsubscribe"]))
    assert unsub
    token = tokens.verify(unsub.group(1), "unsubscribe", keys=settings.secrets)
    assert (token.member_id, token.campaign) == (member.id, d.campaign_id)


@dataclass
class Mailing:
    """One test's send to the SMTP test server: the fixtures it needs, held together."""

    db: Database
    settings: Settings
    shape: Shape
    workspace: Path
    tmp_path: Path
    smtp: SmtpTestServer

    @property
    def relay(self) -> dict[str, str]:
        """The environment that points ``mailer`` (``mailer_cli``) at the test server."""
        return {"MAILER_RELAY": self.smtp.url}

    def add(self, members: int, *, audience: str | None = None) -> None:
        """The Kent newsletter (for ``audience`` if given) and ``members`` synthetic members."""
        add_campaign(self.workspace, audience)
        add_members(self.db, self.shape, self.tmp_path, members)

    def audience(self, region: str = "kent") -> set[str]:
        """The members of ``region`` or below who are not suppressed."""
        return expected_audience(self.db, self.shape, region)

    def enqueue(self, settings: Settings | None = None) -> sending.Enqueued:
        """The campaign prepared and enqueued for its whole audience."""
        return prepare_and_enqueue(self.db, settings or self.settings, self.shape)

    def enqueue_kent(self, members: int, settings: Settings | None = None) -> list[str]:
        """The Kent newsletter enqueued for ``members`` synthetic members; its audience, sorted."""
        self.add(members)
        self.enqueue(settings)
        return sorted(self.audience())

    def send(self, settings: Settings | None = None, **options: Any) -> sending.Summary:
        """One run of the engine to the test server (``send``'s options)."""
        return send(self.db, settings or self.settings, self.smtp.url, **options)
