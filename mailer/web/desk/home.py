"""The desk's own pages: its home, a network's page, and the admins' people page.

- ``GET /desk/``: the person's networks and roles, with what each role lets them do.
- ``GET /desk/networks/{name}``: one network as the person may see it (403 without a role there).
- ``GET /desk/people``: for admins (of every network, or of one): the people of their networks and
  their roles, a form to add a person with a role, buttons to remove a role or to sign a person out
  everywhere, and the latest lines of the audit log.
- ``POST /desk/people/add``, ``/desk/people/remove-role``, ``/desk/people/revoke`` (CSRF): those
  actions, each written to the audit log. An admin of one network acts in that network only.
- The home shows an admin the replies asking to leave that wait for a person in their networks
  (``mailer.desk.replies``), each with "Unsubscribe them" and "Not a request":
  ``POST /desk/replies/unsubscribe`` and ``/desk/replies/dismiss`` (CSRF), recording who did it.

A page for someone not signed in sends them to ``/desk/sign-in``; a POST gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.audience.networks import Network, networks_of
from mailer.desk import forms as desk_forms
from mailer.desk import notifications, passwords, people, replies
from mailer.desk.people import Person, Role
from mailer.desk.waiting import waiting_for
from mailer.errors import MailerError
from mailer.forms import FormRefused
from mailer.inbound.requests import LeaveRequest
from mailer.web.context import Web, web
from mailer.web.desk.common import (
    Signed,
    admin_form,
    admin_page,
    desk_form,
    desk_page,
    forbidden,
    message,
    network_slugs,
    not_found,
    page,
    redirect,
    send_notices,
    slug_of,
)
from mailer.web.forms import text
from mailer.web.preferences import region_options

ACTION_WORDS = {
    "view": "see this network on the desk",
    "review": "read the inbox of contributions, and accept, edit or decline them",
    "compose": "write and edit issues",
    "test-send": "send a test of an issue to yourself",
    "schedule": "schedule an approved issue",
    "send": "send an approved issue",
    "approve": "approve an issue someone else edited last",
    "submit": "send events and news to the network's next issue",
    "manage-people": "add and remove people and their roles",
}

NOTICES = {
    "added": "The role is added.",
    "exists": "They have that role already.",
    "removed": "The role is removed.",
    "revoked": "They are signed out everywhere.",
    "password-set": "Your password is set: you can sign in with it, or with a link by email.",
    "password-removed": "Your password is removed: you sign in with a link by email.",
    "notifications": "Your choice of emails is saved.",
    "added-no-role": "The person is added, with no role yet: give them one below when you are ready.",
    "reply-unsubscribe": "They are unsubscribed, and it is recorded that you did it.",
    "reply-dismiss": "The reply is set aside as not a request to leave.",
}


def _role_rows(w: Web, person: Person) -> list[dict[str, str]]:
    rows = []
    for role in person.roles:
        region = w.shape.label(role.region) if role.region in w.shape.regions else role.region
        rows.append(
            {
                "role": people.ROLE_NAMES.get(role.role, role.role),
                "network": people.network_label(w.shape, w.settings, role.network),
                "region": region,
                "slug": slug_of(w, role.network) if role.network or not w.shape.networks else "",
            }
        )
    return rows


def _my_networks(w: Web, person: Person) -> list[dict[str, object]]:
    """The networks ``person`` may see, with their actions there."""
    out: list[dict[str, object]] = []
    for slug, key in network_slugs(w).items():
        actions = people.actions_of(person, key)
        if actions:
            name = people.network_label(w.shape, w.settings, key)
            out.append({"slug": slug, "name": name, "actions": [ACTION_WORDS[a] for a in actions]})
    return out


def _network_of_key(w: Web, key: str) -> Network:
    found = [n for n in networks_of(w.shape, w.settings) if n.slug == slug_of(w, key)] if key else []
    return found[0] if found else networks_of(w.shape, w.settings)[0]


def _leave_rows(w: Web, waiting: list[LeaveRequest]) -> list[dict[str, object]]:
    """The replies asking to leave, in words for the page."""
    rows: list[dict[str, object]] = []
    for r in waiting:
        rows.append(
            {
                "id": r.id,
                "who": r.member_name or r.address or "someone with no address",
                "address": r.address if r.member_name else "",
                "member": r.member_id is not None,
                "network": people.network_label(w.shape, w.settings, r.network) if w.shape.networks else "",
                "subject": r.subject,
                "asked": r.asked,
                "received": f"{r.received_at.astimezone(w.settings.zone):%-d %B %Y at %H:%M}",
            }
        )
    return rows


@desk_page
async def home(request: Request, signed: Signed) -> Response:
    w = web(request)
    slugs = {key: slug for slug, key in network_slugs(w).items()}
    person = signed.person
    waiting, off = await w.read(
        lambda s: (waiting_for(s, person, slugs), notifications.turned_off(s, person.id))
    )
    names = {key: people.network_label(w.shape, w.settings, key) for key in slugs}
    leaving: list[LeaveRequest] = []
    if person.is_admin:
        leaving = await w.read(lambda s: replies.waiting(s, person, w.shape))
    return page(
        request,
        "home.html",
        {
            "roles": _role_rows(w, person),
            "networks": _my_networks(w, person),
            "waiting": [{"what": x.what, "url": x.url, "network": names.get(x.network, "")} for x in waiting],
            "kinds": [(kind, words, kind not in off) for kind, words in notifications.KINDS.items()],
            "notice": NOTICES.get(request.query_params.get("done", ""), ""),
            "min_password": passwords.MIN_LENGTH,
            "leaving": _leave_rows(w, leaving),
        },
        signed=signed,
    )


@desk_form
async def choose_notifications(request: Request, form: FormData, signed: Signed) -> Response:
    """The kinds of notice ticked stay on; the others are turned off."""
    w = web(request)
    on = {value for value in form.getlist("on") if isinstance(value, str)}
    off = [kind for kind in notifications.KINDS if kind not in on]
    now = w.clock()
    await w.write(lambda s: notifications.choose(s, signed.person.id, off, now=now))
    return redirect("/desk/?done=notifications#notifications")


async def _decide_reply(request: Request, form: FormData, signed: Signed, decision: str) -> Response:
    w = web(request)
    request_id = _row_id(text(form, "request_id", 20))
    now = w.clock()
    outcome = (
        "missing"
        if request_id is None
        else await w.write(lambda s: replies.decide(s, w.shape, signed.person, request_id, decision, now=now))
    )
    if outcome == "forbidden":
        return forbidden(request, signed)
    if outcome != "done":
        words = {
            "nobody": "No member has this address, so there is nobody to unsubscribe: "
            "choose \u201cNot a request\u201d.",
        }.get(outcome, "That reply is not waiting any more: someone has dealt with it already.")
        return message(
            request, "Nothing changed", words, signed=signed, status=400, link=("/desk/", "Back to your desk")
        )
    return redirect(f"/desk/?done=reply-{decision}")


@admin_form
async def reply_unsubscribe(request: Request, form: FormData, signed: Signed) -> Response:
    return await _decide_reply(request, form, signed, "unsubscribe")


@admin_form
async def reply_dismiss(request: Request, form: FormData, signed: Signed) -> Response:
    return await _decide_reply(request, form, signed, "dismiss")


@desk_page
async def network_page(request: Request, signed: Signed) -> Response:
    w = web(request)
    slug = request.path_params["name"]
    key = network_slugs(w).get(slug)
    if key is None:
        return not_found(request, signed)
    if not people.can(signed.person, "view", key):
        return forbidden(request, signed)
    network = next(n for n in networks_of(w.shape, w.settings) if n.slug == slug)
    mine = [r for r in _role_rows(w, signed.person) if r["slug"] == slug or r["network"] == "every network"]
    can = people.actions_of(signed.person, key)
    actions = [ACTION_WORDS[a] for a in can]
    return page(
        request,
        "network.html",
        {"title": network.name, "roles": mine, "actions": actions, "can": can},
        signed=signed,
        network=network,
    )


# ---------------------------------------------------------------------------------------------
# People (admins)


async def _people_context(w: Web, signed: Signed) -> dict[str, object]:
    admin = signed.person
    now = w.clock()

    seen = await w.read(lambda s: people.overview(s, admin, now=now))
    shown, lines, live = seen.people, seen.lines, seen.live
    # One network first; "every network" (an admin of all only) last, never the default.
    networks = [
        (key, people.network_label(w.shape, w.settings, key))
        for key in [k for k in network_slugs(w).values() if people.can(admin, "manage-people", k)]
        + ([""] if admin.admin_of_all and w.shape.networks else [])
    ]
    rows = []
    for p in shown:
        roles = []
        for role in p.roles:
            roles.append(
                {
                    "id": role.id,
                    "words": _role_words(w, role),
                    "removable": people.can(admin, "manage-people", role.network),
                }
            )
        rows.append(
            {
                "id": p.id,
                "email": p.email,
                "name": p.name,
                "active": p.active,
                "roles": roles,
                "sessions": live.get(p.id, 0),
                "manageable": people.manages(admin, p) and p.id != admin.id,
            }
        )
    return {
        "people": rows,
        "audit": lines,
        "roles": [(r, people.ROLE_NAMES[r]) for r in people.ROLES],
        "networks": networks,
        "regions": region_options(w.shape),
    }


def _role_words(w: Web, role: Role) -> str:
    name = people.ROLE_NAMES.get(role.role, role.role)
    network = people.network_label(w.shape, w.settings, role.network)
    if role.region:
        region = w.shape.regions[role.region].name if role.region in w.shape.regions else role.region
        return f"{name} for {region} ({network})"
    return f"{name} of {network}"


async def _render_people(
    request: Request,
    signed: Signed,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
) -> Response:
    w = web(request)
    context = await _people_context(w, signed)
    context.update(
        values=values or {"email": "", "name": "", "role": "", "network": "", "region": ""},
        errors=errors or {},
        notice=notice,
    )
    return page(request, "people.html", context, signed=signed, status=status)


@admin_page
async def people_page(request: Request, signed: Signed) -> Response:
    notice = NOTICES.get(request.query_params.get("done", ""), "")
    return await _render_people(request, signed, notice=notice)


async def _person_refused(request: Request, signed: Signed, refusal: FormRefused) -> Response:
    values = {name: str(value) for name, value in refusal.values.items()}
    return await _render_people(request, signed, values=values, errors=refusal.errors, status=400)


@admin_form(refused=_person_refused)
async def add_person(request: Request, form: FormData, signed: Signed) -> Response:
    w = web(request)
    values = {name: text(form, name, 320 if name == "email" else 200) for name in desk_forms.PERSON_FIELDS}
    checked, role = desk_forms.person(values, w.shape, w.settings)
    # Anyone's admin may add a person with no role; a role only where they manage people.
    if role is not None and not people.can(signed.person, "manage-people", role.network):
        return forbidden(request, signed)
    if desk_forms.needs_confirming(checked, role):
        assert role is not None
        context = {"values": values, "role_words": _role_words(w, role), "all": role.network == ""}
        return page(request, "people_confirm.html", context, signed=signed)
    now = w.clock()
    by = signed.person

    def add(session: Any) -> tuple[people.Added, notifications.Notice | None]:
        added = people.add(session, checked.email, role, name=checked.name, by=by.id, now=now)
        if role is None or not added.new_role:
            return added, None
        network = _network_of_key(w, role.network)
        words = _role_words(w, role)
        return added, notifications.invitation(
            session, w.settings, network, added.person, words, by=by, now=now
        )

    try:
        added, invitation = await w.write(add)
    except MailerError:
        raise FormRefused(
            {"email": "Enter their email address, like name@example.org."}, values=values
        ) from None
    done = "added-no-role" if role is None else "added" if added.new_role else "exists"
    return send_notices(request, redirect("/desk/people?done=" + done), [invitation])


def _row_id(form_value: str) -> int | None:
    return int(form_value) if form_value.isascii() and form_value.isdigit() and len(form_value) < 10 else None


async def _change_by_id(
    request: Request,
    form: FormData,
    signed: Signed,
    field: str,
    missing: str,
    change: Callable[[Any, int, datetime], str],
    done: str,
) -> Response:
    """An admin's change to one row named by a posted id (``field``): ``change(session, id, now)``
    answers "forbidden", "missing", "last" (the last admin of every network) or anything else
    (done: back to the people page with ``done``)."""

    def nothing(body: str, **more: Any) -> Response:
        return message(request, "Nothing changed", body, signed=signed, status=400, **more)

    w = web(request)
    row_id = _row_id(text(form, field, 20))
    if row_id is None:
        return nothing(missing)
    now = w.clock()
    outcome = await w.write(lambda s: change(s, row_id, now))
    if outcome == "forbidden":
        return forbidden(request, signed)
    if outcome == "missing":
        return nothing(missing)
    if outcome == "last":
        last = "This is the last admin of every network: add another admin first."
        return nothing(last, link=("/desk/people", "Back to people"))
    return redirect(f"/desk/people?done={done}")


@admin_form
async def remove_role(request: Request, form: FormData, signed: Signed) -> Response:
    def take(session: Any, role_id: int, now: datetime) -> str:
        return people.take_role(session, role_id, by=signed.person, now=now)

    return await _change_by_id(request, form, signed, "role_id", "That role does not exist.", take, "removed")


@admin_form
async def revoke(request: Request, form: FormData, signed: Signed) -> Response:
    def sign_out(session: Any, user_id: int, now: datetime) -> str:
        return people.sign_out_everywhere(session, user_id, by=signed.person, now=now)

    return await _change_by_id(
        request, form, signed, "user_id", "That person does not exist.", sign_out, "revoked"
    )


routes = [
    Route("/desk/", home, methods=["GET"]),
    Route("/desk/networks/{name}", network_page, methods=["GET"]),
    Route("/desk/notifications", choose_notifications, methods=["POST"]),
    Route("/desk/people", people_page, methods=["GET"]),
    Route("/desk/people/add", add_person, methods=["POST"]),
    Route("/desk/people/remove-role", remove_role, methods=["POST"]),
    Route("/desk/people/revoke", revoke, methods=["POST"]),
    Route("/desk/replies/unsubscribe", reply_unsubscribe, methods=["POST"]),
    Route("/desk/replies/dismiss", reply_dismiss, methods=["POST"]),
]
