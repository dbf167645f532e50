"""The desk's pages to approve and send an issue, watch it go out, and read its report.

- ``GET /desk/issues/{slug}/approve``: who the issue reaches (per region and variant) and where
  it stands; an approver who did not edit it last approves it (``POST …/approve``, bound to the
  fingerprint they saw: ``approvals``) or withdraws an approval (``POST …/withdraw``).
- ``GET /desk/issues/{slug}/send``: a test to oneself (``POST …/test-send``, to the signed-in
  person's address, through ``sending.plan_send(tests=…)``); once approved, an editor sends now or
  at a time (``POST …/send``), sees the members per region and variant, and confirms
  (``POST …/send/confirm``). The web never sends itself: the campaign is queued for the workers
  (``plan_send(to_workers=True)``) or scheduled for them (``at=``).
- ``GET /desk/issues/{slug}/progress``: sent, deferred, failed… as the workers go, with pause,
  resume and cancel (``POST …/pause``, ``…/resume``, ``…/cancel``: ``mailer.sending.control``).
  While the campaign is queued, scheduled or being sent, a small script of ours
  (``/desk/progress.js``) fetches the figures (``…/progress.json``) every few seconds and updates
  them in place, with a button to stop (WCAG 2.2.2); without JavaScript the page's Refresh button
  loads it again. When no sending worker is alive the page says so, and what to do.
- ``GET /desk/issues/{slug}/report``: the campaign's report with its charts (``mailer.reports``,
  the admin report page's template).

Every page wants someone signed in and every POST a CSRF value of their session (403 without):
``common.desk_page`` and ``common.desk_form``. Every action is in the audit log, and each page is
for people with a role in the issue's network that lets them see it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mailer import reports, sending
from mailer.audience.networks import Network
from mailer.desk import approvals, audit, issuefile, notifications, people, sends, waiting
from mailer.desk import forms as desk_forms
from mailer.errors import MailerError, UnknownName
from mailer.forms import FormRefused, Read, read
from mailer.issue import SLUG
from mailer.sending import health as sending_health
from mailer.web.context import Web, web
from mailer.web.desk.common import (
    Answered,
    Signed,
    desk_form,
    desk_page,
    forbidden,
    message,
    page,
    redirect,
    send_notices,
)
from mailer.web.forms import text
from mailer.web.pages import PAGE_HEADERS

WATCH = ("compose", "approve", "send", "schedule", "test-send")
UPDATE_SECONDS = 5
LIVE = ("queued", "scheduled", "sending")
PROGRESS_SCRIPT = (Path(__file__).parent / "progress.js").read_bytes()
# The progress page runs our own script (and only ours), which fetches the figures from this site.
PROGRESS_HEADERS = {
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"]
    + "; script-src 'self'; connect-src 'self'"
}

NOTICES = {
    "approved": "The issue is approved. An editor can now send or schedule it.",
    "asked": "The approvers are asked by email; it waits for them on their desk.",
    "withdrawn": "The approval is withdrawn: the issue cannot be sent until it is approved again.",
    "test-sent": "A test copy is on its way to you.",
    "paused": "Sending is paused. Resume it to go on where it stopped.",
    "resumed": "Sending goes on where it stopped.",
    "cancelled": "Sending is cancelled: nobody else will get this issue.",
    "queued": "The issue is being sent.",
    "scheduled": "The issue is scheduled.",
}

# The states of deliveries shown besides sent, deferred, failed and those still to send.
STATE_WORDS = {
    "unknown": "outcome unknown",
    "suppressed": "unsubscribed meanwhile",
    "skipped": "skipped",
    "cancelled": "cancelled",
}


def _may_watch(person: people.Person, key: str) -> bool:
    return any(people.can(person, action, key) for action in WATCH)


def _not_found(
    request: Request, signed: Signed | None, what: str = "There is no issue of that name."
) -> Response:
    return message(
        request, "Page not found", what, signed=signed, status=404, link=("/desk/", "Back to your desk")
    )


async def _issue(request: Request, signed: Signed) -> approvals.IssueNow:
    """The issue of the URL as it is now, for someone who may see it (else the refusal)."""
    w = web(request)
    slug = request.path_params["slug"]
    if not SLUG.match(slug):
        raise Answered(_not_found(request, signed))
    try:
        issue = await w.read(lambda s: approvals.resolve(s, w.settings, w.shape, slug))
    except UnknownName:
        raise Answered(_not_found(request, signed)) from None
    except MailerError as exc:
        raise Answered(
            message(
                request,
                "This issue has problems",
                "It cannot be approved or sent until they are fixed: " + approvals.words(exc),
                signed=signed,
                status=409,
                link=("/desk/", "Back to your desk"),
            )
        ) from None
    if not _may_watch(signed.person, issue.key):
        raise Answered(forbidden(request, signed))
    return issue


def _issue_context(issue: approvals.IssueNow, standing: approvals.Standing) -> dict[str, Any]:
    return {
        "slug": issue.slug,
        "title": issue.title,
        "network_name": issue.network.name,
        "counts": issue.audience,
        "standing": standing,
        "fingerprint": issue.fingerprint,
    }


# ---------------------------------------------------------------------------------------------
# Approve


@desk_page
async def approve_page(request: Request, signed: Signed) -> Response:
    issue = await _issue(request, signed)
    w = web(request)

    standing, may = await w.read(lambda s: approvals.looked_at(s, signed.person, issue))
    context = _issue_context(issue, standing)
    context.update(
        may_approve=may and not standing.approved,
        own_edit=people.can(signed.person, "approve", issue.key)
        and standing.last_editor_id == signed.person.id,
        may_withdraw=standing.approval is not None and approvals.may_withdraw(signed.person, issue),
        may_ask=not standing.approved and people.can(signed.person, "compose", issue.key),
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
        error="",
    )
    return page(request, "approve.html", context, signed=signed, network=issue.network)


@desk_form
async def approve(request: Request, form: FormData, signed: Signed) -> Response:
    issue = await _issue(request, signed)
    w = web(request)
    seen = text(form, "fingerprint", 64)
    now = w.clock()
    ref = notifications.IssueRef(issue.slug, issue.title, issue.network, issue.key)

    def approve_and_tell(session: Any) -> list[notifications.Notice]:
        approvals.approve(session, issue, signed.person, seen=seen, now=now)
        return notifications.approved(session, w.settings, ref, by=signed.person)

    try:
        notices = await w.write(approve_and_tell)
    except approvals.ApprovalRefused as exc:
        if exc.field == "approver":
            return forbidden(request, signed)
        return message(
            request,
            "Not approved",
            approvals.words(exc) + ".",
            signed=signed,
            status=409,
            link=(f"/desk/issues/{issue.slug}/approve", "Look at the issue again"),
        )
    return send_notices(request, redirect(f"/desk/issues/{issue.slug}/approve?done=approved"), notices)


@desk_form
async def ask_approval(request: Request, form: FormData, signed: Signed) -> Response:
    """An editor asks the network's approvers to approve the issue: it waits on their desk, and
    each is mailed (unless they turned that off)."""
    issue = await _issue(request, signed)
    if not people.can(signed.person, "compose", issue.key):
        return forbidden(request, signed)
    w = web(request)
    now = w.clock()
    ref = notifications.IssueRef(issue.slug, issue.title, issue.network, issue.key)

    def ask(session: Any) -> list[notifications.Notice]:
        waiting.ask_approval(session, issue.slug, issue.key, by=signed.person.id, now=now)
        last = issuefile.last_editor(session, issue.slug)
        return notifications.approval_wanted(session, w.settings, ref, by=signed.person, last_editor=last)

    notices = await w.write(ask)
    return send_notices(request, redirect(f"/desk/issues/{issue.slug}/approve?done=asked"), notices)


@desk_form
async def withdraw(request: Request, form: FormData, signed: Signed) -> Response:
    issue = await _issue(request, signed)
    if not approvals.may_withdraw(signed.person, issue):
        return forbidden(request, signed)
    w = web(request)
    now = w.clock()
    await w.write(lambda s: approvals.withdraw(s, issue, signed.person, now=now))
    return redirect(f"/desk/issues/{issue.slug}/approve?done=withdrawn")


# ---------------------------------------------------------------------------------------------
# Send: a test to oneself; send now or schedule, confirmed


async def _send_page(
    request: Request,
    signed: Signed,
    issue: approvals.IssueNow,
    *,
    values: dict[str, str] | None = None,
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> Response:
    w = web(request)
    standing = await w.read(lambda s: approvals.standing(s, issue.slug, issue.fingerprint))
    campaign_status = await run_in_threadpool(sends.campaign_status, w.db, issue.slug)
    context = _issue_context(issue, standing)
    context.update(
        may_test=people.can(signed.person, "test-send", issue.key),
        may_send=people.may_send(signed.person, issue.key, approved=standing.approved),
        may_schedule=standing.approved and people.can(signed.person, "schedule", issue.key),
        may_approve_here=people.can(signed.person, "approve", issue.key),
        campaign_status=campaign_status,
        values=values or {"when": "now", "at": ""},
        error=error,
        notice=notice,
        timezone=w.settings.timezone,
        email=signed.person.email,
    )
    return page(request, "send.html", context, signed=signed, network=issue.network, status=status)


@desk_page
async def send_page(request: Request, signed: Signed) -> Response:
    issue = await _issue(request, signed)
    notice = NOTICES.get(request.query_params.get("done", ""), "")
    return await _send_page(request, signed, issue, notice=notice)


@desk_form
async def test_send(request: Request, form: FormData, signed: Signed) -> Response:
    issue = await _issue(request, signed)
    if not people.can(signed.person, "test-send", issue.key):
        return forbidden(request, signed)
    w = web(request)
    try:
        result = await run_in_threadpool(
            sends.test_send, w.db, w.writer, w.settings, w.shape, issue.slug, signed.person, now=w.clock()
        )
    except MailerError as exc:
        return await _send_page(
            request, signed, issue, error="The test was not sent: " + approvals.words(exc), status=409
        )
    if not result.ok:
        why = "; ".join(f"{r.code} {r.text}".strip() for r in result.results if not r.ok)
        return await _send_page(
            request, signed, issue, error=f"The relay refused the test: {why}", status=502
        )
    return redirect(f"/desk/issues/{issue.slug}/send?done=test-sent")


def _when(form: FormData) -> Read[desk_forms.SendForm]:
    return read(desk_forms.SendForm, {"when": text(form, "when", 10), "at": text(form, "at", 40)})


def _choice(when: Read[desk_forms.SendForm]) -> approvals.Choice:
    """What was asked, even when it is not complete (a later send with no time yet)."""
    return when.form.choice() if when.form is not None else approvals.Choice("later", "")


async def _send_refused(request: Request, signed: Signed, refusal: FormRefused) -> Response:
    issue = await _issue(request, signed)
    values = {"when": "later", "at": ""}
    error = next(iter(refusal.errors.values()))
    return await _send_page(request, signed, issue, values=values, error=error, status=400)


def _plan(w: Web, slug: str, choice: approvals.Choice) -> tuple[sending.SendPlan, str]:
    return approvals.plan_bound(w.db, w.settings, w.shape, slug, choice)


@desk_form(refused=_send_refused)
async def send(request: Request, form: FormData, signed: Signed) -> Response:
    """The send form: check what was asked, then show the counts and ask to confirm."""
    issue = await _issue(request, signed)
    w = web(request)
    when = _when(form)
    choice = _choice(when)
    standing = await w.read(lambda s: approvals.standing(s, issue.slug, issue.fingerprint))
    if not approvals.may_send_as(signed.person, issue.key, choice, approved=standing.approved):
        if standing.approved or not people.can(signed.person, "send", issue.key):
            return forbidden(request, signed)
        return await _send_page(
            request,
            signed,
            issue,
            error="It can be sent once an approver has approved it as it is now.",
            status=409,
        )
    when.checked()  # a later send with no time: shown again by _send_refused
    try:
        plan, fingerprint = await run_in_threadpool(_plan, w, issue.slug, choice)
    except MailerError as exc:
        values = {"when": choice.when, "at": choice.at}
        return await _send_page(request, signed, issue, values=values, error=approvals.words(exc), status=400)
    if fingerprint != issue.fingerprint:
        return await _send_page(
            request, signed, issue, error="The issue changed meanwhile: look again.", status=409
        )
    context = _issue_context(issue, standing)
    context.update(
        choice=choice,
        members=plan.members,
        plan_regions=plan.prepared.by_region(),
        plan_variants=[(label, n) for _k, label, n in plan.prepared.by_variant() if n],
        at_words=plan.when.astimezone(w.settings.zone).strftime("%A %-d %B %Y at %H:%M") if plan.when else "",
        timezone=w.settings.timezone,
        fingerprint=fingerprint,
    )
    return page(request, "send_confirm.html", context, signed=signed, network=issue.network)


@desk_form
async def confirm(request: Request, form: FormData, signed: Signed) -> Response:
    """The confirmed send: queued for the workers, or scheduled; then the progress page."""
    issue = await _issue(request, signed)
    w = web(request)
    choice = _choice(_when(form))
    seen = text(form, "fingerprint", 64)

    try:
        outcome = await run_in_threadpool(
            functools.partial(
                sends.confirm,
                w.db,
                w.writer,
                w.settings,
                w.shape,
                issue,
                signed.person,
                choice,
                seen=seen,
                clock=w.clock,
            )
        )
    except MailerError as exc:
        values = {"when": choice.when, "at": choice.at}
        return await _send_page(request, signed, issue, values=values, error=approvals.words(exc), status=409)
    if outcome == "forbidden":
        return forbidden(request, signed)
    if outcome in ("unapproved", "changed"):
        error = "Nothing was sent: the issue or its audience changed after you looked at it" + (
            ", and its approval no longer counts."
            if outcome == "unapproved"
            else ". Look at the counts again."
        )
        return await _send_page(request, signed, issue, error=error, status=409)
    follow = "live=1&" if outcome == "queued" else ""
    return redirect(f"/desk/issues/{issue.slug}/progress?{follow}done={outcome}")


# ---------------------------------------------------------------------------------------------
# Progress and control; the report


async def _sent_campaign(request: Request, signed: Signed) -> tuple[str, Network, str]:
    """(slug, network, its key) of the URL's campaign, sent or scheduled, for someone who may see it."""
    w = web(request)
    slug = request.path_params["slug"]
    if not SLUG.match(slug):
        raise Answered(_not_found(request, signed))
    campaign = await run_in_threadpool(sends.find_sent, w.db, w.settings, w.shape, slug)
    if campaign is None:
        raise Answered(_not_found(request, signed, "This issue has not been sent or scheduled."))
    network = campaign.network
    if network is None:
        raise Answered(_not_found(request, signed))
    key = approvals.network_key(w.shape, network)
    if not _may_watch(signed.person, key):
        raise Answered(forbidden(request, signed))
    return slug, network, key


async def _progress(w: Web, slug: str) -> dict[str, Any]:
    """The figures of the progress page (and of its JSON, which the page's script fetches)."""
    status = await run_in_threadpool(sending.campaign_status, w.db, w.shape, slug)
    no_worker = await run_in_threadpool(sending_health.waiting_for_worker, w.db, w.settings, status.status)
    counts = status.counts
    return {
        "status": status.status,
        "reason": status.reason,
        "total": status.total,
        "sent": counts.get("sent", 0),
        "deferred": counts.get("deferred", 0),
        "failed": counts.get("failed", 0),
        "waiting": counts.get("pending", 0) + counts.get("sending", 0),
        "live": status.status in LIVE,
        "no_worker": sending_health.NO_WORKER_PAGE if no_worker else "",
        "others": [
            (STATE_WORDS[s], counts[s])
            for s in ("unknown", "suppressed", "skipped", "cancelled")
            if counts.get(s)
        ],
        "by_region": [(label, c.get("sent", 0), sum(c.values())) for label, c in status.by_region],
        "next_steps": status.next_steps(w.settings.zone),
    }


@desk_page
async def progress_page(request: Request, signed: Signed) -> Response:
    found = await _sent_campaign(request, signed)
    slug, network, key = found
    w = web(request)
    figures = await _progress(w, slug)
    campaign = await run_in_threadpool(sends.find_sent, w.db, w.settings, w.shape, slug)
    assert campaign is not None
    context = {
        **figures,
        "slug": slug,
        "title": campaign.title,
        "network_name": network.name,
        "scheduled_for": campaign.scheduled_at.astimezone(w.settings.zone).strftime("%A %-d %B %Y at %H:%M")
        if campaign.scheduled_at and figures["status"] == "scheduled"
        else "",
        "timezone": w.settings.timezone,
        "update_every": UPDATE_SECONDS,
        "may_control": people.can(signed.person, "send", key),
        "notice": NOTICES.get(request.query_params.get("done", ""), ""),
    }
    return page(request, "progress.html", context, signed=signed, network=network, headers=PROGRESS_HEADERS)


@desk_page
async def progress_json(request: Request, signed: Signed) -> Response:
    """The progress page's figures as JSON, for its script (``progress.js``)."""
    slug, _network, _key = await _sent_campaign(request, signed)
    figures = await _progress(web(request), slug)
    figures["others"] = [{"words": words, "n": n} for words, n in figures["others"]]
    figures.pop("by_region")
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


@desk_page
async def progress_script(request: Request, signed: Signed) -> Response:
    """The progress page's script (for those signed in, like the page): fetches the figures
    every few seconds; the page works without it."""
    return Response(
        PROGRESS_SCRIPT,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


CONTROLS = {
    "pause": sending.pause_campaign,
    "resume": sending.resume_campaign,
    "cancel": sending.cancel_campaign,
}
DONE = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


async def _control(request: Request, form: FormData, signed: Signed, action: str) -> Response:
    found = await _sent_campaign(request, signed)
    slug, network, key = found
    if not people.can(signed.person, "send", key):
        return forbidden(request, signed)
    w = web(request)
    if action == "cancel" and text(form, "confirm", 10) != "yes":
        campaign = await run_in_threadpool(sends.find_sent, w.db, w.settings, w.shape, slug)
        title = campaign.title if campaign is not None else slug
        return page(
            request, "progress_cancel.html", {"slug": slug, "title": title}, signed=signed, network=network
        )
    try:
        await run_in_threadpool(CONTROLS[action], w.db, slug)
    except MailerError as exc:
        return message(
            request,
            "Nothing changed",
            approvals.words(exc) + ".",
            signed=signed,
            status=409,
            link=(f"/desk/issues/{slug}/progress", "Back to the progress"),
        )
    now = w.clock()
    await w.write(lambda s: audit.record(s, f"campaign.{action}", by=signed.person.id, object=slug, now=now))
    return redirect(f"/desk/issues/{slug}/progress?done={DONE[action]}")


@desk_form
async def pause(request: Request, form: FormData, signed: Signed) -> Response:
    return await _control(request, form, signed, "pause")


@desk_form
async def resume(request: Request, form: FormData, signed: Signed) -> Response:
    return await _control(request, form, signed, "resume")


@desk_form
async def cancel(request: Request, form: FormData, signed: Signed) -> Response:
    """Asks to confirm first (a page with a second button); cancels with ``confirm=yes``."""
    return await _control(request, form, signed, "cancel")


@desk_page
async def report_page(request: Request, signed: Signed) -> Response:
    found = await _sent_campaign(request, signed)
    slug, network, _key = found
    w = web(request)
    data = await w.read(lambda s: reports.page_data(s, w.shape, network.title, slug, now=w.clock()))
    nav = [("/desk/", "Your desk"), (f"/desk/issues/{slug}/progress", "Progress of this issue")]
    body = await run_in_threadpool(
        reports.render_page, w.settings, data, template="web/desk/report.html", nav=nav, network=network
    )
    return HTMLResponse(body, headers=dict(PAGE_HEADERS))


routes = [
    Route("/desk/issues/{slug}/approve", approve_page, methods=["GET"]),
    Route("/desk/issues/{slug}/approve", approve, methods=["POST"]),
    Route("/desk/issues/{slug}/withdraw", withdraw, methods=["POST"]),
    Route("/desk/issues/{slug}/ask-approval", ask_approval, methods=["POST"]),
    Route("/desk/issues/{slug}/send", send_page, methods=["GET"]),
    Route("/desk/issues/{slug}/send", send, methods=["POST"]),
    Route("/desk/issues/{slug}/send/confirm", confirm, methods=["POST"]),
    Route("/desk/issues/{slug}/test-send", test_send, methods=["POST"]),
    Route("/desk/issues/{slug}/progress", progress_page, methods=["GET"]),
    Route("/desk/issues/{slug}/progress.json", progress_json, methods=["GET"]),
    Route("/desk/progress.js", progress_script, methods=["GET"]),
    Route("/desk/issues/{slug}/pause", pause, methods=["POST"]),
    Route("/desk/issues/{slug}/resume", resume, methods=["POST"]),
    Route("/desk/issues/{slug}/cancel", cancel, methods=["POST"]),
    Route("/desk/issues/{slug}/report", report_page, methods=["GET"]),
]
