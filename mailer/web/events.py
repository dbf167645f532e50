"""Answering an event (docs/events.md): a member's RSVP link, and the public event page.

- ``GET /rsvp/{uid}/{token}``: the member's link from their message (``token``: purpose "rsvp",
  their member id and the campaign). It shows the event, their answer if any, and two buttons. A
  GET never records anything: mail scanners follow links.
- ``POST /rsvp/{uid}/{token}`` with ``answer=yes`` or ``no`` records it, at once; no cookie is
  needed and no CSRF value: the signed token in the URL is what authorises it, as for one-click
  unsubscribe, and another site cannot know it. Posting the same answer again changes nothing;
  the same link changes the answer later. The token answers only the events of its own campaign,
  and only for a member that campaign was sent to (``events.event_for_member``).
- ``/rsvp/{uid}/`` (a link without a token: the public copy in the archive, a preview, a test send)
  goes to the event's public page.
- ``GET /events/{uid}``: the public page of an event, where someone who is not a member answers
  with their name and address; ``POST`` (with CSRF, a honeypot, limits per client network and per
  mailbox) mails a confirmation link, and nothing counts until it is followed:
  ``GET /events/{uid}/confirm/{token}`` shows a button, whose ``POST`` confirms (a link used
  already, or overtaken by a later answer, changes nothing). The newsletter is a separate, unticked
  box: ticked, the page sends the person on to the sign-up form, the only way anyone subscribes.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailer import events, tokens
from mailer.audience.addresses import mailable
from mailer.audience.consent import mailbox_key, signup_name_problem
from mailer.audience.networks import Network
from mailer.db import Session
from mailer.errors import InvalidInput, MailerError
from mailer.forms import FormRefused
from mailer.issue.calendar_text import calendar_url, event_page_url
from mailer.limits import hashed_key
from mailer.web.context import Web, client_network, in_range, web
from mailer.web.forms import read_form, text
from mailer.web.mail import system_mail
from mailer.web.preferences import page_network

HONEYPOT = "website"
#: A confirmation link of the public page works this long.
CONFIRM_DAYS = 7
#: The answer a confirmation token carries, in its "campaign" field, with the link's number: answer
#: code + 4 × the link's number (``Requested.serial``).
ANSWER_CODES = {"yes": 1, "no": 2}
_CODE_ANSWERS = {code: answer for answer, code in ANSWER_CODES.items()}
_SERIAL = 4
UID_LIMIT = 300


def _uid(request: Request) -> str:
    uid = str(request.path_params["uid"])
    if not uid or len(uid) > UID_LIMIT:
        raise HTTPException(404)
    return uid


def _network(w: Web, event: events.EventInfo) -> Network | None:
    return page_network(w, event.network or None)


def _event_context(w: Web, event: events.EventInfo) -> dict[str, object]:
    base = w.settings.base_url
    full = event.full_uid(w.settings.list_domain)
    return {
        "event": event,
        "when": events.when_words(event, w.settings.zone),
        "calendar_url": calendar_url(base, full),
        "page_url": event_page_url(base, full),
    }


# ---------------------------------------------------------------------------------------------
# A member's link


async def _member_event(w: Web, uid: str, token: str) -> tuple[tokens.TokenData, events.EventInfo]:
    data = in_range(tokens.verify(token, "rsvp", keys=w.keys))
    event = await w.read(lambda s: events.event_for_member(s, uid, data.member_id, data.campaign))
    if event is None:
        raise tokens.InvalidToken("an RSVP token for another campaign's event, or no delivery")
    return data, event


async def rsvp_page(request: Request) -> Response:
    """GET: the event, the member's answer, and the buttons. Records nothing."""
    w = web(request)
    uid, token = _uid(request), str(request.path_params["token"])
    data, event = await _member_event(w, uid, token)
    answer = await w.read(lambda s: events.member_answer(s, uid, data.member_id))
    return _rsvp(w, request, event, answer, done=False)


def _rsvp(
    w: Web, request: Request, event: events.EventInfo, answer: str | None, *, done: bool, status: int = 200
) -> Response:
    closed = event.cancelled or event.ends_at <= w.clock()
    context = {**_event_context(w, event), "answer": answer, "done": done, "closed": closed}
    context["action"] = request.url.path
    return w.pages.page(request, "rsvp.html", context, status=status, network=_network(w, event))


async def rsvp(request: Request) -> Response:
    """POST: record the member's answer (yes or no); the same answer again changes nothing."""
    w = web(request)
    uid, token = _uid(request), str(request.path_params["token"])
    data, event = await _member_event(w, uid, token)
    form = await read_form(request)
    answer = text(form, "answer", 10)
    if answer not in events.ANSWERS:
        return _rsvp(w, request, event, None, done=False, status=400)
    now = w.clock()

    def work(session: Session) -> events.Answered:
        return events.answer_as_member(session, uid, data.member_id, answer, now)

    try:
        done = await w.write(work)
    except events.EventClosed:
        return _rsvp(w, request, event, None, done=False, status=409)
    return _rsvp(w, request, done.event, done.answer, done=True)


async def no_token(request: Request) -> Response:
    """A link without its token (a public copy, a preview, a test): to the event's public page."""
    return RedirectResponse(f"/events/{request.path_params['uid']}", status_code=303)


# ---------------------------------------------------------------------------------------------
# The public page


async def _public_event(w: Web, uid: str) -> events.EventInfo:
    event = await w.read(lambda s: events.find_event(s, uid))
    if event is None:
        raise HTTPException(404)
    return event


async def event_page(request: Request) -> Response:
    w = web(request)
    event = await _public_event(w, _uid(request))
    return _public(w, request, event)


def _public(
    w: Web,
    request: Request,
    event: events.EventInfo,
    *,
    values: dict[str, object] | None = None,
    refused: FormRefused | None = None,
) -> Response:
    context = {
        **_event_context(w, event),
        "closed": event.cancelled or event.ends_at <= w.clock(),
        "action": request.url.path,
        "values": values or {"name": "", "email": "", "answer": "yes", "newsletter": False},
        "errors": {},
        "honeypot": HONEYPOT,
    }
    path, network = f"/events/{event.uid}", _network(w, event)
    if refused is not None:
        return w.pages.refused(request, "event.html", context, refused, csrf_scope=path, network=network)
    return w.pages.page(request, "event.html", context, csrf_scope=path, network=network)


def _read_public(values: dict[str, object]) -> tuple[str, str, str]:
    """The address, name and answer of the public form, or ``FormRefused`` by field."""
    problems: dict[str, str] = {}
    name = str(values["name"])
    email = ""
    raw = str(values["email"])
    if not raw or len(raw) > 254:
        problems["email"] = "Please give your email address."
    else:
        try:
            email = mailable(raw)
        except InvalidInput:
            problems["email"] = "This does not look like an email address we can write to."
    if not name:
        problems["name"] = "Please give your name, so the organisers know who is coming."
    elif (why := signup_name_problem(name)) is not None:
        problems["name"] = why
    answer = str(values["answer"])
    if answer not in events.ANSWERS:
        problems["answer"] = "Please choose whether you are coming."
    if problems:
        raise FormRefused(problems, values=values)
    return email, name, answer


async def event_answer(request: Request) -> Response:
    """POST the public form: mail a confirmation link (nothing counts until it is followed)."""
    w = web(request)
    event = await _public_event(w, _uid(request))
    network = _network(w, event)
    wait = await w.hit(w.limits.network, client_network(request))
    if wait is not None:
        return w.pages.message(
            request,
            "Too many answers",
            "There have been too many answers from your connection. Please try again later.",
            status=429,
            headers={"Retry-After": str(int(wait) + 1)},
            network=network,
        )
    form = await read_form(request)
    values: dict[str, object] = {
        "name": text(form, "name", 200).strip(),
        "email": text(form, "email", 400).strip(),
        "answer": text(form, "answer", 10),
        "newsletter": text(form, "newsletter", 10) == "yes",
    }
    if not w.csrf.check(request, form, f"/events/{event.uid}"):
        return w.pages.form_expired(request, what="sent")
    try:
        email, name, answer = _read_public(values)
    except FormRefused as refused:
        return _public(w, request, event, values=values, refused=refused)
    signup = bool(values["newsletter"])
    if text(form, HONEYPOT, 1000):
        return _check_inbox(w, request, event, signup)  # a bot: the usual answer, and no mail
    if await w.hit(w.limits.mailbox, hashed_key("mailbox", mailbox_key(email))) is not None:
        return _check_inbox(w, request, event, signup)  # enough mail to that mailbox for now
    now = w.clock()
    try:
        asked = await w.write(lambda s: events.request_answer(s, event.uid, email, name, answer, now))
    except events.EventClosed:
        return _public(w, request, event)
    code = ANSWER_CODES[answer] + _SERIAL * asked.serial
    token = tokens.sign("rsvp-confirm", asked.rsvp_id, keys=w.keys, campaign=code, now=now)
    message = system_mail(
        w.pages,
        w.settings,
        "event_confirm.txt",
        to=email,
        network=network,
        title=event.title,
        when=events.when_words(event, w.settings.zone),
        coming=answer == "yes",
        confirm_url=f"{w.settings.base_url.rstrip('/')}/events/{event.uid}/confirm/{token}",
        days=CONFIRM_DAYS,
    )
    try:
        await w.send_mail(message)
    except MailerError:
        return w.pages.message(
            request,
            "Please try again later",
            "We could not send the confirmation email just now. Please try again in a few minutes.",
            status=503,
            headers={"Retry-After": "300"},
            network=network,
        )
    return _check_inbox(w, request, event, signup)


def _check_inbox(w: Web, request: Request, event: events.EventInfo, signup: bool) -> Response:
    context = {**_event_context(w, event), "signup": signup}
    return w.pages.page(request, "event_check_inbox.html", context, network=_network(w, event))


def _confirmation(w: Web, token: str) -> tuple[tokens.TokenData, str, int]:
    """What a confirmation link says: the answer's row (``member_id``), the answer, the link's number."""
    data = in_range(
        tokens.verify(token, "rsvp-confirm", keys=w.keys, max_age=timedelta(days=CONFIRM_DAYS), now=w.clock())
    )
    code = data.campaign or 0
    answer = _CODE_ANSWERS.get(code % _SERIAL)
    if answer is None:
        raise tokens.InvalidToken("an RSVP confirmation without an answer")
    return data, answer, code // _SERIAL


async def confirm_page(request: Request) -> Response:
    """GET: what will be recorded, and the button. Records nothing."""
    w = web(request)
    event = await _public_event(w, _uid(request))
    _data, answer, _serial = _confirmation(w, str(request.path_params["token"]))
    context = {**_event_context(w, event), "answer": answer, "action": request.url.path, "done": False}
    return w.pages.page(
        request, "event_confirm.html", context, csrf_scope=request.url.path, network=_network(w, event)
    )


async def confirm(request: Request) -> Response:
    """POST (with CSRF): confirm the answer; a link used already changes nothing."""
    w = web(request)
    event = await _public_event(w, _uid(request))
    data, answer, serial = _confirmation(w, str(request.path_params["token"]))
    form = await read_form(request)
    if not w.csrf.check(request, form, request.url.path):
        return w.pages.form_expired(request)
    now = w.clock()

    def work(session: Session) -> events.Answered:
        found = events.confirm_answer(session, data.member_id, answer, serial, now)
        if found.event.uid != event.uid:
            raise events.StaleConfirmation("a confirmation for another event")
        return found

    network = _network(w, event)
    try:
        done = await w.write(work)
    except (events.StaleConfirmation, events.EventClosed):
        return w.pages.message(
            request,
            "This link was used already",
            "This confirmation link has been used, or a later answer replaced it, so it changed "
            "nothing. To change your answer, answer again on the event's page.",
            status=409,
            link=(f"/events/{event.uid}", "The event's page"),
            network=network,
        )
    context = {**_event_context(w, done.event), "answer": done.answer, "done": True}
    return w.pages.page(request, "event_confirm.html", context, network=network)


routes = [
    Route("/rsvp/{uid}/", no_token, methods=["GET", "POST"]),
    Route("/rsvp/{uid}/{token}", rsvp_page, methods=["GET"]),
    Route("/rsvp/{uid}/{token}", rsvp, methods=["POST"]),
    Route("/events/{uid}", event_page, methods=["GET"]),
    Route("/events/{uid}", event_answer, methods=["POST"]),
    Route("/events/{uid}/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/events/{uid}/confirm/{token}", confirm, methods=["POST"]),
]
