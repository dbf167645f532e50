"""Contributions on the desk: a local group's forms, and the network's inbox.

For a contributor (and an editor or admin) of a network:

- ``GET /desk/networks/{name}/contribute``: send an event or an item; their contributions so far;
- ``GET|POST /desk/networks/{name}/contribute/event`` and ``…/item``: the forms, checked
  server-side (``contribution_forms.check_event``, ``check_item``), each error shown at its field; a
  contributor chooses among their own region and those below it.

For an editor or admin of the network (``review``):

- ``GET /desk/networks/{name}/inbox``: the contributions, with kind, local group, date and status;
- ``GET /desk/networks/{name}/inbox/{id}``: one, with forms to edit it, accept it into one of the
  network's issues not sent yet (as a calendar entry, a new item, or under an item), or decline it;
- ``POST …/inbox/{id}/edit``, ``…/accept``, ``…/decline`` (CSRF): those actions, each in the audit
  log. Declining mails the note to the contributor, from the network.

Anyone else gets 403 (a contributor of Canterbury, Central England's inbox); a contribution of
another network, 404.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.archive import STARTED
from mailer.audience.networks import Network, campaign_network, networks_of
from mailer.desk import contribution_forms as forms
from mailer.desk import inbox, notifications, people, wording
from mailer.desk import issues as desk_issues
from mailer.errors import MailerError
from mailer.issue import Newsletter, campaign_slugs, load_campaign
from mailer.web.context import Web, web
from mailer.web.desk.common import (
    Answered,
    Signed,
    desk_form,
    desk_page,
    forbidden,
    log,
    message,
    network_slugs,
    not_found,
    page,
    redirect,
    send_notices,
)
from mailer.web.forms import text, texts

KIND_WORDS = {"event": "Event", "item": "News item"}
STATUS_WORDS = {"new": "New", "accepted": "Accepted", "declined": "Declined"}
NOTICES = {
    "sent": "Thank you: it is in the editor's inbox. You will hear by email when it is accepted or declined.",
    "saved": "Your changes are saved.",
    "accepted": "It is accepted into the issue.",
    "declined": "It is declined, and your note is on its way to the contributor.",
}


def _today(w: Web) -> date:
    return w.clock().astimezone(w.settings.zone).date()


def _network(w: Web, slug: str) -> tuple[str, Network] | None:
    key = network_slugs(w).get(slug)
    if key is None:
        return None
    return key, next(n for n in networks_of(w.shape, w.settings) if n.slug == slug)


def _region_choices(w: Web, regions: list[str]) -> list[tuple[str, str]]:
    return [(r, w.shape.label(r) if r else "The whole network") for r in regions]


def _raw(form: FormData) -> dict[str, Any]:
    """The posted fields, each cut to a bound (``inbox`` checks the real limits)."""
    raw: dict[str, Any] = {
        name: text(form, name, forms.LIMITS[name] + 1) for name in (*forms.EVENT_FIELDS, *forms.ITEM_FIELDS)
    }
    for n in range(1, forms.LINK_ROWS + 1):
        raw[f"link_text_{n}"] = text(form, f"link_text_{n}", forms.LIMITS["link_text"] + 1)
        raw[f"link_url_{n}"] = text(form, f"link_url_{n}", forms.LIMITS["link_url"] + 1)
    for n in range(1, forms.EVENT_ROWS + 1):
        for name in forms.ITEM_EVENT_FIELDS:
            raw[f"{name}_{n}"] = text(form, f"{name}_{n}", forms.LIMITS[name] + 1)
    raw["all_day"] = text(form, "all_day", 10) != ""
    raw["interests"] = texts(form, "interests", 64)[:50]
    return raw


def _blank(kind: str, region: str) -> dict[str, Any]:
    names = forms.EVENT_FIELDS if kind == "event" else forms.ITEM_FIELDS
    values: dict[str, Any] = dict.fromkeys(names, "")
    values.update(region=region, all_day=False, interests=[])
    for n in range(1, forms.LINK_ROWS + 1):
        values[f"link_text_{n}"] = values[f"link_url_{n}"] = ""
    for n in range(1, forms.EVENT_ROWS + 1):
        values.update({f"{name}_{n}": "" for name in forms.ITEM_EVENT_FIELDS})
    return values


def _filled(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """A stored row's values over a blank form (so every field the template names is there)."""
    return {**_blank(kind, ""), **values}


def _form_context(w: Web, kind: str, regions: list[str]) -> dict[str, Any]:
    return {
        "kind": kind,
        "regions": _region_choices(w, regions),
        "interests": [(slug, i.name) for slug, i in w.shape.interests.items()],
        "link_rows": list(range(1, forms.LINK_ROWS + 1)),
        "event_rows": list(range(1, forms.EVENT_ROWS + 1)),
        "today": _today(w).isoformat(),
    }


# ---------------------------------------------------------------------------------------------
# A local group's forms


async def _contributor(request: Request, signed: Signed) -> tuple[str, Network, list[str]]:
    """The network of the URL (404 if none) and the regions ``signed`` may contribute for there
    (403 if none)."""
    w = web(request)
    found = _network(w, request.path_params["name"])
    if found is None:
        raise Answered(not_found(request, signed))
    key, network = found
    regions = forms.regions_for(signed.person, w.shape, w.settings, key)
    if not regions:
        raise Answered(forbidden(request, signed))
    return key, network, regions


@desk_page
async def contribute_page(request: Request, signed: Signed) -> Response:
    got = await _contributor(request, signed)
    key, network, _regions = got
    w = web(request)
    mine = await w.read(lambda s: inbox.listed(s, key, submitted_by=signed.person.id))
    context = {
        "title": network.name,
        "slug": network.slug,
        "mine": [_row(w, e) for e in mine],
        "notice": NOTICES.get(request.query_params.get("done", ""), ""),
        "reviews": people.can(signed.person, "review", key),
    }
    return page(request, "contribute.html", context, signed=signed, network=network)


async def _contributor_form(request: Request, signed: Signed) -> tuple[str, str, Network, list[str]]:
    """The form's kind of the URL (404 for another), then as ``_contributor``: the kind, the
    network's key, the network and the regions ``signed`` may contribute for."""
    kind = request.path_params["kind"]
    if kind not in forms.KINDS:
        raise Answered(not_found(request, signed, "form"))
    got = await _contributor(request, signed)
    return (kind, *got)


@desk_page
async def contribute_form(request: Request, signed: Signed) -> Response:
    got = await _contributor_form(request, signed)
    kind, _key, network, regions = got
    w = web(request)
    first = next((r for r in regions if r), "")
    context = _form_context(w, kind, regions) | {
        "network_slug": network.slug,
        "values": _blank(kind, first if len([r for r in regions if r]) == 1 else ""),
        "errors": {},
    }
    return page(request, "contribute_form.html", context, signed=signed, network=network)


@desk_form
async def contribute(request: Request, form: FormData, signed: Signed) -> Response:
    got = await _contributor_form(request, signed)
    kind, key, network, regions = got
    w = web(request)
    if not people.can(signed.person, "review", key):
        regions = [r for r in regions if r]
    checked = forms.check(kind, _raw(form), w.shape, regions, _today(w))
    if not checked.ok:
        context = _form_context(w, kind, regions) | {
            "network_slug": network.slug,
            "values": _filled(kind, checked.values),
            "errors": checked.errors,
        }
        return page(request, "contribute_form.html", context, signed=signed, network=network, status=400)
    now = w.clock()

    def submit(session: Any) -> list[notifications.Notice]:
        entry_id = inbox.submit(session, key, checked, by=signed.person.id, now=now)
        entry = inbox.one(session, key, entry_id)
        return (
            []
            if entry is None
            else notifications.contribution_received(session, w.settings, network, key, entry)
        )

    notices = await w.write(submit)
    return send_notices(request, redirect(f"/desk/networks/{network.slug}/contribute?done=sent"), notices)


# ---------------------------------------------------------------------------------------------
# The inbox


def _row(w: Web, e: inbox.Entry) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": KIND_WORDS.get(e.kind, e.kind),
        "title": e.title,
        "group": w.shape.label(e.region) if e.region in w.shape.regions else "The whole network",
        "day": e.day,
        "sent": e.created_at.astimezone(w.settings.zone).strftime("%d %b %Y"),
        "status": e.status,
        "status_words": STATUS_WORDS.get(e.status, e.status),
        "issue": str(e.accepted.get("issue_title") or e.issue_slug),  # its title; the folder for old rows
        "note": e.note,
        "submitter": e.submitter,
    }


async def _editor(request: Request, signed: Signed) -> tuple[str, Network]:
    """The network of the URL (404 if none) and its key, if ``signed`` may review its inbox
    (403 otherwise)."""
    w = web(request)
    found = _network(w, request.path_params["name"])
    if found is None:
        raise Answered(not_found(request, signed))
    if not people.can(signed.person, "review", found[0]):
        raise Answered(forbidden(request, signed))
    return found


@desk_page
async def inbox_page(request: Request, signed: Signed) -> Response:
    got = await _editor(request, signed)
    key, network = got
    w = web(request)
    wanted = request.query_params.get("status", "new")
    status = wanted if wanted in inbox.STATUSES else None
    entries = await w.read(lambda s: inbox.listed(s, key, status=status))
    filters = [(s, STATUS_WORDS[s]) for s in inbox.STATUSES] + [("all", "All")]
    context = {
        "title": network.name,
        "slug": network.slug,
        "entries": [_row(w, e) for e in entries],
        "status": status or "all",
        "filters": filters,
    }
    return page(request, "inbox.html", context, signed=signed, network=network)


def _contribution_id(request: Request) -> int | None:
    value = request.path_params["id"]
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


def _open_issues(w: Web, key: str) -> list[dict[str, Any]]:
    """The network's newsletters in ``campaigns/`` not sent yet, each with its items: where a
    contribution may go. An issue that does not load is left out (fix it first)."""
    out = []
    for slug in campaign_slugs(w.settings.workspace):
        try:
            loaded = load_campaign(w.settings.workspace, slug, w.shape)
            issue = loaded.issue
            if not isinstance(issue, Newsletter):
                continue
            owner = campaign_network(w.shape, w.settings, issue.network, audience=issue.audience)
        except MailerError:
            continue
        if w.shape.networks and owner.slug != key:
            continue
        out.append({"slug": slug, "title": issue.title, "items": [(i.id, i.title) for i in issue.items]})
    return out


def _targets(kind: str, issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The places the accept form offers, by issue: ``slug/calendar``, ``slug/item``,
    ``slug/under/<item id>``."""
    out = []
    for issue in issues:
        options = [
            (f"{issue['slug']}/item", "As a new item" + (" with this event" if kind == "event" else ""))
        ]
        if kind == "event":
            options.insert(0, (f"{issue['slug']}/calendar", "As a calendar entry"))
            options += [(f"{issue['slug']}/under/{i}", f"Under the item “{t}”") for i, t in issue["items"]]
        out.append({"title": issue["title"], "slug": issue["slug"], "options": options})
    return out


async def _not_sent(w: Web, issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    slugs = [i["slug"] for i in issues]
    found = await w.read(lambda s: desk_issues.campaign_statuses(s, slugs))
    started = {slug for slug, state in found.items() if state in STARTED}
    return [i for i in issues if i["slug"] not in started]


async def _one_page(
    request: Request,
    signed: Signed,
    key: str,
    network: Network,
    entry: inbox.Entry,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    w = web(request)
    regions = forms.regions_for(signed.person, w.shape, w.settings, key)
    issues = await _not_sent(w, _open_issues(w, key)) if entry.status == "new" else []
    context = _form_context(w, entry.kind, regions) | {
        "network_slug": network.slug,
        "title": entry.title,
        "entry": _row(w, entry),
        "values": values or _filled(entry.kind, entry.values),
        "errors": errors or {},
        "targets": _targets(entry.kind, issues),
        "notice": NOTICES.get(request.query_params.get("done", ""), ""),
        "note_limit": inbox.NOTE_LIMIT,
        "accepted_as": entry.accepted.get("as", ""),
    }
    return page(request, "inbox_one.html", context, signed=signed, network=network, status=status)


async def _contribution(request: Request, signed: Signed) -> tuple[str, Network, inbox.Entry]:
    """As ``_editor``, then the contribution of the URL in that network (404 if none)."""
    got = await _editor(request, signed)
    key, network = got
    cid = _contribution_id(request)
    entry = None if cid is None else await web(request).read(lambda s: inbox.one(s, key, cid))
    if entry is None:
        raise Answered(not_found(request, signed, "contribution"))
    return key, network, entry


@desk_page
async def one_page(request: Request, signed: Signed) -> Response:
    got = await _contribution(request, signed)
    key, network, entry = got
    return await _one_page(request, signed, key, network, entry)


def _decided(request: Request, signed: Signed, network: Network, entry: inbox.Entry) -> Response:
    return message(
        request,
        "Already decided",
        "Someone has accepted or declined this contribution already, so nothing was changed.",
        signed=signed,
        status=409,
        link=(f"/desk/networks/{network.slug}/inbox/{entry.id}", "See it"),
    )


@desk_form
async def edit_one(request: Request, form: FormData, signed: Signed) -> Response:
    got = await _contribution(request, signed)
    key, network, entry = got
    w = web(request)
    if entry.status != "new":
        return _decided(request, signed, network, entry)
    regions = forms.regions_for(signed.person, w.shape, w.settings, key)
    checked = forms.check(entry.kind, _raw(form), w.shape, regions, _today(w))
    if not checked.ok:
        values = _filled(entry.kind, checked.values)
        return await _one_page(
            request, signed, key, network, entry, values=values, errors=checked.errors, status=400
        )
    now = w.clock()
    outcome = await w.write(lambda s: inbox.edit(s, key, entry.id, checked, by=signed.person.id, now=now))
    if outcome == "decided":
        return _decided(request, signed, network, entry)
    return redirect(f"/desk/networks/{network.slug}/inbox/{entry.id}?done=saved")


@desk_form
async def accept(request: Request, form: FormData, signed: Signed) -> Response:
    got = await _contribution(request, signed)
    key, network, entry = got
    w = web(request)
    if entry.status != "new":
        return _decided(request, signed, network, entry)
    issues = await _not_sent(w, _open_issues(w, key))
    offered = {
        value: (t["slug"], t["title"]) for t in _targets(entry.kind, issues) for value, _ in t["options"]
    }
    target = text(form, "target", 300)
    highlight = forms.clean(text(form, "highlight", forms.LIMITS["highlight"] + 1))
    if target not in offered:
        errors = {"target": "Choose an issue of this network from the list."}
        return await _one_page(request, signed, key, network, entry, errors=errors, status=400)
    if len(highlight) > forms.LIMITS["highlight"] or (highlight and forms.text_problem(highlight)):
        errors = {"accept_highlight": "Keep the highlight to one plain line of at most 300 characters."}
        return await _one_page(request, signed, key, network, entry, errors=errors, status=400)
    regions = ["", *forms.network_regions(w.shape, w.settings, key)]
    checked = forms.check(entry.kind, _filled(entry.kind, entry.values), w.shape, regions, _today(w))
    if not checked.ok:
        errors = {"target": "Fix the fields marked below first, then accept it.", **checked.errors}
        return await _one_page(request, signed, key, network, entry, errors=errors, status=400)
    slug, issue_title = offered[target]
    placed = target.removeprefix(slug + "/")
    now = w.clock()
    by = signed.person.id
    claimed = await w.write(lambda s: inbox.claim(s, key, entry.id, by=by, now=now, status="accepted"))
    if claimed != "done":
        return _decided(request, signed, network, entry)
    try:
        version, event = inbox.write_into_issue(
            w.settings.workspace,
            w.shape,
            slug,
            entry.kind,
            placed,
            checked.entry,
            highlight=highlight,
            description=str(checked.values.get("description", "")),
        )
    except MailerError as exc:
        await w.write(lambda s: inbox.release(s, entry.id))
        log.warning("a contribution was not accepted into %s: %s", slug, exc.message)
        said = wording.words(exc)
        why = said[:1].upper() + said[1:] + "."
        fresh = await w.read(lambda s: inbox.one(s, key, entry.id))
        errors = {"target": f"It could not go into that issue. {why}"}
        return await _one_page(request, signed, key, network, fresh or entry, errors=errors, status=409)

    await w.write(
        lambda s: inbox.accepted(
            s,
            entry.id,
            slug=slug,
            issue_title=issue_title,
            placed=placed,
            event=event,
            by=by,
            now=now,
            version=version,
        )
    )
    accepted = await w.read(
        lambda s: notifications.contribution_accepted(s, w.settings, network, entry, issue_title)
    )
    return send_notices(
        request, redirect(f"/desk/networks/{network.slug}/inbox/{entry.id}?done=accepted"), [accepted]
    )


@desk_form
async def decline(request: Request, form: FormData, signed: Signed) -> Response:
    got = await _contribution(request, signed)
    key, network, entry = got
    w = web(request)
    if entry.status != "new":
        return _decided(request, signed, network, entry)
    note = forms.clean(text(form, "note", inbox.NOTE_LIMIT + 1), multiline=True)
    problem = ""
    if not note:
        problem = "Write a note for the contributor: why it was declined, or what to change."
    elif len(note) > inbox.NOTE_LIMIT:
        problem = f"Keep the note to {inbox.NOTE_LIMIT} characters or fewer."
    if problem:
        return await _one_page(request, signed, key, network, entry, errors={"note": problem}, status=400)
    now = w.clock()
    by = signed.person.id

    if await w.write(lambda s: inbox.decline(s, key, entry.id, note, by=by, now=now)) != "done":
        return _decided(request, signed, network, entry)
    response = redirect(f"/desk/networks/{network.slug}/inbox/{entry.id}?done=declined")
    notice = await w.read(lambda s: notifications.contribution_declined(s, w.settings, network, entry, note))
    return send_notices(request, response, [notice])


routes = [
    Route("/desk/networks/{name}/contribute", contribute_page, methods=["GET"]),
    Route("/desk/networks/{name}/contribute/{kind}", contribute_form, methods=["GET"]),
    Route("/desk/networks/{name}/contribute/{kind}", contribute, methods=["POST"]),
    Route("/desk/networks/{name}/inbox", inbox_page, methods=["GET"]),
    Route("/desk/networks/{name}/inbox/{id}", one_page, methods=["GET"]),
    Route("/desk/networks/{name}/inbox/{id}/edit", edit_one, methods=["POST"]),
    Route("/desk/networks/{name}/inbox/{id}/accept", accept, methods=["POST"]),
    Route("/desk/networks/{name}/inbox/{id}/decline", decline, methods=["POST"]),
]
