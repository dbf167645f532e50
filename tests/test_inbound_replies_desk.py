"""Replies asking to leave on the desk's home, over HTTP against the real app, on SQLite and
PostgreSQL, in a workspace of two networks (Kent, Central England).

A reply whose From is not proved waits on the home page of the admins of the network it was written
to (not of another network's, nor of an editor's); "Unsubscribe them" (a POST with its CSRF value)
makes the member leave that network, recording which desk person did it in the consent log, the
request and the audit log; "Not a request" sets a stranger's reply aside.
"""

from __future__ import annotations

from sqlalchemy import select
from support.desk import Clock, Desk, clock, csrf_of, desk, form_of, networks_workspace, sign_in_by_link
from support.hashes import address_hash
from support.replies import reply

from mailer.audience.consent import has_left
from mailer.audience.suppression import is_hash_suppressed
from mailer.inbound import process_message
from mailer.models import ConsentEvent, Member, Region, ReplyRequest

__all__ = ["Clock", "clock", "desk", "networks_workspace"]  # fixtures

JO = "jo@members.example.net"
STRANGER = "someone@elsewhere.example.net"


def _setup(desk: Desk) -> tuple[int, int, int]:
    """Jo, a Kent member; her reply to Kent's From address and a stranger's to Central England's
    Reply-To, neither signed: (Jo's id, her request's id, the stranger's request's id)."""
    with desk.db.session() as session:
        kent = session.scalar(select(Region.id).where(Region.slug == "kent"))
        jo = Member(email=JO, address_hash=address_hash(JO), name="Jo Bloggs", region_id=kent)
        session.add(jo)
        session.flush()
        jo_id = jo.id
    settings = desk.settings
    mine = process_message(
        desk.db, settings, reply(JO, "Please take me off this list", to="newsletter@example.org")
    )
    theirs = process_message(
        desk.db, settings, reply(STRANGER, "unsubscribe", subject="unsubscribe", to="ce-editor@example.org")
    )
    assert mine.pending and theirs.pending
    with desk.db.session() as session:
        rows = {r.address: (r.id, r.network) for r in session.scalars(select(ReplyRequest))}
    assert rows[JO][1] == "kent" and rows[STRANGER][1] == "central-england"
    return jo_id, rows[JO][0], rows[STRANGER][0]


def test_admins_act_on_the_replies_of_their_own_network(desk: Desk) -> None:
    jo_id, jo_request, stranger_request = _setup(desk)
    desk.add("kay@example.org", "admin", "kent", name="Kay")
    desk.add("cal@example.org", "admin", "central-england", name="Cal")
    desk.add("ed@example.org", "editor", "kent", name="Ed")

    with desk.client() as kay, desk.client() as cal, desk.client() as ed:
        sign_in_by_link(desk, kay, "kay@example.org")
        sign_in_by_link(desk, cal, "cal@example.org")
        sign_in_by_link(desk, ed, "ed@example.org")

        home = kay.get("/desk/")
        assert home.status_code == 200 and "Replies asking to leave" in home.text
        assert "Jo Bloggs" in home.text and "take me off" in home.text and STRANGER not in home.text
        assert "Replies asking to leave" not in ed.get("/desk/").text
        other = cal.get("/desk/")
        assert STRANGER in other.text and "Jo Bloggs" not in other.text
        assert "/desk/replies/unsubscribe" not in other.text  # a stranger: nobody to unsubscribe

        # without the CSRF value, and from another network's admin: refused, nothing changed
        assert kay.post("/desk/replies/unsubscribe", data={"request_id": str(jo_request)}).status_code == 403
        refused = cal.post(
            "/desk/replies/unsubscribe", data={"csrf": csrf_of(other.text), "request_id": str(jo_request)}
        )
        assert refused.status_code == 403
        with desk.db.session() as session:
            assert not has_left(session, jo_id, "kent")

        form = form_of(home.text, "/desk/replies/unsubscribe")
        assert form["request_id"] == str(jo_request)
        done = kay.post("/desk/replies/unsubscribe", data=form)
        assert done.status_code == 303 and done.headers["location"] == "/desk/?done=reply-unsubscribe"
        after = kay.get(done.headers["location"])
        assert "They are unsubscribed" in after.text and "Jo Bloggs" not in after.text
        again = kay.post("/desk/replies/unsubscribe", data=form)
        assert again.status_code == 400 and "someone has dealt with it already" in again.text

        dismissed = cal.post("/desk/replies/dismiss", data=form_of(other.text, "/desk/replies/dismiss"))
        assert dismissed.status_code == 303

    with desk.db.session() as session:
        assert has_left(session, jo_id, "kent") and not has_left(session, jo_id, "central-england")
        assert not is_hash_suppressed(session, address_hash(JO))  # Kent's mail only, as she wrote to Kent
        log = session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == jo_id)).all()
        assert [(e.action, e.source) for e in log] == [("leave-network", "admin")]
        assert "reply asking to leave, confirmed by Kay <kay@example.org> (desk)" in log[0].detail
        states = {r.id: (r.state, r.decided_by) for r in session.scalars(select(ReplyRequest))}
    assert states == {
        jo_request: ("acted", "Kay <kay@example.org> (desk)"),
        stranger_request: ("dismissed", "Cal <cal@example.org> (desk)"),
    }
    assert ("reply.unsubscribe", JO) in desk.audit() and ("reply.dismiss", STRANGER) in desk.audit()
