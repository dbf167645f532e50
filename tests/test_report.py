"""Reports, end to end: a real send through aiosmtpd with recipients refused, bounce mails for
others processed from a Maildir, then the campaign report (library, CLI, HTML, the /admin/ page
and headless Chromium) counts exactly what happened, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import launch_chromium
from sqlalchemy import select, update
from starlette.testclient import TestClient
from support.bounces import SLUG, Sent, corpus_for, make_maildir, sent_of
from support.cli_runner import MailerCli
from support.hashes import address_hash
from support.sending import Mailing

from mailer.audience import suppression
from mailer.audience.addresses import normalise
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import Delivery, Member, Region, Suppression, Variant
from mailer.reports import Figures, campaign_report, history, page_data, render_page
from mailer.settings import Settings
from mailer.web import create_app

FAST_RETRIES = (0.05, 0.1, 0.2)
CATEGORIES = ("failed", "hard_bounces", "soft_bounces", "policy", "complaints", "unsubscribes")


@dataclass
class Scenario:
    sent: Sent
    maildir: Path
    # member email → the figure it must count under (besides deliveries/sent)
    outcome: dict[str, list[str]]
    suppressed: set[str]
    kept: set[str]


def spread_join_dates(db: Database) -> None:
    """Members joined over six months of 2025, so the list has a history to draw."""
    with db.session() as session:
        for month in range(6):
            session.execute(
                update(Member)
                .where(Member.id % 6 == month)
                .values(created_at=datetime(2025, 6 + month, 10, 12, 0, tzinfo=UTC))
            )


def run_scenario(mailing: Mailing) -> Scenario:
    """Send the Kent newsletter with two recipients refused, then drop bounce mails for ten others
    (the fixture corpus) and one web unsubscribe: the scenario every report test checks."""
    db, settings, tmp_path, smtp_server = mailing.db, mailing.settings, mailing.tmp_path, mailing.smtp
    mailing.add(150)
    spread_join_dates(db)
    enqueued = mailing.enqueue()
    sent = sent_of(db, enqueued.campaign_id)
    emails = sorted(sent.deliveries)
    refused_hard, refused_policy = emails[0], emails[1]
    smtp_server.reject(re.escape(refused_hard))  # 550 5.1.1
    smtp_server.reject(re.escape(refused_policy), reply="554 5.7.1 Rejected by policy")

    summary = mailing.send()
    assert summary.sent == len(emails) - 2 and summary.failed == 2

    corpus = corpus_for(sent, settings, emails[2:])
    maildir = make_maildir(tmp_path / "Maildir", [raw for _email, raw in corpus.values()])
    web_unsubscribe = emails[20]
    with db.session() as session:
        suppression.suppress(session, web_unsubscribe, reason="unsubscribe", source="link", campaign=SLUG)

    def member(name: str) -> str:
        return corpus[name][0]

    outcome = {
        refused_hard: ["failed", "hard_bounces"],
        refused_policy: ["failed", "policy"],
        member("postfix-user-unknown.eml"): ["hard_bounces"],
        member("exchange-recipient-not-found.eml"): ["hard_bounces"],
        member("yahoo-no-account.eml"): ["hard_bounces"],
        member("exim-mailbox-full.eml"): ["soft_bounces"],
        member("gmail-dmarc-policy.eml"): ["policy"],
        member("arf-complaint.eml"): ["complaints"],
        member("mailto-unsubscribe.eml"): ["unsubscribes"],
        web_unsubscribe: ["unsubscribes"],
        member("postfix-delayed.eml"): [],
        member("out-of-office.eml"): [],
        member("vacation-subject-only.eml"): [],
    }
    suppressed = {
        refused_hard,
        member("postfix-user-unknown.eml"),
        member("exchange-recipient-not-found.eml"),
        member("yahoo-no-account.eml"),
        member("arf-complaint.eml"),
        member("mailto-unsubscribe.eml"),
        web_unsubscribe,
    }
    kept = set(outcome) - suppressed
    return Scenario(sent, maildir, outcome, suppressed, kept)


def expected_figures(db: Database, scenario: Scenario, by: str) -> dict[str, dict[str, int]]:
    """What the report must say per region slug (``by="region"``) or variant key, worked out from
    the deliveries table and the scenario, not from the report code."""
    with db.session() as session:
        rows = session.execute(
            select(Member.email, Region.slug, Variant.key)
            .join(Delivery, Delivery.member_id == Member.id)
            .outerjoin(Region, Region.id == Delivery.region_id)
            .join(Variant, Variant.id == Delivery.variant_id)
            .where(Delivery.campaign_id == scenario.sent.campaign_id)
        ).all()
    out: dict[str, Counter[str]] = {}
    for email, region, variant in rows:
        key = region if by == "region" else variant
        c = out.setdefault(key, Counter())
        c["deliveries"] += 1
        figures = scenario.outcome.get(email, [])
        c["sent" if "failed" not in figures else "failed"] += 1
        for figure in figures:
            if figure != "failed":
                c[figure] += 1
    return {k: {name: c.get(name, 0) for name in Figures.names()} for k, c in out.items()}


def test_report_counts_a_send_with_refusals_and_bounces(
    mailing: Mailing,
    db: Database,
    shape: Shape,
    tmp_path: Path,
    mailer_cli: MailerCli,
) -> None:
    scenario = run_scenario(mailing)

    processed = json.loads(
        mailer_cli("inbound", "process", str(scenario.maildir), "--json", check=True).stdout
    )
    assert (processed["messages"], processed["new"], processed["suppressed"]) == (10, 10, 5)
    again = json.loads(mailer_cli("inbound", "process", str(scenario.maildir), "--json", check=True).stdout)
    assert again["messages"] == 0

    deliveries = len(scenario.sent.deliveries)
    expected_total = {
        "deliveries": deliveries,
        "sent": deliveries - 2,
        "failed": 2,
        "deferred": 0,
        "unknown": 0,
        "hard_bounces": 4,  # one refused at RCPT with 5.1.1, three bounced later
        "soft_bounces": 1,
        "policy": 2,  # one refused with 5.7.1, one DMARC bounce
        "complaints": 1,
        "unsubscribes": 2,  # one by mail, one by the web link
    }
    by_region, by_variant = (
        expected_figures(db, scenario, "region"),
        expected_figures(db, scenario, "variant"),
    )
    with db.session() as session:
        report = campaign_report(session, shape, SLUG)
        assert asdict(report.total) == expected_total
        assert {r.key: asdict(r.figures) for r in report.by_region} == by_region
        assert {r.key: asdict(r.figures) for r in report.by_variant} == by_variant
        for email in scenario.suppressed:
            assert suppression.is_suppressed(session, email), email
        for email in scenario.kept:  # the out-of-office, vacation, delayed, soft and policy members
            assert not suppression.is_suppressed(session, email), email

    html_file = tmp_path / "report.html"
    data = json.loads(
        mailer_cli("campaigns", "report", SLUG, "--json", "--html", str(html_file), check=True).stdout
    )
    assert data["total"] == expected_total
    assert {r["region"] for r in data["by_region"]} == {r.key for r in report.by_region}
    text = mailer_cli("campaigns", "report", SLUG, check=True).stdout
    assert re.search(r"Hard bounces\s+4\b", text) and re.search(r"Unsubscribes\s+2\b", text)

    html = html_file.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    for chart in ("chart-members", "chart-issues", "chart-regions"):
        svg = re.search(rf'<svg [^>]*id="{chart}".*?</svg>', html, re.S)
        assert svg, chart
        assert re.search(rf'aria-labelledby="{chart}-title {chart}-desc"', svg.group(0))
        assert f'<title id="{chart}-title">' in svg.group(0) and f'<desc id="{chart}-desc">' in svg.group(0)
    assert "4</span> Hard bounces" in html

    history_data = json.loads(mailer_cli("lists", "history", "--json", check=True).stdout)
    joined = sum(m["joined"] for m in history_data["months"])
    assert joined == 150 - 0  # every imported member joined in the window
    assert sum(m["left"] for m in history_data["months"]) == len(scenario.suppressed)
    assert history_data["months"][-1]["reachable"] == 150 - len(scenario.suppressed)


def test_history_counts_joins_and_losses_by_month_and_region(db: Database, shape: Shape) -> None:
    def add(email: str, region: str, joined: datetime) -> None:
        with db.session() as session:
            normal = normalise(email)
            session.add(
                Member(
                    email=normal,
                    address_hash=address_hash(normal),
                    region_id=session.scalar(select(Region.id).where(Region.slug == region)),
                    created_at=joined,
                )
            )

    add("a@example.org", "canterbury", datetime(2025, 9, 3, tzinfo=UTC))
    add("b@example.org", "thanet", datetime(2025, 9, 30, 23, 59, tzinfo=UTC))
    add("c@example.org", "brighton-hove", datetime(2025, 11, 1, tzinfo=UTC))
    add("d@example.org", "birmingham", datetime(2025, 11, 2, tzinfo=UTC))
    with db.session() as session:
        suppression.suppress(session, "b@example.org", reason="unsubscribe", source="link")
        suppression.suppress(session, "gone@example.org", reason="hard-bounce", source="bounce")
        session.execute(update(Suppression).values(created_at=datetime(2025, 10, 15, tzinfo=UTC)))
    with db.session() as session:
        h = history(session, shape, now=datetime(2025, 12, 5, tzinfo=UTC))
    assert h.months == ("2025-09", "2025-10", "2025-11", "2025-12")
    assert h.joined == (2, 0, 2, 0)
    assert h.left == {"hard-bounce": (0, 1, 0, 0), "unsubscribe": (0, 1, 0, 0)}
    # Members fall in two top-level regions: South East and Central England.
    assert h.members == {"Central England": (0, 0, 1, 1), "South East": (2, 1, 2, 2)}
    assert h.reachable == (2, 1, 3, 3)
    with db.session() as session:
        assert history(session, shape, months=2, now=datetime(2025, 12, 5, tzinfo=UTC)).members == {
            "Central England": (1, 1),
            "South East": (2, 2),
        }


def test_admin_pages_need_the_password(
    mailing: Mailing,
    db: Database,
    settings: Settings,
    shape: Shape,
) -> None:
    run_scenario(mailing)
    closed = TestClient(create_app(settings, shape=shape, database=db), base_url=settings.base_url)
    assert closed.get("/admin/").status_code == 403

    app = create_app(replace(settings, admin_password="correct horse"), shape=shape, database=db)
    client = TestClient(app, base_url=settings.base_url)  # the app answers base_url's host only
    asked = client.get("/admin/")
    assert asked.status_code == 401 and asked.headers["www-authenticate"].startswith("Basic ")
    assert client.get("/admin/", auth=("admin", "wrong")).status_code == 401
    bad = base64.b64encode(b"no-colon").decode()
    assert client.get("/admin/", headers={"Authorization": f"Basic {bad}"}).status_code == 401

    index = client.get("/admin/", auth=("organiser", "correct horse"))
    assert index.status_code == 200 and index.headers["cache-control"] == "no-store"
    assert f'href="/admin/campaigns/{SLUG}"' in index.text and 'id="chart-members"' in index.text
    page = client.get(f"/admin/campaigns/{SLUG}", auth=("organiser", "correct horse"))
    assert page.status_code == 200 and 'id="chart-regions"' in page.text and "<script" not in page.text
    assert client.get("/admin/campaigns/nope", auth=("organiser", "correct horse")).status_code == 404


# -- in a real browser ----------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(line)
        previous = line
    pixels = [tuple(row[x * channels : x * channels + 3]) for row in rows for x in range(width)]
    return width, height, pixels


def colour_count(pixels: list[tuple[int, ...]], hex_colour: str) -> int:
    want = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(1 for p in pixels if all(abs(p[i] - want[i]) <= 12 for i in range(3)))


@pytest.mark.browser
def test_report_html_shows_its_charts_in_chromium(
    mailing: Mailing,
    db: Database,
    settings: Settings,
    shape: Shape,
    tmp_path: Path,
) -> None:
    from mailer.inbound import process_source
    from mailer.reports.charts import COLOURS

    scenario = run_scenario(mailing)
    process_source(db, settings, scenario.maildir)
    with db.session() as session:
        page_values = page_data(session, shape, settings.organisation, SLUG)
    html_file = tmp_path / "report.html"
    html_file.write_text(render_page(settings, page_values), encoding="utf-8")
    keep = os.environ.get("MAILER_SCREENSHOTS")
    shots = Path(keep) if keep else tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 1100, "height": 900}, java_script_enabled=False)
        try:
            tab = context.new_page()
            tab.goto(html_file.as_uri())
            assert tab.locator("h1").count() == 1
            tab.screenshot(path=str(shots / "report.png"), full_page=True)
            seen: dict[str, int] = {}
            for chart in ("chart-members", "chart-issues", "chart-regions"):
                element = tab.locator(f"#{chart}")
                assert element.get_attribute("role") == "img"
                box = element.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 120, chart
                png = element.screenshot(path=str(shots / f"{chart}.png"))
                width, height, pixels = png_pixels(png)
                not_white = sum(1 for p in pixels if min(p) < 235)
                seen[chart] = colour_count(pixels, COLOURS[0])
                # Axes, text and the data marks: far from a blank rectangle.
                assert not_white > 0.02 * width * height, chart
            # The first series' colour is drawn: a line of members, bars of unsubscribes.
            assert seen["chart-members"] > 200 and seen["chart-issues"] > 50 and seen["chart-regions"] > 20, (
                seen
            )
            # On a phone the page does not scroll sideways: charts shrink to fit.
            tab.set_viewport_size({"width": 375, "height": 740})
            assert tab.evaluate("document.documentElement.scrollWidth") <= 375 + 1
        finally:
            context.close()
