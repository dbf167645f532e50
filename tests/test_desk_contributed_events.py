"""A contributor's news item carrying its events: sent with the item from the desk's contribute
form (a row half filled is refused at its field), accepted by the editor as a new item, and the
issue then holds the item with its events under it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from support.desk import ISSUE, Desk, clock, csrf_of, desk, sign_in, workspace

from mailer.issue import load_campaign
from mailer.models import Contribution

CE = "/desk/networks/central-england"
__all__ = ["clock", "desk", "workspace"]  # fixtures


def client_of(desk: Desk, address: str) -> Any:
    c = desk.client()
    c.__enter__()
    sign_in(desk, c, address)
    return c


def test_an_item_sent_with_its_events_is_accepted_with_them(desk: Desk) -> None:
    desk.add("bea@example.org", "contributor", region="birmingham", name="Bea")
    desk.add("ed@example.org", "editor", "central-england", name="Ed")
    bea, ed = client_of(desk, "bea@example.org"), client_of(desk, "ed@example.org")
    day = (date.today() + timedelta(days=30)).isoformat()
    form = {
        "title": "Birmingham's winter coat drive",
        "region": "birmingham",
        "highlight": "bring a coat to our drive",
        "body": "We collect coats for the refugee centre.",
        "event_title_1": "Coat drive at the library",
        "event_date_1": day,
        "event_time_1": "10:00",
        "event_place_1": "Central Library, Birmingham",
        "event_title_2": "",
        "event_date_2": day,
    }
    page = bea.get(f"{CE}/contribute/item")
    assert 'name="event_title_1"' in page.text and 'name="event_place_2"' in page.text
    refused = bea.post(f"{CE}/contribute/item", data={"csrf": csrf_of(page.text), **form})
    assert refused.status_code == 400 and "Give event 2 a title" in refused.text
    form["event_title_2"] = "Sorting the coats"
    sent = bea.post(f"{CE}/contribute/item", data={"csrf": csrf_of(page.text), **form})
    assert sent.status_code == 303, sent.text
    with desk.db.session() as s:
        row = s.scalars(select(Contribution)).one()
        cid = row.id
    one = ed.get(f"{CE}/inbox/{cid}")
    assert "Coat drive at the library" in one.text
    accepted = ed.post(
        f"{CE}/inbox/{cid}/accept", data={"csrf": csrf_of(one.text), "target": f"{ISSUE}/item"}
    )
    assert accepted.status_code == 303
    issue = load_campaign(desk.settings.workspace, ISSUE, desk.shape).issue
    item = next(i for i in issue.items if i.title == "Birmingham's winter coat drive")
    assert [(e.title, e.location) for e in item.events] == [
        ("Coat drive at the library", "Central Library, Birmingham"),
        ("Sorting the coats", ""),
    ]
    assert str(item.events[0].start).startswith(f"{day} 10:00") or item.events[
        0
    ].start.isoformat().startswith(f"{day}T10:00")
    bea.__exit__(None, None, None)
    ed.__exit__(None, None, None)
