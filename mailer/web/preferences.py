"""Preferences at ``/p/{token}`` (the link in every footer): name, home region, interests.

A member leaves one interest by unticking it, or everything with the "Unsubscribe from everything"
button (a suppression, source "link"). Every form carries a CSRF value. Each saved change appends a
``preferences`` event to the consent log saying what changed; an unchanged form appends nothing.
A member who has unsubscribed sees that, and how to sign up again (only a confirmed sign-up lifts a
suppression): the page never resubscribes anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import tokens
from mailer.audience.addresses import clean_name
from mailer.audience.shape import Shape
from mailer.audience.suppression import is_hash_suppressed
from mailer.models import ConsentEvent, Interest, Member, Region, utcnow
from mailer.web.context import Web, web
from mailer.web.forms import read_form, text, texts
from mailer.web.unsubscribe import campaign_label, unsubscribe_member

NAME_LIMIT = 200


@dataclass(frozen=True)
class MemberView:
    """What the preferences page shows of a member."""

    member_id: int
    name: str
    region: str | None
    interests: frozenset[str]
    suppressed: bool


@dataclass(frozen=True)
class Choice:
    """A member's choices as posted: cleaned and checked against the shape."""

    name: str
    region: str | None
    interests: frozenset[str]


def member_view(session: Session, member_id: int) -> MemberView | None:
    member = session.get(Member, member_id)
    if member is None:
        return None
    return MemberView(
        member_id=member.id,
        name=member.name,
        region=member.region.slug if member.region is not None else None,
        interests=frozenset(i.slug for i in member.interests),
        suppressed=is_hash_suppressed(session, member.address_hash),
    )


def region_options(shape: Shape) -> list[tuple[str, str]]:
    """(slug, "South East › Kent") for every region, parents before children."""
    return [(r.slug, shape.label(r.slug)) for _depth, r in shape.walk()]


def validate_choice(
    shape: Shape, name: str, region: str, interests: list[str]
) -> tuple[Choice, dict[str, str]]:
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
    choice = Choice(
        cleaned[:NAME_LIMIT],
        region if region in shape.regions else None,
        frozenset(i for i in interests if i in shape.interests),
    )
    return choice, errors


def save_preferences(
    session: Session, member_id: int, choice: Choice, *, campaign_id: int | None
) -> list[str] | None:
    """Apply ``choice`` to the member and log what changed; the changes in words, or None when the
    member is gone or has unsubscribed (nothing is changed then)."""
    member = session.get(Member, member_id)
    if member is None or is_hash_suppressed(session, member.address_hash):
        return None
    changes: list[str] = []
    if choice.name != member.name:
        member.name = choice.name
        changes.append("name changed")
    current_region = member.region.slug if member.region is not None else None
    if choice.region != current_region:
        region = session.scalar(select(Region).where(Region.slug == choice.region)) if choice.region else None
        member.region_id = region.id if region is not None else None
        changes.append(f"region {current_region or '-'} -> {choice.region or '-'}")
    current = {i.slug for i in member.interests}
    joined = sorted(choice.interests - current)
    left = sorted(current - choice.interests)
    if joined or left:
        rows = session.scalars(select(Interest).where(Interest.slug.in_(sorted(choice.interests)))).all()
        member.interests = sorted(rows, key=lambda i: i.slug)
        changes.extend(f"joined interest {s}" for s in joined)
        changes.extend(f"left interest {s}" for s in left)
    if changes:
        member.updated_at = utcnow()
        session.add(
            ConsentEvent(
                member_id=member.id,
                address_hash=member.address_hash,
                action="preferences",
                source="link",
                wording="",
                campaign=campaign_label(session, campaign_id),
                detail="; ".join(changes),
                created_at=utcnow(),
            )
        )
    return changes


def _form_context(
    w: Web, request: Request, view: MemberView, choice: Choice | None = None
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


async def _member(request: Request) -> tuple[Web, tokens.TokenData, MemberView]:
    w = web(request)
    data = tokens.verify(request.path_params["token"], "preferences", keys=w.keys)
    view = await w.read(lambda s: member_view(s, data.member_id))
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
    changes = await w.write(lambda s: save_preferences(s, data.member_id, choice, campaign_id=data.campaign))
    if changes is None:
        now: MemberView | None = await w.read(lambda s: member_view(s, data.member_id))
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
        lambda s: unsubscribe_member(
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
