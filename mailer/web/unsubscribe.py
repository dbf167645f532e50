"""Unsubscribe at ``/u/{token}``, the URL in every message's List-Unsubscribe header.

- GET and HEAD show a page with a button and change nothing: mail scanners follow links.
- A POST whose form says ``List-Unsubscribe=One-Click`` (RFC 8058; urlencoded or multipart)
  unsubscribes at once: no cookie, no CSRF value, no second step, and the answer is 200 with a small
  page, never a redirect. The signed token in the URL is what authorises it. Source "one-click".
- The page's own button posts the same URL with a CSRF value instead (source "link").
- The page's second button (``POST /u/{token}/preferences``, with CSRF) mails the member a link to
  their preferences: neither this page nor any other answer to an unsubscribe link carries a
  preferences link itself, so an unsubscribe link seen in a log or a forwarded mail opens no
  one's profile.

Either way the unsubscribe is a suppression (``consent.unsubscribe_member``) recorded with its source
and the campaign named in the token; repeating it is harmless (the suppression is added once; each
request is logged in the consent log). The write is one short transaction, retried when the
database is busy, and every send checks suppressions again at each batch.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import tokens
from mailer.audience import consent
from mailer.web.context import in_range, web
from mailer.web.forms import read_form
from mailer.web.preferences import mail_preferences_link

ONE_CLICK = ("List-Unsubscribe", "One-Click")


async def page(request: Request) -> Response:
    """GET/HEAD: the page with the button. Verifies the token; writes nothing."""
    w = web(request)
    token = request.path_params["token"]
    tokens.verify(token, "unsubscribe", keys=w.keys)
    path = tokens.LINK_PATHS["unsubscribe"] + token
    return w.pages.page(
        request,
        "unsubscribe.html",
        {"action": path, "preferences_action": path + "/preferences"},
        csrf_scope=path,
    )


async def post(request: Request) -> Response:
    """POST: one-click (RFC 8058) or the page's button (with a CSRF value)."""
    w = web(request)
    token = request.path_params["token"]
    data = in_range(tokens.verify(token, "unsubscribe", keys=w.keys))
    form = await read_form(request)
    if form.get(ONE_CLICK[0]) == ONE_CLICK[1]:
        source = "one-click"
    elif w.csrf.check(request, form, tokens.LINK_PATHS["unsubscribe"] + token):
        source = "link"
    else:
        return w.pages.form_expired(request)

    def work(session: Session) -> consent.Unsubscribed | None:
        return consent.unsubscribe_member(session, data.member_id, source=source, campaign_id=data.campaign)

    await w.write(work)
    return w.pages.page(request, "unsubscribed.html", {"one_click": source == "one-click"})


async def preferences_link(request: Request) -> Response:
    """POST (with the page's CSRF value): mail the member a link to their preferences."""
    w = web(request)
    token = request.path_params["token"]
    data = in_range(tokens.verify(token, "unsubscribe", keys=w.keys))
    form = await read_form(request)
    if not w.csrf.check(request, form, tokens.LINK_PATHS["unsubscribe"] + token):
        return w.pages.form_expired(request, what="sent")
    return await mail_preferences_link(w, request, data.member_id, data.campaign)


routes = [
    Route("/u/{token}", page, methods=["GET"]),
    Route("/u/{token}", post, methods=["POST"]),
    Route("/u/{token}/preferences", preferences_link, methods=["POST"]),
]
