"""The demo workspace (Kent and Central England) opened with its members imported, Bo (``MEMBER``:
in Birmingham, interested in MP advocacy, so in both networks' audiences) added, and its web app
(``open_demo``); then what a send and an unsubscribe recorded: the network a campaign speaks as, the
networks left, the consent log, suppressions, the unsubscribe links of a message."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select
from starlette.applications import Starlette

from mailer import sending, tokens
from mailer.audience.addresses import normalise
from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape, load_shape, sync
from mailer.db import Database, open_database
from mailer.models import Campaign, ConsentEvent, Member, NetworkLeave, Region, Suppression
from mailer.settings import Settings, load
from mailer.web import create_app
from mailer.workspace import init_workspace
from support.hashes import address_hash, use_test_key
from support.smtp_server import SmtpTestServer

CE_ISSUE = "2025-12-central-england"
KENT_ALERT = "2025-11-echr-alert"
BASE = "http://127.0.0.1:8000"
TEST_SECRET = "I6yzj8FjALhZrPdPg1f7_pOKb12CJvwzrGnlnmBobdwNX_-BVeirKbBQDJRlJsrz"
MEMBER = "both.networks@example.org"  # in Birmingham (Central England), interested in MP advocacy


@dataclasses.dataclass
class Demo:
    root: Path
    settings: Settings
    shape: Shape
    db: Database
    app: Starlette
    smtp: SmtpTestServer

    def send(self, slug: str, segment: str | None = None) -> int:
        """Send ``slug`` (in this process) to the test SMTP server; the campaign's id."""
        plan = sending.plan_send(self.db, self.settings, self.shape, slug, segment=segment, in_process=True)
        sending.send(plan)
        return campaign_id(self.db, slug)


def demo_settings(root: Path, database_url: str, relay: str) -> Settings:
    settings = load(root, env={"MAILER_DATABASE_URL": database_url, "MAILER_SECRET": TEST_SECRET})
    return dataclasses.replace(settings, relay=relay)


@contextmanager
def open_demo(tmp_path: Path, database_url: str, smtp_server: SmtpTestServer) -> Iterator[Demo]:
    """The demo workspace with its members imported and Bo (``MEMBER``) added, and its web app."""
    root = tmp_path / "demo"
    init_workspace(root, demo=True)
    use_test_key(root)  # Bo is added below with the tests' hash of his address
    settings = demo_settings(root, database_url, smtp_server.url)
    shape = load_shape(root / "lists")
    assert set(shape.networks) == {"kent", "central-england"}
    db = open_database(settings)
    with db.session() as session:
        sync(session, shape)
        import_csv(session, root / "lists" / "members.csv", shape)
    add_member(db, MEMBER, region="birmingham", interests=("mp-advocacy", "refugees"))
    app = create_app(settings, shape=shape, database=db)
    try:
        yield Demo(root, settings, shape, db, app, smtp_server)
    finally:
        db.dispose()


def add_member(db: Database, address: str, *, region: str, interests: tuple[str, ...]) -> int:
    from mailer.models import Interest

    with db.session() as s:
        region_id = s.scalar(select(Region.id).where(Region.slug == region))
        chosen = list(s.scalars(select(Interest).where(Interest.slug.in_(interests))))
        normal = normalise(address)
        member = Member(
            email=normal,
            address_hash=address_hash(normal),
            name="Bo Both",
            region_id=region_id,
            interests=chosen,
        )
        s.add(member)
        s.flush()
        return member.id


def member_id(db: Database, address: str = MEMBER) -> int:
    with db.session() as s:
        found = s.scalar(select(Member.id).where(Member.email == normalise(address)))
        assert found is not None
        return found


def campaign_id(db: Database, slug: str) -> int:
    with db.session() as s:
        found = s.scalar(select(Campaign.id).where(Campaign.slug == slug))
        assert found is not None
        return found


def ensure_network(db: Database, slug: str, network: str) -> None:
    """The send recorded the network the campaign speaks as (prepare() resolves it)."""
    with db.session() as s:
        assert s.scalar(select(Campaign.network).where(Campaign.slug == slug)) == network


def messages_to(smtp: SmtpTestServer, address: str) -> list[EmailMessage]:
    out = []
    for received in smtp.messages:
        if address in received.rcpt_tos:
            msg = email.message_from_bytes(received.data, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
    return out


def unsubscribe_urls(msg: EmailMessage) -> tuple[str, str]:
    """The https (path only) and mailto unsubscribe targets of the List-Unsubscribe header."""
    header = " ".join(str(msg["List-Unsubscribe"]).split())
    https = re.search(r"<https?://[^/>]+(/u/[^>]+)>", header)
    mailto = re.search(r"<mailto:([^>]+)>", header)
    assert https and mailto, header
    return https.group(1), mailto.group(1)


def leaves(db: Database) -> list[tuple[int, str, str, str | None]]:
    with db.session() as s:
        rows = s.execute(
            select(NetworkLeave.member_id, NetworkLeave.network, NetworkLeave.source, NetworkLeave.campaign)
        ).all()
        return sorted((r[0], r[1], r[2], r[3]) for r in rows)


def log(db: Database, member: int) -> list[tuple[str, str, str | None, str]]:
    with db.session() as s:
        rows = s.scalars(
            select(ConsentEvent).where(ConsentEvent.member_id == member).order_by(ConsentEvent.id)
        )
        return [(e.action, e.source, e.campaign, e.detail) for e in rows]


def suppressed(db: Database, address: str = MEMBER) -> Suppression | None:
    with db.session() as s:
        return s.get(Suppression, address_hash(normalise(address)))


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def prefs_path(settings: Settings, member: int, campaign: int | None) -> str:
    return "/p/" + tokens.sign("preferences", member, keys=settings.secrets, campaign=campaign)


def unsub_path(settings: Settings, member: int, campaign: int | None) -> str:
    return "/u/" + tokens.sign("unsubscribe", member, keys=settings.secrets, campaign=campaign)
