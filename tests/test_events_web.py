"""Answering an event from a real message (docs/events.md): the Kent newsletter sent to the SMTP test
server, the RSVP link parsed out of what a member got, followed; the organiser's list on the desk.
Both databases."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from support.desk import BASE, TestClient
from support.events import (
    GROUP_EVENT,
    SLUG,
    at_issue_time,
    desk_for,
    html_of,
    rsvp_links,
    sent_kent,
    signed_in,
)
from support.sending import Mailing

from mailer import tokens
from mailer.models import ConsentEvent, Rsvp
from mailer.reports.campaign import campaign_report

pytestmark = pytest.mark.slow


def answers(mailing: Mailing) -> list[tuple[int | None, str]]:
    with mailing.db.session() as s:
        return [(r.member_id, r.answer) for r in s.scalars(select(Rsvp).order_by(Rsvp.id))]


def rsvp_lines(mailing: Mailing) -> int:
    with mailing.db.session() as s:
        return int(s.scalar(select(func.count()).where(ConsentEvent.action == "rsvp")) or 0)


def test_a_member_answers_from_the_link_in_the_kent_newsletter_and_the_group_organiser_sees_it(
    mailing: Mailing,
) -> None:
    received = sent_kent(mailing)
    got = next(m for m in received if GROUP_EVENT in rsvp_links(m))
    path = rsvp_links(got)[GROUP_EVENT]
    # Every event of the message has its own RSVP link, in both parts, and the links name the event.
    assert path in html_of(got) and len(rsvp_links(got)) >= 2
    assert "Say if you are coming to Maidstone, Medway and Swale Group meeting" in html_of(got)
    member_address = str(got["To"].addresses[0].addr_spec)

    desk = desk_for(mailing, mailing.smtp, at_issue_time())
    with TestClient(desk.app, base_url=BASE) as member:  # a browser with no cookies
        shown = member.get(path)
        assert shown.status_code == 200 and "Maidstone, Medway and Swale Group meeting" in shown.text
        assert member.head(path).status_code == 200
        assert answers(mailing) == []  # a GET (a mail scanner's) records nothing

        done = member.post(path, data={"answer": "yes"})
        assert done.status_code == 200 and "we have you down as coming" in done.text
        again = member.post(path, data={"answer": "yes"})
        assert again.status_code == 200
        assert [a for _, a in answers(mailing)] == ["yes"] and rsvp_lines(mailing) == 1  # idempotent

        changed = member.post(path, data={"answer": "no"})
        assert changed.status_code == 200 and "not coming" in changed.text
        assert [a for _, a in answers(mailing)] == ["no"] and rsvp_lines(mailing) == 2
        assert "You said you cannot come" in member.get(path).text
        member.post(path, data={"answer": "yes"})
        assert "set-cookie" not in {k.lower() for k in done.headers}

        # The preference page lists the answer, with a link to change it.
        member_id = tokens.verify(path.rsplit("/", 1)[1], "rsvp", keys=mailing.settings.secrets).member_id
        prefs = member.get("/p/" + tokens.sign("preferences", member_id, keys=mailing.settings.secrets))
        assert prefs.status_code == 200 and "Events you answered" in prefs.text
        assert "you are coming" in prefs.text and f"/rsvp/{GROUP_EVENT}/" in prefs.text

    # The campaign report counts the answers, per event, region and campaign: no names.
    with mailing.db.session() as s:
        report = campaign_report(s, mailing.shape, SLUG)
    assert report.rsvp_total.yes == 1 and report.rsvp_by_region["maidstone-medway-swale"].yes == 1
    assert member_address not in json.dumps(report.as_dict())

    organiser = signed_in(desk, "mms-coordinator@example.org", "contributor", "maidstone-medway-swale")
    listed = organiser.get("/desk/events")
    assert listed.status_code == 200 and f"/desk/events/{GROUP_EVENT}" in listed.text
    one = organiser.get(f"/desk/events/{GROUP_EVENT}")
    assert one.status_code == 200 and member_address in one.text and "1 coming" in one.text
    csv = organiser.get(f"/desk/events/{GROUP_EVENT}.csv")
    assert csv.status_code == 200 and member_address in csv.text

    other = signed_in(desk, "canterbury-coordinator@example.org", "contributor", "canterbury")
    assert other.get(f"/desk/events/{GROUP_EVENT}").status_code == 403
    assert other.get(f"/desk/events/{GROUP_EVENT}.csv").status_code == 403
    assert GROUP_EVENT not in other.get("/desk/events").text
    assert member_address not in other.get(f"/desk/events/{GROUP_EVENT}").text
