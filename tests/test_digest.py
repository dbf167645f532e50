"""The "what's on near you" digest (docs/events.md, The digest): started by the workers' chore when
its run is due, as a campaign of its own; each member gets the events of their regions and
interests in the next days; a member with none gets nothing. On both databases."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from support.digests import DIGEST, add_digest, demo_calendar
from support.rendering import check_golden
from support.sending import parse
from support.smtp_server import SmtpTestServer

from mailer import sending
from mailer.audience.shape import Shape
from mailer.chores import default_chores
from mailer.db import Database
from mailer.errors import DeliveryError
from mailer.events.digest import last_run, next_run
from mailer.issue import Digest, load_campaign
from mailer.models import Campaign, Delivery, Member
from mailer.models import Variant as VariantRow
from mailer.sending.chores import run_due_chores
from mailer.settings import Settings
from mailer.transport import open_transport

LONDON = ZoneInfo("Europe/London")
MONDAY = datetime(2025, 11, 24, 8, 30, tzinfo=LONDON)  # a Monday, half an hour after the digest is due
RUN = f"{DIGEST}-2025-11-24"
GOLDEN = Path(__file__).parent / "golden" / "digest"
CANTERBURY_NO_INTERESTS = "laura.taylor.162@example.org"

# The Kent newsletter's events from 24 November for 14 days that a Canterbury member with no
# interests sees: the Canterbury ones and those for all of Kent (none of them for an interest).
CANTERBURY_EVENTS = [
    "Tuesday 25 November from 6:00pm to 7:30pm: Online training session on Direct Action",
    "Saturday 29 November at 10:45am: Soroptimist International Canterbury march to raise awareness "
    "of domestic violence against women and girls",
    "Wednesday 3 December from 1:00pm to 3:00pm: Monthly Guantanamo vigil",
]
SOUTH_EAST_ONLY = "soren.clarke.1@example.org"  # lives in South East, above Kent: no event is for them


def chores(db: Database, settings: Settings, now: datetime) -> list[str]:
    return asyncio.run(run_due_chores(db, settings, default_chores(settings), worker="w1", now=now))


def deliver(db: Database, settings: Settings, slug: str, smtp: SmtpTestServer) -> None:
    engine = sending.Engine(db, settings, slug)

    async def main() -> None:
        async with open_transport(smtp.url, concurrency=2, timeout=5) as transport:
            await engine.run(transport)

    asyncio.run(main())


def short_list(text: str) -> list[str]:
    """The digest's short list (the lines after "Near you in the next … days:"), unwrapped."""
    block = text.split("days:", 1)[1].split("The events", 1)[0]
    return [re.sub(r"\s+", " ", item).strip() for item in block.split("· ")[1:]]


@pytest.mark.slow
def test_a_weekly_digest_lists_each_members_events_and_skips_members_with_none(
    db: Database, settings: Settings, shape: Shape, workspace: Path, smtp_server: SmtpTestServer
) -> None:
    demo_calendar(db, settings, shape, workspace)
    add_digest(workspace)
    assert chores(db, settings, MONDAY - timedelta(hours=1)) == [], "not due before 8am"
    said = chores(db, settings, MONDAY)
    assert len(said) == 1 and said[0].startswith(f"digests: {RUN}: ")
    assert chores(db, settings, MONDAY + timedelta(minutes=5)) == [], "a run starts once"

    deliver(db, settings, RUN, smtp_server)
    got = {m.rcpt_tos[0]: parse(m.data) for m in smtp_server.messages}
    with db.session() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == RUN)).one()
        assert campaign.kind == "digest"
        members = {m.email: m.region.slug if m.region else None for m in session.scalars(select(Member))}
        delivered = set(
            session.scalars(select(Member.email).join(Delivery).where(Delivery.campaign_id == campaign.id))
        )
        laura = session.scalars(
            select(VariantRow)
            .join(Delivery, Delivery.variant_id == VariantRow.id)
            .join(Member)
            .where(Member.email == CANTERBURY_NO_INTERESTS, Delivery.campaign_id == campaign.id)
        ).one()
        check_golden(GOLDEN / "canterbury-no-interests.txt", laura.text)
        check_golden(GOLDEN / "canterbury-no-interests.html", laura.html)
    assert set(got) == delivered and SOUTH_EAST_ONLY not in delivered
    networks = {"kent", "central-england"}
    for address in delivered:  # the events in the window are Kent's and Central England's
        assert networks & set(shape.ancestors(members[address])), address
    assert len(delivered) < len(members), "a member with no event gets nothing"
    for address, msg in got.items():
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert short_list(text), f"{address} got a digest with no event"
        assert msg["Subject"] == "What's on near you" and msg["List-Unsubscribe"]
    laura_text = got[CANTERBURY_NO_INTERESTS].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert short_list(laura_text) == CANTERBURY_EVENTS
    assert "to your calendar:\r\n  http://127.0.0.1:8000/calendar/event/" in laura_text
    rsvp = re.search(r"/rsvp/2025-11-kent-network-soroptimist-march-1/([a-z2-7]+)\r\n", laura_text)
    assert rsvp, "the member's own RSVP link, its token filled in"


def test_the_schedule_weekly_and_monthly(workspace: Path) -> None:
    digest = load_campaign(add_digest(workspace).parent.parent.parent, DIGEST, None).issue
    assert isinstance(digest, Digest)
    assert last_run(digest, LONDON, MONDAY) == datetime(2025, 11, 24, 8, 0, tzinfo=LONDON)
    assert last_run(digest, LONDON, MONDAY - timedelta(hours=1)) == datetime(
        2025, 11, 17, 8, 0, tzinfo=LONDON
    )
    assert next_run(digest, LONDON, MONDAY) == datetime(2025, 12, 1, 8, 0, tzinfo=LONDON)
    assert last_run(digest, LONDON, datetime(2025, 10, 30, tzinfo=LONDON)) is None, "before its date"
    monthly = digest.model_copy(update={"every": "monthly", "day": 1})
    assert last_run(monthly, LONDON, MONDAY) == datetime(2025, 11, 1, 8, 0, tzinfo=LONDON)
    assert next_run(monthly, LONDON, MONDAY) == datetime(2025, 12, 1, 8, 0, tzinfo=LONDON)
    january = datetime(2026, 1, 1, 7, 0, tzinfo=LONDON)
    assert last_run(monthly, LONDON, january) == datetime(2025, 12, 1, 8, 0, tzinfo=LONDON)


def test_a_digest_is_not_sent_by_hand(
    db: Database, settings: Settings, shape: Shape, workspace: Path
) -> None:
    add_digest(workspace)
    with pytest.raises(DeliveryError, match="the workers send it on its schedule"):
        sending.prepare(db, settings, shape, DIGEST)


@pytest.mark.slow
def test_a_digest_that_needs_an_approver_waits_for_one(
    db: Database, settings: Settings, shape: Shape, workspace: Path
) -> None:
    demo_calendar(db, settings, shape, workspace)
    path = add_digest(workspace)
    path.write_text(path.read_text() + "approval: required\n")
    assert chores(db, settings, MONDAY) == [f"digests: {RUN}: waiting for an approver on the desk"]
    with db.session() as session:
        assert session.scalars(select(Campaign).where(Campaign.slug == RUN)).first() is None
