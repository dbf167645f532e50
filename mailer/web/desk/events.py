"""The organiser's list on the desk (docs/events.md, The organiser's list): ``/desk/events``, the
events your roles cover with how many answered yes, no and are waiting; ``/desk/events/{uid}``, who
answered one of them; ``/desk/events/{uid}.csv``, the same as a spreadsheet-safe file. Someone whose
roles do not cover an event gets 403 and sees nothing of it (``mailer.desk.attendance``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.desk import attendance
from mailer.events import when_words
from mailer.web.context import web
from mailer.web.desk.common import Signed, desk_page, forbidden, no_store, page

UID_LIMIT = 300


@desk_page
async def events_page(request: Request, signed: Signed) -> Response:
    w = web(request)
    now = w.clock()
    lines = await w.read(lambda s: attendance.events_for(s, signed.person, w.shape, since=now))
    rows = [(line, when_words(line.event, w.settings.zone)) for line in lines]
    return page(request, "events.html", {"rows": rows}, signed=signed)


def _uid(request: Request) -> str | None:
    uid = str(request.path_params["uid"])
    return uid if 0 < len(uid) <= UID_LIMIT else None


@desk_page
async def event_page(request: Request, signed: Signed) -> Response:
    w = web(request)
    uid, now = _uid(request), w.clock()
    if uid is None:
        return forbidden(request, signed)
    try:
        listed = await w.write(lambda s: attendance.attendee_list(s, signed.person, w.shape, uid, now=now))
    except attendance.NotAllowed:
        return forbidden(request, signed)
    context = {"listed": listed, "when": when_words(listed.event, w.settings.zone)}
    return no_store(page(request, "event.html", context, signed=signed))


@desk_page
async def event_csv(request: Request, signed: Signed) -> Response:
    w = web(request)
    uid, now = _uid(request), w.clock()
    if uid is None:
        return forbidden(request, signed)
    try:
        body = await w.write(lambda s: attendance.attendees_csv(s, signed.person, w.shape, uid, now=now))
    except attendance.NotAllowed:
        return forbidden(request, signed)
    headers = {
        "Content-Disposition": f'attachment; filename="{uid}.csv"',
        "X-Content-Type-Options": "nosniff",
    }
    return no_store(Response(body, media_type="text/csv; charset=utf-8", headers=headers))


routes = [
    Route("/desk/events", events_page, methods=["GET"]),
    Route("/desk/events/{uid}.csv", event_csv, methods=["GET"]),
    Route("/desk/events/{uid}", event_page, methods=["GET"]),
]
