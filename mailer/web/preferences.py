"""Preferences at ``/p/{token}`` (the link in every footer): name, home region, interests.

A member leaves one interest by unticking it, or everything with the "Unsubscribe from everything"
button (a suppression, source "link"). Every form carries a CSRF value. Saving goes through
``consent.save_preferences``: each saved change appends a ``preferences`` event to the consent log
saying what changed; an unchanged form appends nothing.
A member who has unsubscribed sees that, and how to sign up again (only a confirmed sign-up lifts a
suppression): the page never resubscribes anyone.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import tokens
from mailer.audience import consent
from mailer.audience.addresses import clean_name
from mailer.audience.consent import MemberPreferences, Preferences
from mailer.audience.shape import Shape
from mailer.web.context import Web, web
from mailer.web.forms import read_form, text, texts

NAME_LIMIT = 200


def region_options(shape: Shape) -> list[tuple[str, str]]:
    """(slug, "South East › Kent") for every region, parents before children."""
    return [(r.slug, shape.label(r.slug)) for _depth, r in shape.walk()]


def validate_choice(
    shape: Shape, name: str, region: str, interests: list[str]
) -> tuple[Preferences, dict[str, str]]:
    """The posted choice and the problems with it, by field."""
    errors: dict[str, str] = {}
    if region and region not in shape.regions:
        errors["region"] = "Choose your region from the list."
    unknown = [i for i in interests if i not in shape.interests]
    if unknown:
        errors["interests"] = "Choose interests from the list."
    cleaned = clean_name(name)
    if len(cleaned) > NAME_LIMIT:
        errors["name"] = f"Your name can be at most {NAME_LIMIT} characters long."
    choice = Preferences(
        cleaned[:NAME_LIMIT],
        region if region in shape.regions else None,
        frozenset(i for i in interests if i in shape.interests),
    )
    return choice, errors


def _form_context(
    w: Web, request: Request, view: MemberPreferences, choice: Preferences | None = None
) -> dict[str, object]:
    path = request.url.path.removesuffix("/leave")
    return {
        "action": path,
        "leave_action": path + "/leave",
        "regions": region_options(w.shape),
        "interests": [w.shape.interests[s] for s in w.shape.interests],
        "name": choice.name if choice else view.name,
        "region": choice.region if choice else view.region,
        "chosen": choice.interests if choice else view.interests,
        "suppressed": view.suppressed,
        "errors": {},
        "saved": None,
    }


async def _member(request: Request) -> tuple[Web, tokens.TokenData, MemberPreferences]:
    w = web(request)
    data = tokens.verify(request.path_params["token"], "preferences", keys=w.keys)
    view = await w.read(lambda s: consent.preferences_of(s, data.member_id))
    if view is None:  # erased since: the same page as for any bad link
        raise tokens.InvalidToken("member no longer exists")
    return w, data, view


def _scope(request: Request) -> str:
    return tokens.LINK_PATHS["preferences"] + str(request.path_params["token"])


async def page(request: Request) -> Response:
    """GET: the form, filled in with the member's current choices. Writes nothing."""
    w, _data, view = await _member(request)
    return w.pages.page(
        request, "preferences.html", _form_context(w, request, view), csrf_scope=_scope(request)
    )


def _expired(w: Web, request: Request) -> Response:
    return w.pages.message(
        request,
        "Please try again",
        "This form had expired, so nothing was changed. Go back, reload the page and save again.",
        status=403,
    )


async def save(request: Request) -> Response:
    """POST: save name, region and interests."""
    w, data, view = await _member(request)
    form = await read_form(request)
    if not w.csrf.check(request, form, _scope(request)):
        return _expired(w, request)
    choice, errors = validate_choice(
        w.shape, text(form, "name", 1000), text(form, "region", 100), texts(form, "interests")
    )
    context = _form_context(w, request, view, choice)
    if errors:
        context["errors"] = errors
        return w.pages.page(request, "preferences.html", context, status=400, csrf_scope=_scope(request))
    changes = await w.write(
        lambda s: consent.save_preferences(s, data.member_id, choice, campaign_id=data.campaign)
    )
    if changes is None:
        now: MemberPreferences | None = await w.read(lambda s: consent.preferences_of(s, data.member_id))
        context = _form_context(w, request, now or view)
    else:
        context["saved"] = changes
    return w.pages.page(request, "preferences.html", context, csrf_scope=_scope(request))


async def leave(request: Request) -> Response:
    """POST: unsubscribe from everything (source "link")."""
    w, data, _view = await _member(request)
    form = await read_form(request)
    if not w.csrf.check(request, form, _scope(request)):
        return _expired(w, request)
    await w.write(
        lambda s: consent.unsubscribe_member(
            s, data.member_id, source="link", campaign_id=data.campaign, detail="preferences page"
        )
    )
    return w.pages.page(
        request, "unsubscribed.html", {"one_click": False, "preferences_path": _scope(request)}
    )


routes = [
    Route("/p/{token}", page, methods=["GET"]),
    Route("/p/{token}", save, methods=["POST"]),
    Route("/p/{token}/leave", leave, methods=["POST"]),
]
