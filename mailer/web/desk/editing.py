"""The issue form's helpers: a live preview of unsaved changes, an image upload, and the
confirmation asked before an item is removed without JavaScript.

- ``POST /desk/issues/{slug}/preview/live``: the issue form as posted (not saved), rendered as the
  preview's frame renders the saved issue (all variants' content, sample values), for the frame
  beside the form. The page's script posts the form there (debounced) with the frame as its
  target; without JavaScript, the form's "Preview these changes" button does the same.
- ``POST /desk/issues/{slug}/image``: a picture for an item (multipart: ``image``, ``alt``,
  ``item``, ``version``), made fit for email and kept in the issue's folder (``mailer.desk.images``).
- ``GET /desk/issues/{slug}/remove?item=N``: "Remove this item?" with a button that removes it.
"""

from __future__ import annotations

import hashlib
import re

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Message

from mailer.desk import images, issuefile, issueform, pickers
from mailer.desk import issues as issues_
from mailer.desk.issuefile import StaleIssue
from mailer.errors import MailerError
from mailer.web.context import web
from mailer.web.desk.common import Signed, desk_form, desk_page, page, redirect
from mailer.web.desk.compose import _open, read_issue_form
from mailer.web.desk.previews import FRAME_POLICY, Choice, Refused, _render
from mailer.web.pages import PAGE_HEADERS

MAX_UPLOAD = images.MAX_BYTES + 64 * 1024


@desk_form(read=read_issue_form)
async def live_preview(request: Request, form: FormData, signed: Signed) -> Response:
    opened, network = await _open(request, signed)
    w = web(request)
    headers = {**PAGE_HEADERS, "Content-Security-Policy": FRAME_POLICY, "X-Frame-Options": "SAMEORIGIN"}
    try:
        submitted = issueform.Submitted.read(
            form, opened.data(), folder=opened.path.parent, known=pickers.table(w.shape)
        )
        if submitted.too_long or submitted.invalid:
            raise Refused("Some fields are not right yet: see the form.")
        change = submitted.change("save")
        loaded = await run_in_threadpool(
            issuefile.draft, w.settings.workspace, opened.slug, change, shape=w.shape
        )
        posted = "&".join(f"{k}={v}" for k, v in form.multi_items() if isinstance(v, str))
        version = "draft-" + hashlib.sha256(posted.encode()).hexdigest()
        shown = await _render(w, signed, loaded, network, Choice(), version)
    except Refused as exc:
        return HTMLResponse(f"<p>{exc}</p>", status_code=400, headers=headers)
    except MailerError:
        return HTMLResponse(
            "<p>The preview cannot be shown until the problems in the form are fixed.</p>",
            status_code=400,
            headers=headers,
        )
    return HTMLResponse(shown.html, headers=headers)


async def read_upload(request: Request) -> FormData:
    """An upload's form: multipart, one file, a few small fields, the whole body at most
    ``MAX_UPLOAD`` bytes (read as it arrives, so a body sent without its length is cut off too).
    Anything else: no fields, so no CSRF value (403, nothing changed)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD:
        return FormData()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD:
            return FormData()
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=1, max_fields=10, max_part_size=64 * 1024)
    except Exception:  # a malformed body: no fields
        return FormData()


@desk_form(read=read_upload)
async def upload_image(request: Request, form: FormData, signed: Signed) -> Response:
    opened, _network = await _open(request, signed)
    w = web(request)
    version = form.get("version")
    item = form.get("item")
    upload = form.get("image")
    alt = form.get("alt")
    if not isinstance(version, str) or not re.fullmatch(r"[0-9a-f]{64}", version):
        return _refused(
            request, signed, opened.slug, "The form is out of date: reload the issue and try again."
        )
    if not isinstance(item, str) or not item.isdigit() or len(item) > 4:
        return _refused(request, signed, opened.slug, "Choose the item the picture is for.")
    if not isinstance(upload, UploadFile):
        return _refused(request, signed, opened.slug, "Choose a picture to upload.")
    data = await upload.read(images.MAX_BYTES + 1)

    def attach() -> issuefile.Saved:
        return images.attach(
            w.settings.workspace,
            opened.slug,
            int(item),
            data,
            alt if isinstance(alt, str) else "",
            expected_version=version,
            item_order=issueform.ORDER["item"],
        )

    try:
        saved = await run_in_threadpool(attach)
    except StaleIssue:
        return _refused(
            request,
            signed,
            opened.slug,
            "The issue was changed since you opened it: reload it and upload again.",
        )
    except MailerError as exc:
        problem = exc.problem
        text = (
            problem.message[:1].upper()
            + problem.message[1:]
            + (f": {problem.hint}." if problem.hint else ".")
        )
        return _refused(request, signed, opened.slug, "Not uploaded. " + text)
    now = w.clock()
    await w.write(
        lambda s: issues_.record_saved(
            s, opened.slug, saved.version, by=signed.person.id, action="image", now=now
        )
    )
    return redirect(f"/desk/issues/{opened.slug}?done=saved#items-{int(item)}")


def _refused(request: Request, signed: Signed, slug: str, text: str) -> Response:
    context = {"title": "The picture was not added", "text": text, "slug": slug}
    return page(request, "issue_refused.html", context, signed=signed, status=400)


@desk_page
async def confirm_remove(request: Request, signed: Signed) -> Response:
    opened, network = await _open(request, signed)
    item = request.query_params.get("item", "")
    data = opened.data()
    items = data.get("items")
    if not item.isdigit() or not isinstance(items, list) or int(item) >= len(items):
        return _refused(request, signed, opened.slug, "That item is no longer in the issue.")
    n = int(item)
    found = items[n]
    title = str(found.get("title") or f"item {n + 1}") if isinstance(found, dict) else f"item {n + 1}"
    context = {
        "title": "Remove this item?",
        "item_title": title,
        "n": n,
        "slug": opened.slug,
        "version": opened.version,
    }
    return page(request, "issue_remove.html", context, signed=signed, network=network)


routes = [
    Route("/desk/issues/{slug}/preview/live", live_preview, methods=["POST"]),
    Route("/desk/issues/{slug}/image", upload_image, methods=["POST"]),
    Route("/desk/issues/{slug}/remove", confirm_remove, methods=["GET"]),
]
