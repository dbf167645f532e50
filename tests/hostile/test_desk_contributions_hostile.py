"""The desk's contributions against hostile form values, on SQLite and PostgreSQL.

Every case of ``http/form-values.txt`` in each field of the event and item forms and of the
editor's edit, accept and decline forms (with a valid CSRF value and a signed-in person behind
them, so that they reach the deepest code); then the attacks these forms invite: huge fields,
control characters and bidirectional overrides, ``javascript:`` links (in a link field and in the
Markdown), impossible dates (2025-02-30), a region outside the contributor's scope, another
network's ids in the path and another network's issue in the accept form, hostile row ids. What
must happen: never a 5xx; an error at the field (400) or a refusal (403/404); nothing stored that
holds a control character; no issue file written but the one meant, and only with a valid entry;
no mail but the decline note, to the contributor.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from support.desk import ISSUE, Desk, clock, csrf_of, desk, hostile_desk, sign_in_by_link, workspace
from support.hostile import CONTROL, form_values

from mailer.issue import load_campaign
from mailer.models import AuditEntry, Contribution

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

CE = "/desk/networks/central-england"
KENT_ISSUE = "2025-11-kent-network"
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")

__all__ = ["clock", "desk", "hostile_desk", "workspace"]  # fixtures


def files_of(site: Desk) -> dict[str, str]:
    folder = site.settings.workspace / "campaigns"
    return {p.parent.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*/issue.yaml"))}


def rows_of(site: Desk) -> list[Contribution]:
    with site.db.session() as s:
        found = list(s.scalars(select(Contribution).order_by(Contribution.id)))
        s.expunge_all()
        return found


def client_of(site: Desk, address: str) -> TestClient:
    """A client signed in as ``address``, entered: the caller leaves it."""
    c = site.client()
    c.__enter__()
    sign_in_by_link(site, c, address)
    return c


@pytest.fixture
def site(hostile_desk: Desk) -> Desk:
    """The demo desk with a Birmingham contributor and the editors of both networks."""
    for address, role, network, region in [
        ("bea@example.org", "contributor", "", "birmingham"),
        ("ed@example.org", "editor", "central-england", ""),
        ("kate@example.org", "editor", "kent", ""),
    ]:
        hostile_desk.add(address, role, network, region)
    return hostile_desk


@pytest.fixture
def bea(site: Desk) -> Iterator[TestClient]:
    c = client_of(site, "bea@example.org")
    yield c
    c.__exit__(None, None, None)


@pytest.fixture
def ed(site: Desk) -> Iterator[TestClient]:
    c = client_of(site, "ed@example.org")
    yield c
    c.__exit__(None, None, None)


def day(n: int) -> str:
    return (date.today() + timedelta(days=n)).isoformat()


EVENT = {
    "title": "Birmingham vigil",
    "region": "birmingham",
    "date": day(20),
    "start_time": "18:30",
    "end_time": "20:00",
    "end_date": "",
    "place": "Victoria Square, Birmingham",
    "online_link": "",
    "booking_link": "https://example.org/vigil",
    "contact": "Email birmingham-group@example.org",
    "description": "Bring a candle.",
}
ITEM = {
    "title": "Our stall",
    "region": "birmingham",
    "highlight": "read about our stall",
    "body": "It went well.",
    "link_text_1": "Our page",
    "link_url_1": "https://example.org/b",
    "event_title_1": "Our stall on the day",
    "event_date_1": day(20),
    "event_time_1": "10:00",
    "event_place_1": "The market, Birmingham",
    "contact": "Email b@example.org",
    "interests": "refugees",
}


def post(client: TestClient, path: str, data: dict[str, Any], page: str | None = None) -> Any:
    csrf = csrf_of(client.get(page or path).text)
    return client.post(path, data={"csrf": csrf, **data})


def assert_clean(site: Desk) -> None:
    """Nothing stored holds a control character or a bidirectional override; every issue file
    still loads."""
    with site.db.session() as s:
        for row in s.scalars(select(Contribution)):
            stored = json.loads(row.fields)
            for value in [row.title, row.region, row.note, *json.dumps(stored["form"]).split('"')]:
                assert not CONTROL.search(value.replace("\n", "")), repr(value)
                assert not BIDI.search(value), repr(value)
            assert row.region in site.shape.regions or row.region == ""
        for line in s.scalars(select(AuditEntry)):
            assert not CONTROL.search(line.action + line.object + line.detail)
    for slug in files_of(site):
        if slug != "2025-11-echr-alert":
            load_campaign(site.settings.workspace, slug, site.shape)


# ---------------------------------------------------------------------------------------------
# The corpus in every field of every form


@pytest.mark.slow
def test_hostile_form_values_in_every_contribution_form(site: Desk, bea: TestClient, ed: TestClient) -> None:
    failures: list[str] = []
    statuses: dict[int, int] = {}
    files = files_of(site)
    csrf_bea = csrf_of(bea.get(f"{CE}/contribute/event").text)
    for kind, base in (("event", EVENT), ("item", ITEM)):
        for attack, value in form_values():
            tries = [{**base, name: value} for name in base] + [dict.fromkeys(base, value)]
            for data in tries:
                response = bea.post(f"{CE}/contribute/{kind}", data={"csrf": csrf_bea, **data})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} {kind} [{attack}] {list(data)[:3]}")
    assert not failures, "\n".join(failures[:30])
    assert statuses.get(400, 0) > 50 and statuses.get(303, 0) > 10, statuses
    assert files_of(site) == files, "sending touches no issue"
    assert_clean(site)

    # The editor's forms, on a contribution of each kind.
    event_id = next(r.id for r in rows_of(site) if r.kind == "event")
    item_id = next(r.id for r in rows_of(site) if r.kind == "item")
    csrf_ed = csrf_of(ed.get(f"{CE}/inbox/{event_id}").text)
    for attack, value in form_values():
        for cid, base in ((event_id, EVENT), (item_id, ITEM)):
            edits = [{**base, name: value} for name in base]
            for path, data in [
                *[(f"{CE}/inbox/{cid}/edit", d) for d in edits],
                (f"{CE}/inbox/{cid}/accept", {"target": value, "highlight": "x"}),
                (f"{CE}/inbox/{cid}/accept", {"target": f"{ISSUE}/calendar", "highlight": value}),
                (f"{CE}/inbox/{cid}/decline", {"note": value} if value.strip() else {"note": ""}),
            ]:
                if path.endswith("/decline") and value.strip():
                    continue  # a real note would decline it: below
                response = ed.post(path, data={"csrf": csrf_ed, **data})
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} {path} [{attack}]")
    assert not failures, "\n".join(failures[:30])
    assert_clean(site)

    note = "Sorry\x00 \u202eno\r\nBcc: everyone@example.org\x1b[31m"
    declined = post(ed, f"{CE}/inbox/{item_id}/decline", {"note": note}, f"{CE}/inbox/{item_id}")
    assert declined.status_code == 303
    for received in site.smtp.messages[-1:]:
        assert received.rcpt_tos == ["bea@example.org"]
        head = received.data.split(b"\r\n\r\n", 1)[0]
        assert b"Bcc:" not in head and b"everyone@" not in head
    (row,) = [r for r in rows_of(site) if r.id == item_id]
    assert row.note == "Sorry no\nBcc: everyone@example.org[31m", "control characters gone, the line kept"
    assert_clean(site)


# ---------------------------------------------------------------------------------------------
# The attacks these forms invite


def test_huge_fields_are_refused_at_their_field(site: Desk, bea: TestClient) -> None:
    for name, size in [("title", 201), ("description", 5001), ("place", 50_000), ("booking_link", 1001)]:
        value = "https://example.org/" + "x" * size if name == "booking_link" else "x" * size
        response = post(bea, f"{CE}/contribute/event", {**EVENT, name: value})
        assert response.status_code == 400, name
        assert f'id="{name}-error"' in response.text and "characters or fewer" in response.text, name
        assert len(response.text) < 200_000, "the value is not echoed back whole"
    huge = post(bea, f"{CE}/contribute/event", {**EVENT, "description": "x" * 100_000})
    assert huge.status_code == 400, "a field past the form's 64 KB: refused whole"
    body = post(bea, f"{CE}/contribute/item", {**ITEM, "body": "y" * 10_001})
    assert body.status_code == 400 and 'id="body-error"' in body.text
    multipart = bea.post(
        f"{CE}/contribute/event",
        data={"csrf": csrf_of(bea.get(f"{CE}/contribute/event").text), **EVENT},
        files={"description": ("x.txt", b"z" * 200_000, "text/plain")},
    )
    assert multipart.status_code in (400, 403, 413)
    assert rows_of(site) == []


def test_control_characters_and_overrides_are_taken_out(site: Desk, bea: TestClient, ed: TestClient) -> None:
    typed = {
        **EVENT,
        "title": "Vigil\x00 for\x1b[2J \u202ereversed\u202c rights\x7f",
        "place": "Victoria\r\nSquare\tBirmingham",
        "description": "Line one\x00\r\n\r\n\r\n\r\nLine two\u2028end",
    }
    assert post(bea, f"{CE}/contribute/event", typed).status_code == 303
    (row,) = rows_of(site)
    form = json.loads(row.fields)["form"]
    assert row.title == form["title"] == "Vigil for[2J reversed rights"
    assert form["place"] == "Victoria Square Birmingham"
    assert form["description"] == "Line one\n\nLine two end"
    assert (
        post(
            ed, f"{CE}/inbox/{row.id}/accept", {"target": f"{ISSUE}/calendar"}, f"{CE}/inbox/{row.id}"
        ).status_code
        == 303
    )
    text = files_of(site)[ISSUE]
    assert "Vigil for[2J reversed rights" in text and "\x1b" not in text and "\u202e" not in text
    feed = ed.get("/calendar/birmingham.ics").text
    assert "SUMMARY:Vigil for[2J reversed rights" in feed and "\x00" not in feed
    assert_clean(site)


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(document.cookie)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "https://example.org/\x00",
        "https://example.org/a b",
        "https://example.org/\u202eevil",
        "//evil.example/",
        "mailto:x@example.org",
        "ftp://example.org/",
        "https://",
        "https://exa mple.org",
        'https://example.org/"><script>alert(1)</script>',
    ],
)
def test_links_that_are_no_web_address_are_refused(site: Desk, bea: TestClient, link: str) -> None:
    for name in ("booking_link", "online_link"):
        response = post(bea, f"{CE}/contribute/event", {**EVENT, name: link})
        assert response.status_code == 400, (name, link)
        assert f'id="{name}-error"' in response.text
        assert "<script>alert" not in response.text
    item = post(bea, f"{CE}/contribute/item", {**ITEM, "link_url_1": link})
    assert item.status_code == 400 and 'id="link_url_1-error"' in item.text
    assert rows_of(site) == []


@pytest.mark.parametrize(
    "text",
    [
        "[click me](javascript:alert(1))",
        "<a href='javascript:alert(1)'>x</a>",
        "![x](data:text/html,<script>alert(1)</script>)",
        "<img src=x onerror=alert(1)>",
        "<iframe src=https://evil.example></iframe>",
        "TODO: write this",
    ],
)
def test_script_and_markup_in_the_text_are_refused(site: Desk, bea: TestClient, text: str) -> None:
    item = post(bea, f"{CE}/contribute/item", {**ITEM, "body": text})
    assert item.status_code == 400 and 'id="body-error"' in item.text
    event = post(bea, f"{CE}/contribute/event", {**EVENT, "description": text})
    assert event.status_code == 400 and 'id="description-error"' in event.text
    titled = post(bea, f"{CE}/contribute/event", {**EVENT, "title": text})
    assert titled.status_code == 400 and 'id="title-error"' in titled.text
    assert rows_of(site) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("date", "2025-02-30"),
        ("date", "2027-02-29"),
        ("date", "2026-13-01"),
        ("date", "2026-00-10"),
        ("date", "0000-00-00"),
        ("date", "tomorrow"),
        ("date", "2026-1-1"),
        ("date", "+2026-12-01"),
        ("date", "２０２７-01-01"),
        ("date", "2027-01-01T10:00"),
        ("date", "9999-12-31"),
        ("date", "1970-01-01"),
        ("date", ""),
        ("end_date", "2025-02-30"),
        ("end_date", "1999-01-01"),
        ("start_time", "25:00"),
        ("start_time", "18:60"),
        ("start_time", "6pm"),
        ("start_time", "18:30:00"),
        ("end_time", "24:00"),
        ("end_time", "17:00"),  # before it starts
    ],
)
@pytest.mark.slow
def test_impossible_dates_and_times_are_refused(site: Desk, bea: TestClient, field: str, value: str) -> None:
    response = post(bea, f"{CE}/contribute/event", {**EVENT, field: value})
    assert response.status_code == 400, (field, value)
    assert f'id="{field}-error"' in response.text
    assert rows_of(site) == []


@pytest.mark.parametrize(
    "region",
    [
        "derby",
        "central-england",
        "west-midlands",
        "canterbury",
        "kent",
        "",
        "atlantis",
        "../birmingham",
        "birmingham\x00",
    ],
)
def test_a_region_outside_the_contributors_scope_is_refused(site: Desk, bea: TestClient, region: str) -> None:
    for kind, base in (("event", EVENT), ("item", ITEM)):
        response = post(bea, f"{CE}/contribute/{kind}", {**base, "region": region})
        assert response.status_code == 400, (kind, region)
        assert 'id="region-error"' in response.text
    kent = post(
        bea,
        "/desk/networks/kent/contribute/event",
        {**EVENT, "region": "canterbury"},
        f"{CE}/contribute/event",
    )
    assert kent.status_code == 403, "Birmingham's contributor sends nothing to Kent"
    assert rows_of(site) == []


@pytest.mark.slow
def test_another_networks_ids_and_issues(site: Desk, bea: TestClient, ed: TestClient) -> None:
    assert post(bea, f"{CE}/contribute/event", EVENT).status_code == 303
    (row,) = rows_of(site)
    files = files_of(site)
    page = f"{CE}/inbox/{row.id}"
    for target in [
        f"{KENT_ISSUE}/calendar",
        f"{KENT_ISSUE}/item",
        f"{KENT_ISSUE}/under/speaker-meeting",
        "2025-11-echr-alert/calendar",
        f"{ISSUE}/under/no-such-item",
        f"{ISSUE}/under/../../x",
        f"../{ISSUE}/calendar",
        f"{ISSUE}/calendar/extra",
        f"{ISSUE}",
        "",
    ]:
        response = post(ed, f"{CE}/inbox/{row.id}/accept", {"target": target}, page)
        assert response.status_code == 400, target
        assert 'id="target-error"' in response.text
    assert files_of(site) == files, "no issue file was touched"
    kate = client_of(site, "kate@example.org")
    try:
        csrf = csrf_of(kate.get("/desk/networks/kent/inbox").text)
        for action, data in [
            ("accept", {"target": f"{KENT_ISSUE}/calendar"}),
            ("decline", {"note": "not ours"}),
            ("edit", EVENT),
        ]:
            response = kate.post(f"/desk/networks/kent/inbox/{row.id}/{action}", data={"csrf": csrf, **data})
            assert response.status_code == 404, action
        assert kate.get(f"/desk/networks/kent/inbox/{row.id}").status_code == 404
        assert kate.get(f"{CE}/inbox/{row.id}").status_code == 403
    finally:
        kate.__exit__(None, None, None)
    for value in ["-1", "0", "1e3", "0x1", "１", "99999999999999999999", "1 OR 1=1", "2.0", "%00", "..%2F1"]:
        assert ed.get(f"{CE}/inbox/{value}").status_code in (400, 404), value
        response = ed.post(
            f"{CE}/inbox/{value}/decline", data={"csrf": csrf_of(ed.get(page).text), "note": "n"}
        )
        assert response.status_code in (400, 404), value
    (after,) = rows_of(site)
    assert after.status == "new" and files_of(site) == files
    # Only the notice of the contribution's arrival went out (to its network's reviewers): no note.
    subjects = [m.data.split(b"\r\n\r\n", 1)[0] for m in site.smtp.messages]
    assert subjects and all(b"Subject: New event in the" in head for head in subjects), "no note was mailed"
