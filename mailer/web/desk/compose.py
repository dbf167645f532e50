"""Composing on the desk: a network's issues, a new issue, and the issue's form.

- ``GET /desk/networks/{name}/issues``: the network's issues (``campaigns/*/issue.yaml`` that speak
  as it) with their status (draft, approved, scheduled, sent, …), and a form to start a new one
  from the network's skeleton (``issuefile.new_issue``).
- ``GET /desk/issues/{slug}``: the issue as a form (intro, items with their events, calendar
  entries, sign-off), with what ``mailer campaigns check`` says shown at the field it concerns.
- ``POST /desk/issues/{slug}``: save (and, by the button pressed, add, remove or move an item, an
  event or a calendar entry). The form carries the file's version as it was opened: a save over a
  file changed since is refused and nothing is written (``issuefile.StaleIssue``). A field left as
  it was is not rewritten, so its comments and quoting stay; each save records the editor
  (``IssueEdit``) and a line in the audit log. Text too long for its field, or an item's link or
  image the issue schema refuses, refuses the whole save: the form comes back as posted, each
  problem at its field.

Editors and admins of the issue's network compose; its approvers may read the list. Everyone else
gets 403. The pages want someone signed in and the posts a CSRF value of their session
(``common.desk_page`` and ``common.desk_form``, which reads an issue's larger form by
``read_issue_form``). The fields and their names in the form are in ``mailer.desk.issueform``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import events
from mailer.audience.networks import Network, campaign_network, networks_of
from mailer.desk import forms as desk_forms
from mailer.desk import issuefile, issueform, people, pickers, wording
from mailer.desk import issues as issues_
from mailer.desk.issuefile import IssueFile, StaleIssue
from mailer.errors import ContentError, MailerError, Problem
from mailer.forms import FormRefused, read
from mailer.issue.check import check_campaign
from mailer.issue.load import campaign_slugs
from mailer.web import assets
from mailer.web.context import Web, web
from mailer.web.desk.common import (
    Answered,
    Signed,
    desk_form,
    desk_page,
    forbidden,
    form_expired,
    message,
    network_slugs,
    not_found,
    page,
    redirect,
)
from mailer.web.pages import PAGE_HEADERS

MAX_POST = 4 * 1024 * 1024
"""The largest form post (an issue file is at most 2 MB; the form adds its field names)."""
MAX_FIELDS = 5000
EDIT_POLICY = PAGE_HEADERS["Content-Security-Policy"] + "; script-src 'self'; frame-src 'self'"
"""The issue form runs its own script (``static/desk/issue_edit.js``) and frames its live preview."""

STATUS_WORDS = {
    "draft": "Draft",
    "approved": "Approved",
    "edited": "Edited since approval: to be approved again",
    "scheduled": "Scheduled",
    "sending": "Sending",
    "paused": "Paused",
    "sent": "Sent",
    "cancelled": "Cancelled",
}


# ---------------------------------------------------------------------------------------------
# Whose issue it is


def network_of(w: Web, data: dict[str, Any]) -> Network | None:
    """The network an issue's fields say it speaks as (``networks.campaign_network``); None when
    that is unknown or ambiguous. Fields of the wrong type (a file being edited) count as absent."""
    declared = data.get("network")
    audience = data.get("audience")
    try:
        return campaign_network(
            w.shape,
            w.settings,
            declared if isinstance(declared, str) else None,
            audience=audience if isinstance(audience, str) else "all",
        )
    except MailerError:
        return None


def role_key(w: Web, network: Network | None) -> str | None:
    """The key of ``network`` in roles ("" for a workspace's only network)."""
    return None if network is None else network_slugs(w).get(network.slug)


def allowed(person: people.Person, w: Web, network: Network | None, *actions: str) -> bool:
    """Whether ``person`` may do one of ``actions`` for an issue of ``network``; an issue whose
    network cannot be told is for admins of every network only."""
    key = role_key(w, network)
    if key is None:
        return person.admin_of_all
    return any(people.can(person, a, key) for a in actions)


# ---------------------------------------------------------------------------------------------
# The list of a network's issues, and a new issue


def _issues_of(w: Web, network: Network) -> list[dict[str, Any]]:
    out = []
    for slug in campaign_slugs(w.settings.workspace):
        try:
            opened = IssueFile.open(w.settings.workspace, slug)
            data = opened.data()
        except MailerError:
            continue
        found = network_of(w, data)
        if found is None or found.slug != network.slug:
            continue
        title = data.get("title")
        out.append(
            {
                "slug": slug,
                "title": title if isinstance(title, str) else slug,
                "date": str(data.get("date") or ""),
                "version": opened.version,
                "kind": str(data.get("kind") or ""),
            }
        )
    return sorted(out, key=lambda i: (i["date"], i["slug"]), reverse=True)


def _network_from_path(request: Request) -> tuple[Network, str] | None:
    w = web(request)
    slug = request.path_params.get("name", "")
    key = network_slugs(w).get(slug)
    if key is None:
        return None
    return next(n for n in networks_of(w.shape, w.settings) if n.slug == slug), key


def _suggested_slug(network: Network, today: date) -> str:
    return f"{today:%Y-%m}-{network.slug}"


async def _render_list(
    request: Request,
    signed: Signed,
    network: Network,
    key: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    w = web(request)
    issues = await run_in_threadpool(_issues_of, w, network)

    slugs = [i["slug"] for i in issues]
    found = await w.read(lambda s: issues_.statuses(s, w.settings, w.shape, slugs))
    for i in issues:
        i["status"] = STATUS_WORDS.get(found[i["slug"]], found[i["slug"]])
    today = w.clock().date()
    context = {
        "title": f"Issues of the {network.name}",
        "issues": issues,
        "may_compose": people.can(signed.person, "compose", key),
        "values": values or {"title": "", "slug": _suggested_slug(network, today), "date": today.isoformat()},
        "errors": errors or {},
        "network_slug": network.slug,
    }
    return page(request, "issue_list.html", context, signed=signed, network=network, status=status)


@desk_page
async def issue_list(request: Request, signed: Signed) -> Response:
    found = _network_from_path(request)
    if found is None:
        return not_found(request, signed)
    network, key = found
    if not any(people.can(signed.person, a, key) for a in ("compose", "approve")):
        return forbidden(request, signed)
    return await _render_list(request, signed, network, key)


async def read_issue_form(request: Request) -> FormData | None:
    """An issue form's post (larger than other forms): urlencoded, up to ``MAX_POST`` bytes
    (None beyond) and ``MAX_FIELDS`` fields; no fields at all (so no CSRF value) when it is
    anything else or cannot be read."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_POST:
            return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: list[tuple[str, str | UploadFile]] = []
    try:
        if content_type in ("application/x-www-form-urlencoded", ""):
            pairs = parse_qsl(body.decode("utf-8"), max_num_fields=MAX_FIELDS, keep_blank_values=True)
            fields = [(k, v) for k, v in pairs]
    except (UnicodeDecodeError, ValueError):
        fields = []
    return FormData(fields)


async def _new_issue_refused(request: Request, signed: Signed, refusal: FormRefused) -> Response:
    found = _network_from_path(request)
    assert found is not None  # refused after the network was found
    values = {name: str(value) for name, value in refusal.values.items()}
    return await _render_list(request, signed, *found, values=values, errors=refusal.errors, status=400)


@desk_form(read=read_issue_form, refused=_new_issue_refused)
async def new_issue(request: Request, form: FormData, signed: Signed) -> Response:
    w = web(request)
    found = _network_from_path(request)
    if found is None:
        return not_found(request, signed)
    network, key = found
    if not people.can(signed.person, "compose", key):
        return forbidden(request, signed)
    values = {name: issueform.line(form, name, 300) for name in ("title", "slug", "date")}
    checked = read(desk_forms.NewIssueForm, values).checked()

    def start() -> str:
        path = issuefile.new_issue(
            w.settings.workspace,
            network,
            checked.slug,
            checked.title,
            checked.date,
            shape=w.shape,
            settings=w.settings,
        )
        return issuefile.version_of(path.read_bytes())

    try:
        version = await run_in_threadpool(start)
    except MailerError as exc:
        field = "slug" if exc.field in ("slug", "SLUG", None) else "title"
        problem = exc.problems[0] if isinstance(exc, ContentError) and exc.problems else exc.problem
        raise FormRefused({field: _words(problem)}, values=values) from None
    now = w.clock()

    await w.write(
        lambda s: issues_.record_started(
            s, values["slug"], version, by=signed.person.id, network=network.slug, now=now
        )
    )
    return redirect(f"/desk/issues/{values['slug']}?done=started")


def _words(problem: Problem) -> str:
    text = wording.sentence(problem)
    return text[:1].upper() + text[1:] + "."


# ---------------------------------------------------------------------------------------------
# The issue's form


NOTICES = {
    "started": "The issue is started. Write its intro and add its items, then save.",
    "saved": "Saved.",
}


async def _open(request: Request, signed: Signed) -> tuple[IssueFile, Network | None]:
    w = web(request)
    slug = request.path_params.get("slug", "")
    try:
        opened = await run_in_threadpool(IssueFile.open, w.settings.workspace, slug)
    except MailerError:
        raise Answered(
            message(request, "Page not found", "There is no issue of that name.", signed=signed, status=404)
        ) from None
    try:
        network = network_of(w, opened.data())
    except MailerError:
        network = None
    if not allowed(signed.person, w, network, "compose"):
        raise Answered(forbidden(request, signed))
    return opened, network


async def _render_issue(
    request: Request,
    signed: Signed,
    opened: IssueFile,
    network: Network | None,
    *,
    notice: str = "",
    refusal: str = "",
    unsaved: list[tuple[str, str]] | None = None,
    field_errors: dict[str, str] | None = None,
    posted: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    w = web(request)
    result = await run_in_threadpool(
        check_campaign, w.settings.workspace, opened.slug, w.shape, w.db, w.settings
    )
    problems = [*result.errors, *result.warnings]
    try:
        data: dict[str, Any] | None = opened.data()
    except ContentError:
        data = None
    form = issueform.Form.of(data) if data is not None else None
    if form is not None and posted:
        form.show(posted)
    placed = issueform.place(problems, form)
    label = {
        f.name: f"{g.heading.split(':')[0]}, {f.spec.label[:1].lower()}{f.spec.label[1:]}"
        if g.heading
        else f.spec.label
        for g in (form.groups() if form else [])
        for f in (*g.fields, *g.extra_fields())
    }
    for name, text in (field_errors or {}).items():
        placed.at.setdefault(name, []).insert(0, issueform.Shown(text, "error"))
    status_word = await w.read(lambda s: issues_.status(s, w.settings, w.shape, opened.slug))
    reach = await w.read(lambda s: pickers.choices(s, w.shape, network))
    context = {
        "title": str((data or {}).get("title") or opened.slug),
        "slug": opened.slug,
        "version": opened.version,
        "form": form,
        "placed": placed,
        "errors": result.errors,
        "warnings": result.warnings,
        "notes": result.notes,
        "notice": notice,
        "refusal": refusal,
        "unsaved": unsaved or [],
        "refused_at": [
            (name, f"{label.get(name, name)}: {text}") for name, text in (field_errors or {}).items()
        ],
        "status": STATUS_WORDS.get(status_word, status_word),
        "network_slug": network.slug if network else "",
        "regions": issueform.region_hint(w.shape, network),
        "interests": ", ".join(w.shape.interests),
        "script": assets.url("desk/issue_edit.js"),
        "reach": reach,
        "open_items": {  # the items folded open: those with a problem shown at one of their fields
            i.anchor
            for i in (form.items if form else [])
            if any(k == i.anchor or k.startswith(i.anchor + "-") for k in placed.at)
        },
    }
    headers = {"Content-Security-Policy": EDIT_POLICY}
    return page(
        request, "issue_edit.html", context, signed=signed, network=network, status=status, headers=headers
    )


@desk_page
async def issue_page(request: Request, signed: Signed) -> Response:
    got = await _open(request, signed)
    opened, network = got
    notice = NOTICES.get(request.query_params.get("done", ""), "")
    return await _render_issue(request, signed, opened, network, notice=notice)


STALE = (
    "Not saved: the issue was changed since you opened it (in its file, or by someone else on the desk). "
    "Nothing was overwritten. Below is the issue as it is now; your changes are listed so you can "
    "make them again."
)


@desk_form(read=read_issue_form)
async def save_issue(request: Request, form: FormData, signed: Signed) -> Response:
    opened_or = await _open(request, signed)
    opened, network = opened_or
    w = web(request)
    sent_version = issueform.line(form, "version", 64)
    if not re.fullmatch(r"[0-9a-f]{64}", sent_version):
        return form_expired(request, signed)
    if sent_version != opened.version:
        unsaved = issueform.unsaved(form, opened)
        return await _render_issue(
            request, signed, opened, network, refusal=STALE, unsaved=unsaved, status=409
        )
    try:
        submitted = issueform.Submitted.read(
            form, opened.data(), folder=opened.path.parent, known=pickers.table(w.shape)
        )
    except ContentError:
        return await _render_issue(
            request, signed, opened, network, refusal="Not saved: fix the file by hand first.", status=409
        )
    if submitted.too_long or submitted.invalid:
        return await _render_issue(
            request,
            signed,
            opened,
            network,
            refusal="Not saved: some text is longer than a field can hold (see below)."
            if submitted.too_long
            else "Not saved: a link or an image is not right (see below).",
            field_errors=submitted.too_long or submitted.invalid,
            posted=submitted.values,
            status=400,
        )
    action = issueform.line(form, "action", 40)
    ask = action.startswith("remove-item-") and issueform.line(form, "confirmed", 3) != "yes"

    def save() -> issuefile.Saved:
        return issuefile.edit(
            w.settings.workspace,
            opened.slug,
            submitted.change("save" if ask else action),
            expected_version=sent_version,
            shape=w.shape,
        )

    try:
        saved = await run_in_threadpool(save)
    except StaleIssue:
        fresh = await run_in_threadpool(IssueFile.open, w.settings.workspace, opened.slug)
        unsaved = issueform.unsaved(form, fresh)
        return await _render_issue(
            request, signed, fresh, network, refusal=STALE, unsaved=unsaved, status=409
        )
    except ContentError as exc:
        reason = _words(exc.problems[0]) if exc.problems else "The change could not be saved."
        return await _render_issue(
            request, signed, opened, network, refusal="Not saved. " + reason, status=400
        )
    now = w.clock()

    await w.write(
        lambda s: issues_.record_saved(
            s, opened.slug, saved.version, by=signed.person.id, action=action, now=now
        )
    )
    # An issue edited after its send: its events follow (time, place, title, cancelled), at once.
    await w.write(lambda s: events.sync_from_file(s, w.settings, w.shape, opened.slug, now))
    if ask:  # without JavaScript, removing an item is confirmed on a page of its own
        return redirect(f"/desk/issues/{opened.slug}/remove?item={action.rsplit('-', 1)[1]}")
    return redirect(f"/desk/issues/{opened.slug}?done=saved{issueform.anchor(action)}")


routes = [
    Route("/desk/networks/{name}/issues", issue_list, methods=["GET"]),
    Route("/desk/networks/{name}/issues/new", new_issue, methods=["POST"]),
    Route("/desk/issues/{slug}", issue_page, methods=["GET"]),
    Route("/desk/issues/{slug}", save_issue, methods=["POST"]),
]
