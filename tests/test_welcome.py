"""The welcome mail: a confirmed sign-up, and each member ``lists import --welcome``
adds, is welcomed From their region's network with its welcome text, their local group's contact,
the next events near them and their preferences link.

On the demo workspace (two networks: Kent, Central England), on SQLite and PostgreSQL, with the
real web app over HTTP and the aiosmtpd server; the Central England December issue (the demo's
``campaigns/2025-12-central-england``) is sent first through the library, into a Maildir outbox, so
that its Birmingham events are the "next events" (the app's clock is 1 December 2025).
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import re
import warnings
from dataclasses import replace
from datetime import date
from email.message import EmailMessage
from typing import Any

import pytest
from conftest import TEST_SECRET
from sqlalchemy import func, select
from support.bounces import dsn_for
from support.cli_runner import MailerCli
from support.networks import CE, FEW, KENT, Demo, app_for, demo, send_issue

from mailer import tokens
from mailer.archive import sent_issues
from mailer.audience import suppression
from mailer.audience.consent import SignupForm
from mailer.audience.importer import Options, import_csv
from mailer.audience.members import ADDED_CHUNK, members_added
from mailer.audience.shape import Shape
from mailer.forms import read
from mailer.inbound import process_message
from mailer.models import Member
from mailer.web.csrf import Csrf
from mailer.web.pages import Pages
from mailer.web.welcome import group_contact, welcome_message

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["demo"]  # the demo workspace fixture (tests/support/networks.py)

BIRMINGHAM_CONTACT = (
    "Birmingham group: Priya, birmingham-group@example.org (meets the first Tuesday of the month)"
)


def parsed(received: Any) -> EmailMessage:
    msg = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def sign_up(client: TestClient, address: str, region: str, network: str = "") -> None:
    """Post the sign-up form (``?network=`` if given) for ``address`` in ``region``."""
    query = f"?network={network}" if network else ""
    page = client.get(f"/subscribe{query}")
    assert page.status_code == 200
    form = {
        "csrf": csrf_of(page.text),
        "name": "",
        "email": address,
        "region": region,
        "postcode": "",
        "interests": ["refugees"],
        "consent": "yes",
        "website": "",
    }
    done = client.post(f"/subscribe{query}", data=form)
    assert done.status_code == 200 and "Check your inbox" in done.text, done.text


def wait_for(smtp_server: Any, count: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while len(smtp_server.messages) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(smtp_server.messages) >= count


def confirm_path(msg: EmailMessage) -> str:
    m = re.search(r"https?://[^/\s]+(/confirm/[A-Za-z0-9_=-]+)", body_of(msg))
    assert m, body_of(msg)
    return m.group(1)


# ---------------------------------------------------------------------------------------------
# The acceptance: a confirmed sign-up in Birmingham


@pytest.mark.slow
def test_a_birmingham_sign_up_is_welcomed_by_central_england(demo: Demo, smtp_server: Any) -> None:
    send_issue(demo, CE)
    send_issue(demo, KENT)
    address = "new.brummie@example.org"
    with TestClient(app_for(demo, smtp_server), base_url="http://127.0.0.1:8000") as client:
        sign_up(client, address, "birmingham", network="central-england")
        wait_for(smtp_server, 1)
        confirmation = parsed(smtp_server.messages[0])
        assert confirmation["From"] == "Central England Network <central-england@example.org>"
        assert confirmation["Reply-To"] == "ce-editor@example.org"
        assert "Central England Network" in str(confirmation["Subject"])
        assert "emails from Central England Network" in body_of(confirmation)
        path = confirm_path(confirmation)

        page = client.get(path)
        assert page.status_code == 200
        assert '<header class="site"><a href="/">Central England Network</a></header>' in page.text
        assert "start receiving emails from Central England Network" in page.text
        done = client.post(path, data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200 and "You are signed up" in done.text
        assert "Welcome to Central England Network" in done.text
        assert "welcome email" in done.text

        wait_for(smtp_server, 2)
        assert len(smtp_server.messages) == 2
        received = smtp_server.messages[1]
        assert received.rcpt_tos == [address]
        welcome = parsed(received)
        assert welcome["From"] == "Central England Network <central-england@example.org>"
        assert welcome["Reply-To"] == "ce-editor@example.org"
        assert welcome["Subject"] == "Welcome to Central England Network"
        assert welcome["Auto-Submitted"] == "auto-generated"
        text = body_of(welcome)
        assert "Welcome to the Central England Network: West, East and South Midlands" in text
        assert BIRMINGHAM_CONTACT in text  # the local group's contact
        # The next Birmingham events, in date order: Birmingham's own, and the region-wide ones.
        events = [
            "Tuesday 2 December from 7:00pm to 9:00pm: Birmingham Group monthly meeting",
            "Monday 8 – Sunday 14 December: Peace Week across Central England",
            "Tuesday 9 December from 6:30pm to 8:30pm: Birmingham Group Write for Rights card-writing "
            "evening",
            "Saturday 24 January 2026 from 10:00am to 4:30pm: Central England regional conference",
        ]
        positions = [text.index(e) for e in events]
        assert positions == sorted(positions)
        assert "Derby" not in text and "Nottingham" not in text and "Kent" not in text
        assert "/calendar/event/2025-12-central-england-calendar-1.ics" in text
        assert "http://127.0.0.1:8000/calendar/birmingham.ics" in text
        assert "In solidarity\nThe Central England Network" in text

        # Its preferences link works, and is the new member's.
        link = re.search(r"https?://[^/\s]+(/p/[a-z2-7]+)", text)
        assert link, text
        with demo.db.session() as session:
            member = session.scalar(select(Member).where(Member.email == address))
            assert member is not None and member.region is not None and member.region.slug == "birmingham"
            member_id = member.id
        token = link.group(1).removeprefix("/p/")
        assert tokens.verify(token, "preferences", keys=demo.settings.secrets).member_id == member_id
        prefs = client.get(link.group(1))
        assert prefs.status_code == 200 and "Your preferences" in prefs.text

        # Confirming again changes nothing and sends no second welcome.
        again = client.post(path, data={"csrf": csrf_of(page.text)})
        assert again.status_code == 200 and "welcome email" not in again.text
    assert len(smtp_server.messages) == 2

    # Both went out from the untagged bounce address at the list domain (MAIL FROM), not From's
    # mailbox: a bounce of either comes back to mailer, names no delivery, and changes nothing.
    bounces = tokens.bounce_address(demo.settings.list_domain)
    assert bounces == f"bounces@{demo.settings.list_domain}"
    assert [m.mail_from for m in smtp_server.messages] == [bounces, bounces]
    for n, returned in enumerate(smtp_server.messages, start=1):
        dsn = dsn_for(returned.mail_from, returned.data, address, number=n)
        outcome = process_message(demo.db, demo.settings, dsn)
        assert outcome.kind == "unverified" and outcome.claimed == "hard-bounce", outcome
        assert not outcome.suppressed and outcome.delivery_id is None
    with demo.db.session() as session:
        assert not suppression.is_suppressed(session, address)


def test_a_kent_sign_up_by_postcode_is_welcomed_by_kent(demo: Demo, smtp_server: Any) -> None:
    with TestClient(app_for(demo, smtp_server), base_url="http://127.0.0.1:8000") as client:
        page = client.get("/subscribe")
        form = {
            "csrf": csrf_of(page.text),
            "email": "new.kentish@example.org",
            "region": "",
            "postcode": "CT1 2AA",
            "consent": "yes",
        }
        assert client.post("/subscribe", data=form).status_code == 200
        wait_for(smtp_server, 1)
        confirmation = parsed(smtp_server.messages[0])
        assert confirmation["From"] == "Kent Network <newsletter@example.org>"
        path = confirm_path(confirmation)
        page = client.get(path)
        assert '<header class="site"><a href="/">Kent Network</a></header>' in page.text
        assert client.post(path, data={"csrf": csrf_of(page.text)}).status_code == 200
        wait_for(smtp_server, 2)
    welcome = parsed(smtp_server.messages[1])
    assert welcome["From"] == "Kent Network <newsletter@example.org>"
    text = body_of(welcome)
    assert "Welcome to the Kent Network. Every month we send" in text
    assert "Canterbury group: canterbury-group@example.org" in text
    assert "Coming up near you" not in text  # nothing sent yet: no events to name
    assert "The Kent Network team" in text


def test_a_welcome_that_cannot_be_sent_leaves_the_sign_up_confirmed(
    demo: Demo, smtp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    address = "unlucky@example.org"
    with TestClient(app_for(demo, smtp_server), base_url="http://127.0.0.1:8000") as client:
        sign_up(client, address, "coventry")
        wait_for(smtp_server, 1)
        path = confirm_path(parsed(smtp_server.messages[0]))
        smtp_server.reject(re.escape(address))  # the relay now refuses the address
        page = client.get(path)
        with caplog.at_level(logging.ERROR, logger="mailer.web"):
            done = client.post(path, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "You are signed up" in done.text
    assert "welcome email" not in done.text
    assert len(smtp_server.messages) == 1
    with demo.db.session() as session:
        assert session.scalar(select(Member.id).where(Member.email == address)) is not None
    logged = [r.getMessage() for r in caplog.records if "welcome mail" in r.getMessage()]
    assert logged and "TransportError" in logged[0]
    assert address not in logged[0]


# ---------------------------------------------------------------------------------------------
# The library: welcome_message, the group contact, a workspace's own template


def test_welcome_message_from_the_library(demo: Demo) -> None:
    send_issue(demo, CE)
    pages = Pages(demo.settings, Csrf(demo.settings.secrets, secure=False))
    with demo.db.session() as session:
        issues = sent_issues(session, {})
    msg = welcome_message(
        pages,
        demo.settings,
        demo.shape,
        issues,
        member_id=7,
        to="someone@example.org",
        region="birmingham",
        today=date(2025, 12, 5),
    )
    text = body_of(msg)
    assert msg["From"] == "Central England Network <central-england@example.org>"
    assert BIRMINGHAM_CONTACT in text
    assert "monthly meeting" not in text  # 2 December is past on the 5th
    assert "Peace Week" in text  # under way until the 14th
    # A workspace's templates/web/mail/welcome.txt replaces the packaged one.
    own = demo.root / "templates" / "web" / "mail"
    own.mkdir(parents=True)
    (own / "welcome.txt").write_text(
        "Subject: Hello from {{ network.name }}\n\n{{ welcome_text }}\nGroup: {{ group.name }}\n"
        "{% for e in events %}* {{ e.title }}\n{% endfor %}{{ preferences_url }}\n",
        encoding="utf-8",
    )
    pages = Pages(demo.settings, Csrf(demo.settings.secrets, secure=False))
    msg = welcome_message(
        pages,
        demo.settings,
        demo.shape,
        issues,
        member_id=7,
        to="someone@example.org",
        region="birmingham",
        today=date(2025, 12, 5),
    )
    assert msg["Subject"] == "Hello from Central England Network"
    text = body_of(msg)
    assert "Group: Birmingham\n" in text and "* Peace Week across Central England" in text
    assert "/p/" in text


def test_group_contact_is_the_nearest_up_the_tree(demo: Demo) -> None:
    shape = demo.shape
    found = group_contact(shape, "birmingham")
    assert found is not None and found.region == "birmingham" and found.contact == BIRMINGHAM_CONTACT
    assert group_contact(shape, "wolverhampton") is None  # nobody up its tree has a contact
    regions = dict(shape.regions)
    regions["west-midlands"] = replace(regions["west-midlands"], contact="West Midlands: wm@example.org")
    wider = replace(shape, regions=regions)
    found = group_contact(wider, "wolverhampton")
    assert found is not None and found.region == "west-midlands"
    assert group_contact(shape, None) is None and group_contact(shape, "atlantis") is None


def test_sign_up_offers_only_regions_inside_a_network(demo: Demo) -> None:
    """With networks declared, a region outside every network (South East, above Kent) cannot be
    chosen, and a postcode leading to one asks for a region instead."""

    def check(*, shape: Shape = demo.shape, offered: list[str] | None = None, **given: str) -> dict[str, str]:
        posted = {"email": "x@example.org", "name": "", "region": "", "postcode": "", "consent": "yes"}
        return read(SignupForm, posted | given, context={"shape": shape, "offered": offered}).errors

    assert check(region="birmingham") == {}
    assert "region" in check(region="south-east")
    areas = dict(demo.shape.postcode_areas) | {"ZZ": "south-east"}
    outside = replace(demo.shape, postcode_areas=areas)
    assert "region" in check(shape=outside, postcode="ZZ1 1AA")
    assert check(postcode="B1 1AA") == {}
    # A network's own form offers its regions only.
    kent_only = [s for s in demo.shape.regions if "kent" in demo.shape.ancestors(s)]
    assert "region" in check(region="birmingham", offered=kent_only)
    assert check(region="canterbury", offered=kent_only) == {}


# ---------------------------------------------------------------------------------------------
# mailer lists import --welcome


def cli_for(demo: Demo, smtp_server: Any, database_url: str) -> MailerCli:
    import os

    env = dict(os.environ)
    env.update(
        MAILER_WORKSPACE=str(demo.root),
        MAILER_DATABASE_URL=database_url,
        MAILER_SECRET=TEST_SECRET,
        MAILER_RELAY=smtp_server.url,
    )
    return MailerCli(env)


def test_lists_import_welcome_mails_exactly_the_new_members(
    demo: Demo, smtp_server: Any, database_url: str
) -> None:
    mailer = cli_for(demo, smtp_server, database_url)
    first = demo.root / "first.csv"
    first.write_text(
        "email,name,region\nann@example.org,Ann,birmingham\nbob@example.org,Bob,canterbury\n",
        encoding="utf-8",
    )
    quiet = mailer(
        "lists", "import", str(first), "--consent", "test members agreed"
    ).check()  # off by default
    assert "welcomed" not in quiet.stdout
    assert smtp_server.messages == []

    second = demo.root / "second.csv"
    second.write_text(
        "email,name,region\n"
        "ann@example.org,Ann Updated,birmingham\n"  # updated: no welcome
        "bob@example.org,Bob,canterbury\n"  # unchanged: no welcome
        "cat@example.org,Cat,derby\n"  # new
        "dan@example.org,Dan,maidstone-medway-swale\n",  # new
        encoding="utf-8",
    )
    dry = mailer(
        "lists", "import", str(second), "--consent", "test members agreed", "--welcome", "--dry-run"
    ).check()
    assert "welcomed" not in dry.stdout and smtp_server.messages == []

    result = mailer("lists", "import", str(second), "--consent", "test members agreed", "--welcome").check()
    assert "added:     2" in result.stdout and "updated:   1" in result.stdout
    assert "welcomed:  2 new member(s) mailed a welcome" in result.stdout
    wait_for(smtp_server, 2)
    assert {m.mail_from for m in smtp_server.messages} == {f"bounces@{demo.settings.list_domain}"}
    got = {m.rcpt_tos[0]: parsed(m) for m in smtp_server.messages}
    assert set(got) == {"cat@example.org", "dan@example.org"}
    assert got["cat@example.org"]["From"] == "Central England Network <central-england@example.org>"
    assert "Derby group: derby-group@example.org" in body_of(got["cat@example.org"])
    assert got["dan@example.org"]["From"] == "Kent Network <newsletter@example.org>"
    assert "Maidstone, Medway & Swale group: mms-group@example.org" in body_of(got["dan@example.org"])

    third = demo.root / "third.csv"
    third.write_text("email,region\neve@example.org,nottingham\ncat@example.org,derby\n", encoding="utf-8")
    as_json = mailer(
        "lists", "import", str(third), "--consent", "test members agreed", "--welcome", "--json"
    ).check()
    data = json.loads(as_json.stdout)
    assert data["added"] == 1 and data["welcomes"] == {"sent": 1, "failed": []}
    wait_for(smtp_server, 3)
    assert [m.rcpt_tos for m in smtp_server.messages][2:] == [["eve@example.org"]]
    with demo.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Member)) == 5


def test_the_members_welcomed_are_the_ids_the_import_report_names(demo: Demo) -> None:
    """``members_added`` reads the members of ``ImportReport.added_ids`` and no others: more of them
    than one query takes (``ADDED_CHUNK``), beside members the import only updated."""
    known = demo.root / "known.csv"
    known.write_text(FEW, encoding="utf-8")
    with demo.db.session() as session:
        import_csv(session, known, demo.shape, options=Options(consent="test members agreed"))
    regions = ["birmingham", "derby", "canterbury", ""]
    new = [(f"new.{i}@example.org", regions[i % len(regions)]) for i in range(ADDED_CHUNK + 50)]
    both = demo.root / "both.csv"
    both.write_text(
        FEW.replace("Brum One", "Brum Renamed") + "".join(f"{e},,{r}\n" for e, r in new), encoding="utf-8"
    )
    with demo.db.session() as session:
        report = import_csv(session, both, demo.shape, options=Options(consent="test members agreed"))
        added = members_added(session, report.added_ids)
        ids = {email: id_ for email, id_ in session.execute(select(Member.email, Member.id))}
    assert (report.added, report.updated, report.unchanged) == (len(new), 1, 2)
    assert [(m.email, m.region or "") for m in added] == new
    assert [m.id for m in added] == sorted(ids[e] for e, _r in new)
    with demo.db.session() as session:
        assert members_added(session, []) == []


def test_lists_import_welcome_reports_what_it_could_not_send(
    demo: Demo, smtp_server: Any, database_url: str
) -> None:
    mailer = cli_for(demo, smtp_server, database_url)
    smtp_server.reject("refused@example.org")
    path = demo.root / "some.csv"
    path.write_text("email,region\nok@example.org,coventry\nrefused@example.org,coventry\n", encoding="utf-8")
    result = mailer("lists", "import", str(path), "--consent", "test members agreed", "--welcome").check()
    assert "added:     2" in result.stdout
    assert "welcomed:  1 new member(s) mailed a welcome" in result.stdout
    assert "welcome not sent to refused@example.org" in result.stderr
    with demo.db.session() as session:  # the import stands
        assert session.scalar(select(func.count()).select_from(Member)) == 2
