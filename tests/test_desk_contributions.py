"""Contributions on the desk, through the real app on SQLite and PostgreSQL.

A Birmingham contributor sends an event and an item from the desk; the Central England editor finds
them in the network's inbox, edits one, accepts them into the demo's Central England issue (as a
calendar entry, a new item, under an item) or declines one with a note mailed back from the
network. The issue file keeps its comments and stays valid; an accepted event is in Birmingham's
calendar feed at once (not Derby's, not Kent's), until the issue is sent; every action is in the
audit log. Roles: a Canterbury contributor cannot read or change Central England's inbox (403), nor
send to it; every form of these pages without its CSRF value gets 403. In Chromium, the event form
at phone and desktop widths, with axe-core.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.routing import Route
from support.browser import (
    check_page,
    chromium,  # noqa: F401 - a fixture
    pictures,  # noqa: F401 - a fixture
    tab,  # noqa: F401 - a fixture
)
from support.desk import ISSUE, Desk, browser_desk, clock, csrf_of, desk, sign_in, workspace

from mailer.desk import sessions
from mailer.desk.issuefile import last_editor
from mailer.issue import load_campaign
from mailer.models import Campaign, Contribution, IssueEdit, User

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

CE = "/desk/networks/central-england"
FIRST_LINE = "# The Central England Network newsletter for December 2025"

__all__ = ["browser_desk", "clock", "desk", "workspace"]  # fixtures


@pytest.fixture
def people_(desk: Desk) -> dict[str, int]:
    return {
        "bea": desk.add("bea@example.org", "contributor", region="birmingham", name="Bea"),
        "ed": desk.add("ed@example.org", "editor", "central-england", name="Ed"),
        "cat": desk.add("cat@example.org", "contributor", region="canterbury"),
        "kate": desk.add("kate@example.org", "editor", "kent"),
    }


def client_of(desk: Desk, address: str) -> TestClient:
    c = desk.client()
    c.__enter__()
    sign_in(desk, c, address)
    return c


@pytest.fixture
def bea(desk: Desk, people_: dict[str, int]) -> Iterator[TestClient]:
    c = client_of(desk, "bea@example.org")
    yield c
    c.__exit__(None, None, None)


@pytest.fixture
def ed(desk: Desk, people_: dict[str, int]) -> Iterator[TestClient]:
    c = client_of(desk, "ed@example.org")
    yield c
    c.__exit__(None, None, None)


def day(n: int) -> str:
    return (date.today() + timedelta(days=n)).isoformat()


def event_form(**changes: str) -> dict[str, str]:
    form = {
        "title": "Birmingham vigil for Write for Rights",
        "region": "birmingham",
        "date": day(30),
        "start_time": "18:30",
        "end_time": "20:00",
        "place": "Victoria Square, Birmingham",
        "booking_link": "https://example.org/vigil",
        "contact": "Email birmingham-group@example.org",
        "description": "Bring a candle. We read out the **ten cases** of this year.",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def item_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "title": "Birmingham group's stall raised £400",
        "region": "birmingham",
        "highlight": "read how Birmingham raised £400 for the refugee appeal",
        "body": "Thank you to everyone who came.\n\nWe meet again in January.",
        "link_text_1": "Our group's page",
        "link_url_1": "https://example.org/birmingham",
        "contact": "Email birmingham-group@example.org",
        "interests": ["refugees"],
    }
    form.update(changes)
    return form


def send(client: TestClient, kind: str, form: dict[str, Any], network: str = CE) -> Any:
    page = client.get(f"{network}/contribute/{kind}")
    assert page.status_code == 200, page.status_code
    return client.post(f"{network}/contribute/{kind}", data={"csrf": csrf_of(page.text), **form})


def rows(desk: Desk) -> list[Contribution]:
    with desk.db.session() as s:
        found = list(s.scalars(select(Contribution).order_by(Contribution.id)))
        s.expunge_all()
        return found


def decide(client: TestClient, cid: int, action: str, data: dict[str, str], network: str = CE) -> Any:
    page = client.get(f"{network}/inbox/{cid}")
    csrf = csrf_of(page.text) if page.status_code == 200 else "x"
    return client.post(f"{network}/inbox/{cid}/{action}", data={"csrf": csrf, **data})


def feed(client: TestClient, region: str) -> str:
    response = client.get(f"/calendar/{region}.ics")
    assert response.status_code == 200
    return response.text.replace("\r\n ", "")


def issue_text(desk: Desk) -> str:
    return (desk.settings.workspace / "campaigns" / ISSUE / "issue.yaml").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The story


def test_an_event_goes_from_a_local_group_into_the_issue_and_the_calendar(
    desk: Desk, bea: TestClient, ed: TestClient, people_: dict[str, int]
) -> None:
    assert f'href="{CE}/contribute"' in bea.get(CE).text
    assert f'href="{CE}/inbox"' not in bea.get(CE).text and f'href="{CE}/inbox"' in ed.get(CE).text
    start = bea.get(f"{CE}/contribute")
    assert start.status_code == 200 and "Send an event" in start.text
    form = bea.get(f"{CE}/contribute/event")
    options = re.findall(r'<option value="([^"]*)"', form.text)
    assert options == ["birmingham"], "a contributor sends for her own group (and those below it)"

    sent = send(bea, "event", event_form())
    assert sent.status_code == 303 and sent.headers["location"] == f"{CE}/contribute?done=sent"
    mine = bea.get(sent.headers["location"]).text
    assert "it is in the editor&#39;s inbox" in mine and "Birmingham vigil for Write for Rights" in mine
    (row,) = rows(desk)
    assert (row.network, row.region, row.kind, row.status) == (
        "central-england",
        "birmingham",
        "event",
        "new",
    )
    assert "vigil" not in feed(ed, "birmingham"), "not in the feed before it is accepted"

    inbox = ed.get(f"{CE}/inbox")
    assert inbox.status_code == 200
    for words in ("Birmingham vigil for Write for Rights", "Event", "Birmingham", day(30), "New"):
        assert words in inbox.text, words
    one = ed.get(f"{CE}/inbox/{row.id}")
    assert one.status_code == 200
    assert f'value="{ISSUE}/calendar"' in one.text and f'value="{ISSUE}/under/write-for-rights"' in one.text
    assert "2025-11-kent-network" not in one.text, "only the network's own issues"

    accepted = decide(ed, row.id, "accept", {"target": f"{ISSUE}/calendar"})
    assert accepted.status_code == 303, accepted.text[:2000]
    assert "It is accepted into the issue." in ed.get(accepted.headers["location"]).text

    text = issue_text(desk)
    assert text.startswith(FIRST_LINE), "the editor's comments are kept"
    assert "# network's own. Check it with `mailer campaigns check 2025-12-central-england`" in text
    loaded = load_campaign(desk.settings.workspace, ISSUE, desk.shape)
    issue = loaded.issue
    assert issue.kind == "newsletter"
    entry = issue.calendar[-1]
    assert entry.title == "Birmingham vigil for Write for Rights"
    assert entry.regions == ["birmingham"] and entry.location == "Victoria Square, Birmingham"
    assert entry.booking is not None and entry.booking.url == "https://example.org/vigil"
    assert f"{entry.start:%Y-%m-%d %H:%M}" == f"{day(30)} 18:30"

    with desk.db.session() as s:
        assert last_editor(s, ISSUE) == people_["ed"], "accepting is an edit of the issue"
        stored = s.get(Contribution, row.id)
        assert stored is not None and stored.status == "accepted" and stored.issue_slug == ISSUE
        assert stored.decided_by == people_["ed"]

    birmingham = feed(ed, "birmingham")
    assert "SUMMARY:Birmingham vigil for Write for Rights" in birmingham
    assert f"UID:contribution-{row.id}@" in birmingham
    assert "vigil" in feed(ed, "all") and "vigil" in feed(ed, "birmingham")
    assert "vigil" not in feed(ed, "derby") and "vigil" not in feed(ed, "canterbury")
    actions = [a for a, _ in desk.audit()]
    assert "contribution.submit" in actions and "contribution.accept" in actions

    # Once the issue is sent, its own entry takes over (the same event, once).
    with desk.db.session() as s:
        s.add(
            Campaign(
                slug=ISSUE,
                kind="newsletter",
                title=issue.title,
                subject=issue.subject,
                audience=issue.audience,
                issue_date=issue.date.isoformat(),
                source=text,
                status="sent",
                network="central-england",
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
            )
        )
    after = feed(ed, "birmingham")
    assert after.count("SUMMARY:Birmingham vigil for Write for Rights") == 1
    assert f"UID:contribution-{row.id}@" not in after and f"UID:{ISSUE}-calendar-" in after
    assert send(bea, "event", event_form(title="Another")).status_code == 303
    later = ed.get(f"{CE}/inbox/{rows(desk)[-1].id}").text
    assert f'value="{ISSUE}/calendar"' not in later, "a sent issue takes no more contributions"
    assert "no newsletter waiting to be sent" in later


def test_an_item_and_an_event_as_items(desk: Desk, bea: TestClient, ed: TestClient) -> None:
    assert send(bea, "item", item_form()).status_code == 303
    assert send(bea, "event", event_form(title="Birmingham film night")).status_code == 303
    assert send(bea, "event", event_form(title="Birmingham card writing")).status_code == 303
    item, film, cards = rows(desk)
    assert item.kind == "item"
    one = ed.get(f"{CE}/inbox/{item.id}")
    assert f'value="{ISSUE}/calendar"' not in one.text, "an item is no calendar entry"

    assert decide(ed, item.id, "accept", {"target": f"{ISSUE}/item"}).status_code == 303
    highlight = {"target": f"{ISSUE}/item", "highlight": "come to our film night"}
    assert decide(ed, film.id, "accept", highlight).status_code == 303
    under = {"target": f"{ISSUE}/under/write-for-rights"}
    assert decide(ed, cards.id, "accept", under).status_code == 303

    issue = load_campaign(desk.settings.workspace, ISSUE, desk.shape).issue
    ids = [i.id for i in issue.items]
    assert "birmingham-group-s-stall-raised-400" in ids and "birmingham-film-night" in ids
    news = issue.items[ids.index("birmingham-group-s-stall-raised-400")]
    assert news.highlight == "read how Birmingham raised £400 for the refugee appeal"
    assert news.regions == ["birmingham"] and news.interests == ["refugees"]
    assert [(link.text, link.url) for link in news.links] == [
        ("Our group's page", "https://example.org/birmingham")
    ]
    assert news.body == "Thank you to everyone who came.\n\nWe meet again in January."
    film_item = issue.items[ids.index("birmingham-film-night")]
    assert film_item.highlight == "come to our film night" and film_item.regions == ["birmingham"]
    assert "**ten cases**" in film_item.body, "the event's description is the new item's text"
    assert [e.title for e in film_item.events] == ["Birmingham film night"]
    w4r = issue.items[ids.index("write-for-rights")]
    assert w4r.events[-1].title == "Birmingham card writing" and w4r.events[-1].regions == ["birmingham"]
    assert issue_text(desk).startswith(FIRST_LINE)
    birmingham = feed(ed, "birmingham")
    assert "Birmingham film night" in birmingham and "Birmingham card writing" in birmingham
    assert "Birmingham film night" not in feed(ed, "derby")


def test_the_editor_edits_then_declines_with_a_note_mailed_back(
    desk: Desk, bea: TestClient, ed: TestClient
) -> None:
    assert send(bea, "event", event_form()).status_code == 303
    (row,) = rows(desk)
    page = ed.get(f"{CE}/inbox/{row.id}")
    csrf = csrf_of(page.text)
    edited = event_form(title="Birmingham candle vigil", region="central-england")
    saved = ed.post(f"{CE}/inbox/{row.id}/edit", data={"csrf": csrf, **edited})
    assert saved.status_code == 303 and "Your changes are saved." in ed.get(saved.headers["location"]).text
    (row,) = rows(desk)
    assert row.title == "Birmingham candle vigil" and row.region == "central-england"

    wrong = ed.post(f"{CE}/inbox/{row.id}/edit", data={"csrf": csrf, **event_form(date="2025-02-30")})
    assert wrong.status_code == 400
    assert 'id="date-error"' in wrong.text and "Give a real date" in wrong.text
    assert re.search(r'id="date"[^>]*aria-invalid="true"', wrong.text)
    assert rows(desk)[0].title == "Birmingham candle vigil", "nothing changed"

    empty = ed.post(f"{CE}/inbox/{row.id}/decline", data={"csrf": csrf, "note": "  "})
    assert empty.status_code == 400 and "Write a note for the contributor" in empty.text
    note = "Thank you! We have a vigil that week already:\nplease join it instead."
    done = ed.post(f"{CE}/inbox/{row.id}/decline", data={"csrf": csrf, "note": note})
    assert done.status_code == 303
    (mail,) = desk.mails_to("bea@example.org", 2)[1:]
    assert mail["From"] == "Central England Network <central-england@example.org>"
    assert mail["Reply-To"] == "ce-editor@example.org"
    assert mail["Subject"] == "Your event for the Central England Network newsletter was not taken"
    body = str(mail.get_body(("plain",)).get_content()).replace("\r\n", "\n")  # type: ignore[union-attr]
    assert note in body and '"Birmingham candle vigil"' in body
    assert f"{desk.settings.base_url.rstrip('/')}{CE}/contribute" in body
    (row,) = rows(desk)
    assert row.status == "declined" and row.note == note
    mine = bea.get(f"{CE}/contribute").text
    assert "Declined" in mine and "please join it instead." in mine
    again = ed.post(f"{CE}/inbox/{row.id}/decline", data={"csrf": csrf, "note": "again"})
    assert again.status_code == 409
    late = ed.post(f"{CE}/inbox/{row.id}/accept", data={"csrf": csrf, "target": f"{ISSUE}/calendar"})
    assert late.status_code == 409 and "FIRST_LINE" not in issue_text(desk)
    assert "Birmingham candle vigil" not in issue_text(desk)
    assert len(desk.mails_to("bea@example.org", 3, timeout=0.3)) == 2, "one note, mailed once"
    actions = [a for a, _ in desk.audit()]
    assert actions.count("contribution.edit") == 1 and actions.count("contribution.decline") == 1
    assert "Inbox of contributions" in ed.get(f"{CE}/inbox?status=declined").text


def test_errors_are_shown_at_their_fields(desk: Desk, bea: TestClient) -> None:
    form = event_form(
        title="",
        date=day(-1),
        start_time="",
        place="",
        booking_link="javascript:alert(1)",
        description="<script>alert(1)</script>",
    )
    refused = send(bea, "event", form)
    assert refused.status_code == 400
    assert "Nothing was sent yet" in refused.text
    for name, words in [
        ("title", "Give the event a title"),
        ("date", "This day has passed"),
        ("start_time", "Give the time it starts"),
        ("place", "Say where it is"),
        ("booking_link", "Give a web address starting with https://"),
        ("description", "Take out the HTML (&lt;script&gt;)"),
    ]:
        found = re.search(rf'<span class="error" id="{name}-error">([^<]*)', refused.text)
        assert found and words in found.group(1), (name, found)
        assert re.search(rf'id="{name}"[^>]*aria-invalid="true"', refused.text), name
    assert 'value="javascript:alert(1)"' in refused.text, "what was typed is shown again, escaped"
    item = send(bea, "item", item_form(highlight="", link_url_1="", interests=["unicorns"]))
    assert item.status_code == 400
    for name in ("highlight", "link_url_1", "interests"):
        assert f'id="{name}-error"' in item.text, name
    assert rows(desk) == []
    # An all-day event over several days, online only: fine.
    ok = send(
        bea,
        "event",
        event_form(
            all_day="yes",
            start_time="",
            end_time="",
            date=day(3),
            end_date=day(5),
            place="",
            online_link="https://example.org/join",
            booking_link="",
        ),
    )
    assert ok.status_code == 303


def test_an_editor_may_send_for_the_whole_network(desk: Desk, ed: TestClient) -> None:
    form = ed.get(f"{CE}/contribute/event").text
    options = re.findall(r'<option value="([^"]*)"', form)
    assert options[0] == "" and "birmingham" in options and "derby" in options
    assert "canterbury" not in options and "kent" not in options
    assert send(ed, "event", event_form(region="")).status_code == 303
    (row,) = rows(desk)
    assert decide(ed, row.id, "accept", {"target": f"{ISSUE}/calendar"}).status_code == 303
    assert "vigil" in feed(ed, "derby") and "vigil" in feed(ed, "birmingham")
    assert "vigil" not in feed(ed, "canterbury"), "a whole network's event stays in its network"


def test_accepting_into_a_broken_issue_leaves_it_new(desk: Desk, bea: TestClient, ed: TestClient) -> None:
    assert send(bea, "event", event_form()).status_code == 303
    (row,) = rows(desk)
    page = ed.get(f"{CE}/inbox/{row.id}")
    path = desk.settings.workspace / "campaigns" / ISSUE / "issue.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\nbroken: [unclosed\n", encoding="utf-8")
    before = path.read_text(encoding="utf-8")
    refused = ed.post(
        f"{CE}/inbox/{row.id}/accept", data={"csrf": csrf_of(page.text), "target": f"{ISSUE}/calendar"}
    )
    assert refused.status_code in (400, 409)
    assert path.read_text(encoding="utf-8") == before, "the file is not touched"
    (row,) = rows(desk)
    assert row.status == "new" and row.decided_by is None and row.issue_slug == ""
    with desk.db.session() as s:
        assert s.scalars(select(IssueEdit)).all() == []


# ---------------------------------------------------------------------------------------------
# Roles and CSRF


def test_a_canterbury_contributor_cannot_read_or_change_central_englands_inbox(
    desk: Desk, bea: TestClient, people_: dict[str, int]
) -> None:
    assert send(bea, "event", event_form()).status_code == 303
    (row,) = rows(desk)
    kent_issue = desk.settings.workspace / "campaigns" / "2025-11-kent-network" / "issue.yaml"
    files = (issue_text(desk), kent_issue.read_text(encoding="utf-8"))
    before = desk.audit()
    with desk.client() as cat:
        sign_in(desk, cat, "cat@example.org")
        assert cat.get("/desk/networks/kent/contribute").status_code == 200
        csrf = csrf_of(cat.get("/desk/networks/kent/contribute/event").text)
        for path in (f"{CE}/inbox", f"{CE}/inbox/{row.id}", f"{CE}/contribute", f"{CE}/contribute/event"):
            response = cat.get(path)
            assert response.status_code == 403, path
            assert "vigil" not in response.text
        assert cat.get("/desk/networks/kent/inbox").status_code == 403, "a contributor has no inbox"
        for path, data in [
            (f"{CE}/inbox/{row.id}/accept", {"target": f"{ISSUE}/calendar"}),
            (f"{CE}/inbox/{row.id}/decline", {"note": "no"}),
            (f"{CE}/inbox/{row.id}/edit", event_form(title="Hijacked")),
            (f"{CE}/contribute/event", event_form()),
            (f"{CE}/contribute/item", item_form()),
            ("/desk/networks/kent/contribute/event", event_form()),  # Birmingham is not hers
        ]:
            response = cat.post(path, data={"csrf": csrf, **data})
            assert response.status_code in (400, 403), (path, response.status_code)
    with desk.client() as kate:
        sign_in(desk, kate, "kate@example.org")
        assert kate.get(f"{CE}/inbox").status_code == 403
        assert kate.get(f"/desk/networks/kent/inbox/{row.id}").status_code == 404, "not Kent's"
        csrf = csrf_of(kate.get("/desk/networks/kent/inbox").text)
        for action, data in [("accept", {"target": f"{ISSUE}/calendar"}), ("decline", {"note": "no"})]:
            response = kate.post(f"/desk/networks/kent/inbox/{row.id}/{action}", data={"csrf": csrf, **data})
            assert response.status_code == 404
    (after,) = rows(desk)
    assert (after.status, after.title) == ("new", row.title)
    assert (issue_text(desk), kent_issue.read_text(encoding="utf-8")) == files
    assert [a for a in desk.audit() if a[0].startswith("contribution.")] == [
        a for a in before if a[0].startswith("contribution.")
    ]
    assert desk.mails_to("bea@example.org", 2, timeout=0.2)[1:] == []


def test_signed_out_and_other_roles(desk: Desk, people_: dict[str, int]) -> None:
    desk.add("ann@example.org", "approver", "central-england")
    with desk.client() as nobody:
        assert nobody.get(f"{CE}/inbox").headers["location"] == "/desk/sign-in"
        assert nobody.get(f"{CE}/contribute/event").headers["location"] == "/desk/sign-in"
        assert nobody.post(f"{CE}/contribute/event", data=event_form()).status_code == 403
        assert nobody.get("/desk/networks/atlantis/inbox").status_code == 303
    with desk.client() as ann:
        sign_in(desk, ann, "ann@example.org")
        assert ann.get(f"{CE}/inbox").status_code == 403
        assert ann.get(f"{CE}/contribute").status_code == 403
        assert ann.get("/desk/networks/atlantis/inbox").status_code == 404
        assert ann.get(f"{CE}/contribute/poems").status_code == 404
    assert rows(desk) == []


def test_every_contribution_form_without_csrf_gets_403(desk: Desk, bea: TestClient, ed: TestClient) -> None:
    assert send(bea, "event", event_form()).status_code == 303
    (row,) = rows(desk)
    paths = [
        r.path
        for r in desk.app.routes
        if isinstance(r, Route)
        and "POST" in (r.methods or ())
        and ("/inbox/" in r.path or "/contribute" in r.path)
    ]
    assert len(paths) == 4
    before = desk.audit()
    for route in paths:
        path = (
            route.replace("{name}", "central-england").replace("{id}", str(row.id)).replace("{kind}", "event")
        )
        for csrf in (None, "", "forged", "a" * 32):
            data = {**event_form(), "note": "n", "target": f"{ISSUE}/calendar"}
            if csrf is not None:
                data["csrf"] = csrf
            for who in (bea, ed):
                assert who.post(path, data=data).status_code == 403, (route, csrf)
    assert desk.audit() == before and len(rows(desk)) == 1 and rows(desk)[0].status == "new"


# ---------------------------------------------------------------------------------------------
# In Chromium, at phone and desktop widths, with axe-core


def browser_sign_in(page: Any, desk: Desk, address: str) -> None:
    with desk.db.session() as s:
        user = s.scalar(select(User.id).where(User.email == address))
        token = sessions.issue_link(s, int(user or 0), now=datetime.now(UTC))
    page.goto(f"{desk.settings.base_url}/desk/sign-in/{token}")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your desk").wait_for()


@pytest.mark.browser
def test_the_event_form_in_a_browser(tab: Any, browser_desk: Desk, pictures: Path) -> None:  # noqa: F811
    from support.axe import check_axe

    page, desk = tab, browser_desk
    base = desk.settings.base_url
    desk.add("bea@example.org", "contributor", region="birmingham")
    desk.add("ed@example.org", "editor", "central-england")
    width = page.width_name

    browser_sign_in(page, desk, "bea@example.org")
    page.get_by_role("link", name="Central England Network").click()
    page.get_by_role("link", name="Send an event or news to the newsletter").click()
    page.get_by_role("link", name="Send an event", exact=True).click()
    page.get_by_role("heading", name="Send an event").wait_for()
    check_page(page, pictures, "desk-contribute-event")
    check_axe(page)
    page.get_by_label("Title").fill("Birmingham vigil")
    page.get_by_label("Day", exact=True).fill("2025-02-28")
    page.get_by_label("Place").fill("Victoria Square")
    page.get_by_label("Booking link").fill("javascript:alert(1)")
    page.get_by_role("button", name="Send to the editor").click()
    page.get_by_text("Nothing was sent yet").wait_for()
    assert page.locator("#start_time-error").is_visible()
    assert page.locator("#booking_link-error").is_visible()
    check_page(page, pictures, "desk-contribute-event-errors")
    check_axe(page)
    page.get_by_label("Day", exact=True).fill(day(30))
    page.get_by_label("Starts at").fill("18:30")
    page.get_by_label("Booking link").fill("https://example.org/vigil")
    page.get_by_label("Description").fill("Bring a candle.")
    page.get_by_role("button", name="Send to the editor").click()
    page.get_by_text("it is in the editor's inbox").wait_for()
    check_page(page, pictures, "desk-contribute-sent")
    check_axe(page)
    if width == "phone":
        overflow = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, "nothing wider than the phone"

    page.context.clear_cookies()
    browser_sign_in(page, desk, "ed@example.org")
    page.goto(f"{base}{CE}/inbox")
    page.get_by_role("heading", name="Inbox of contributions").wait_for()
    check_page(page, pictures, "desk-inbox")
    check_axe(page)
    page.get_by_role("link", name="Birmingham vigil").click()
    page.get_by_role("heading", name="Accept it into an issue").wait_for()
    check_page(page, pictures, "desk-inbox-one")
    check_axe(page)
    page.get_by_label("Where it goes").select_option(f"{ISSUE}/calendar")
    page.get_by_role("button", name="Accept").click()
    page.get_by_text("It is accepted into the issue.").wait_for()
    check_axe(page)
    assert "Birmingham vigil" in issue_text(desk)
    (row,) = rows(desk)
    assert row.status == "accepted"
