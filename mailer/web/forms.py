"""Reading form posts: urlencoded or multipart, with small limits (no file uploads anywhere).

``posted`` turns a post into the mapping ``mailer.forms.read`` checks against a form's model.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from mailer.forms import Form, is_list_field

MAX_BODY = 64 * 1024
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_form(request: Request) -> FormData:
    """The posted form. A body sent without a form content type (some one-click unsubscribe
    clients do that) is read as urlencoded, up to ``MAX_BODY`` bytes."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        return await request.form(max_files=0, max_fields=100, max_part_size=64 * 1024)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return FormData()
    try:
        fields: list[tuple[str, str | UploadFile]] = list(
            parse_qsl(body.decode("utf-8").strip(), max_num_fields=100)
        )
        return FormData(fields)
    except (UnicodeDecodeError, ValueError):
        return FormData()


def text(form: FormData, name: str, limit: int = 500) -> str:
    """A text field, stripped and cut to ``limit`` characters ("" when missing or a file)."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def texts(form: FormData, name: str, limit: int = 100) -> list[str]:
    """Every value of a repeated field (checkboxes), stripped, in order, without duplicates."""
    out: list[str] = []
    for value in form.getlist(name):
        if isinstance(value, str) and value.strip() and value.strip()[:limit] not in out:
            out.append(value.strip()[:limit])
    return out


def posted(
    form: FormData, model: type[Form], *, limit: int = 1000, item_limit: int = 100
) -> dict[str, object]:
    """The fields of ``form`` that ``model`` reads, as ``mailer.forms.read`` takes them: every value
    of a list field (``is_list_field``: checkboxes, ``texts``), else the field's text (``text``, cut
    to ``limit``). A field that was not posted is left out, so it takes the model's default."""
    out: dict[str, object] = {}
    for name in model.model_fields:
        if name in form:
            out[name] = (
                texts(form, name, item_limit) if is_list_field(model, name) else text(form, name, limit)
            )
    return out
