"""The organiser's list on the desk (docs/events.md, The organiser's list): ``/desk/events``, the
events your roles cover with how many answered yes, no and are waiting; ``/desk/events/{uid}``, who
answered one of them, with a form to write to the people coming; ``/desk/events/{uid}/message``, that
form's preview (how many it goes to) and then its send, which queues it for the workers
(``mailer.events.organiser``); ``/desk/events/{uid}.csv``, the list as a spreadsheet-safe file.
Someone whose roles do not cover an event gets 403 and sees nothing of it
(``mailer.desk.attendance``)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.desk import attendance
from mailer.events import when_words
from mailer.events.organiser import BODY_LIMIT, SUBJECT_LIMIT, Draft, MessageRefused, check
from mailer.web.context import web
from mailer.web.desk.common import Signed, desk_form, desk_page, forbidden, message, no_store, page

UID_LIMIT = 300
#: Longer fields than a message may have are cut here, still too long, so the page says by how much.
READ_LIMIT = 4 * BODY_LIMIT


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


async def _event_page(
    request: Request, signed: Signed, uid: str, written: dict[str, object], errors: dict[str, str]
) -> Response:
    w = web(request)
    now = w.clock()
    try:
        listed = await w.write(lambda s: attendance.attendee_list(s, signed.person, w.shape, uid, now=now))
    except attendance.NotAllowed:
        return forbidden(request, signed)
    context = {
        "listed": listed,
        "when": when_words(listed.event, w.settings.zone),
        "written": written,
        "errors": errors,
        "subject_limit": SUBJECT_LIMIT,
        "body_limit": BODY_LIMIT,
    }
    return no_store(page(request, "event.html", context, signed=signed, status=400 if errors else 200))


@desk_page
async def event_page(request: Request, signed: Signed) -> Response:
    uid = _uid(request)
    if uid is None:
        return forbidden(request, signed)
    return await _event_page(request, signed, uid, _written(FormData()), {})


def _written(form: FormData) -> dict[str, object]:
    def raw(name: str) -> str:
        value = form.get(name)
        return value[:READ_LIMIT] if isinstance(value, str) else ""

    return {"subject": raw("subject"), "body": raw("body"), "waiting": form.get("waiting") == "yes"}


@desk_form
async def event_message(request: Request, form: FormData, signed: Signed) -> Response:
    """The message form's post: ``step=preview`` shows how many it goes to and asks to confirm;
    ``step=send`` queues it; ``step=edit`` shows the form again with the message in it."""
    w = web(request)
    uid, now = _uid(request), w.clock()
    if uid is None:
        return forbidden(request, signed)
    written = _written(form)
    step = form.get("step")
    if step == "edit":
        return await _event_page(request, signed, uid, written, {})
    try:
        draft = check(str(written["subject"]), str(written["body"]), waiting_too=bool(written["waiting"]))
    except MessageRefused as refused:
        words = refused.message[:1].upper() + refused.message[1:]
        if refused.problem.hint:
            words += f": {refused.problem.hint}"
        return await _event_page(request, signed, uid, written, {refused.field or "body": words + "."})
    try:
        if step == "send":
            queued = await w.write(
                lambda s: attendance.send_message(s, signed.person, w.shape, uid, draft, now=now)
            )
            return _sent(request, signed, uid, queued.recipients)
        reach = await w.read(lambda s: attendance.message_reach(s, signed.person, w.shape, uid, draft))
    except attendance.NotAllowed:
        return forbidden(request, signed)
    return no_store(page(request, "event_message.html", _preview(uid, draft, reach), signed=signed))


def _preview(uid: str, draft: Draft, reach: int) -> dict[str, object]:
    return {"uid": uid, "draft": draft, "reach": reach}


def _sent(request: Request, signed: Signed, uid: str, recipients: int) -> Response:
    people = "1 person" if recipients == 1 else f"{recipients} people"
    return message(
        request,
        "Your message is on its way",
        f"It goes to {people} in the next minute or two (not to anyone who asked us not to mail them).",
        signed=signed,
        link=(f"/desk/events/{uid}", "Back to the event"),
    )


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
    Route("/desk/events/{uid}/message", event_message, methods=["POST"]),
    Route("/desk/events/{uid}", event_page, methods=["GET"]),
]
