"""An item's links and image on the desk's issue form: their fields, reading a post of them, and
writing them into the issue file.

An item's links are rows of text and address (``items-2-links-0-text``, ``items-2-links-0-url``):
the ones it has, then ``NEW_LINKS`` empty rows to add one (no script needed); a row with both
emptied is removed, and an item left with none has no ``links`` written. Its image is
``items-2-image-src``, ``-alt`` and ``-width``; all three emptied remove it. A post of them is
checked with the issue schema's own ``Link`` and ``Image`` (and an image file must be one the
campaign's ``/files/`` serves): a wrong one refuses the whole save, its problem at its field. An
item whose ``links`` or ``image`` the desk cannot show as fields (not a list of links, not an
image's fields: a file being fixed by hand) has them left as they are.

A link or image left as it was is not rewritten, so its comments and quoting stay.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mailer.desk.formfields import Field, Spec
from mailer.desk.issuefile import drop, plain, to_yaml
from mailer.issue.schema import Image, Link

NEW_LINKS = 2
"""Empty link rows each item's form offers (fill one to add a link; save for two more)."""

IMAGE = [
    Spec(
        "image-src",
        "Image address or file",
        limit=2000,
        hint="An https:// address, or the name of an image file in the campaign's folder.",
        required=True,
    ),
    Spec(
        "image-alt",
        "Alt text",
        limit=1000,
        hint="What the image shows, for people who cannot see it.",
        required=True,
    ),
    Spec("image-width", "Width", limit=10, hint="In pixels, e.g. 480 (the newsletter is 600 wide)."),
]


def link_specs(row: int) -> list[Spec]:
    """The fields of an item's link ``row`` (0-based): its text and address."""
    return [
        Spec(f"links-{row}-text", f"Link {row + 1}: text", limit=300, required=True),
        Spec(
            f"links-{row}-url",
            f"Link {row + 1}: address",
            limit=2000,
            hint="https://… (or mailto:…)",
            required=True,
        ),
    ]


def _text_of(value: Any) -> str:
    return "" if value is None or isinstance(value, dict | list) else str(value)


# ---------------------------------------------------------------------------------------------
# The fields as shown


def link_rows(item: Any, prefix: str) -> list[list[Field]] | None:
    """An item's links as rows of fields, then ``NEW_LINKS`` empty rows; None when its ``links``
    is not a list of links (a text, a list of addresses: left for the file)."""
    links = item.get("links") if isinstance(item, dict) else None
    if links is None:
        links = []
    if not isinstance(links, list) or not all(isinstance(link, dict) for link in links):
        return None
    rows = []
    for j in range(len(links) + NEW_LINKS):
        link = links[j] if j < len(links) else {}
        rows.append(
            [Field(prefix + s.key, s, _text_of(link.get(s.key.rsplit("-", 1)[1]))) for s in link_specs(j)]
        )
    return rows


def image_fields(item: Any, prefix: str) -> list[Field] | None:
    """An item's image as its three fields; None when ``image`` is not a set of fields."""
    image = item.get("image") if isinstance(item, dict) else None
    if image is None:
        image = {}
    if not isinstance(image, dict):
        return None
    return [Field(prefix + s.key, s, _text_of(image.get(s.key.split("-", 1)[1]))) for s in IMAGE]


# ---------------------------------------------------------------------------------------------
# A post


def read_links(
    rows: list[list[Field]], values: dict[str, Any], invalid: dict[str, str]
) -> list[dict[str, str]] | None:
    """The links the posted ``values`` (cleaned, by field name) give the item whose link fields are
    ``rows`` (a field not posted keeps the file's value); None when they are the file's (left as
    they are) or when one is wrong: its problem in ``invalid`` (by field name). A link as the file
    has it is not checked again (``campaigns check`` shows its problems): a save is refused only
    for what it changes."""
    posted = [str(values.get(f.name, f.value)) for row in rows for f in row]
    if posted == [f.value for row in rows for f in row]:
        return None
    before = len(invalid)
    links: list[dict[str, str]] = []
    for text, url in rows:
        link = {"text": str(values.get(text.name, text.value)), "url": str(values.get(url.name, url.value))}
        if not link["text"] and not link["url"]:
            continue  # emptied: removed
        if (link["text"], link["url"]) == (text.value, url.value):
            links.append(link)  # as it was
        elif not link["text"]:
            invalid[text.name] = "Give the link's text (or empty its address too to remove it)."
        elif not link["url"]:
            invalid[url.name] = "Give the link's address (or empty its text too to remove it)."
        elif schema_takes(Link, link, url.name.removesuffix("url"), None, invalid):
            links.append(link)
    return None if len(invalid) > before else links


def read_image(
    fields: list[Field], values: dict[str, Any], folder: Path | None, invalid: dict[str, str]
) -> tuple[dict[str, Any] | None] | None:
    """The image the posted ``values`` give the item whose image fields are ``fields``, in a
    1-tuple (``(None,)``: no image); None when it is the file's (left as it is: a field not posted
    keeps the file's value) or when it is wrong: its problems in ``invalid`` (by field name).
    ``folder``: the campaign's, where an image file must be."""
    src, alt, width = (str(values.get(f.name, f.value)) for f in fields)
    if [src, alt, width] == [f.value for f in fields]:
        return None
    if not (src or alt or width):
        return (None,)
    image: dict[str, Any] = {"src": src, "alt": alt}
    if width and not re.fullmatch(r"[0-9]{1,9}", width):
        invalid[fields[2].name] = "Give the width as a whole number of pixels, e.g. 480, or leave it empty."
        return None
    if width:
        image["width"] = int(width)
    prefix = fields[0].name.removesuffix("src")
    if not schema_takes(Image, image, prefix, folder, invalid):
        return None  # the schema also refuses a file the campaign's /files/ would not serve
    return (image,)


def schema_takes(
    model: type[BaseModel], value: dict[str, Any], prefix: str, folder: Path | None, invalid: dict[str, str]
) -> bool:
    """Whether the schema's ``model`` takes ``value``; if not, its problems in ``invalid`` at the
    fields named ``prefix`` + the field (``items-0-links-1-`` + ``url``)."""
    try:
        model.model_validate(value, context={"folder": folder})
    except ValidationError as exc:
        for err in exc.errors():
            name = prefix + str(err["loc"][0]) if err["loc"] else prefix.rstrip("-")
            hint = (err.get("ctx") or {}).get("hint")
            text = str(err["msg"])
            said = text[:1].upper() + text[1:] + "." + (f" {hint[:1].upper()}{hint[1:]}." if hint else "")
            invalid.setdefault(name, said)
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Writing


def put_in_order(container: MutableMapping[str, Any], key: str, value: Any, order: list[str]) -> None:
    """Set ``container[key]``; a new key goes after the keys ``order`` puts before it."""
    if key in container or not isinstance(container, CommentedMap):
        container[key] = value
        return
    before = order[: order.index(key)] if key in order else order
    position = 0
    for i, existing in enumerate(container):
        if existing in before:
            position = i + 1
    container.insert(position, key, value)


def set_links(item: MutableMapping[str, Any], links: list[dict[str, str]], order: list[str]) -> None:
    """Make the item's links ``links``: none written when there are none; a link left as it was
    keeps its place in the file (and its comments)."""
    now = item.get("links")
    if plain(now) == links or (now is None and not links):
        return
    if not links:
        drop(item, "links")
        return
    if not isinstance(now, list):
        put_in_order(item, "links", to_yaml(links), order)
        return
    kept = list(now)
    new = []
    for link in links:
        same = next((i for i, old in enumerate(kept) if plain(old) == link), None)
        new.append(kept.pop(same) if same is not None else to_yaml(link))
    while now:
        del now[-1]
    now.extend(new)
    if isinstance(now, CommentedSeq) and now.fa.flow_style():
        now.fa.set_block_style()


def set_image(item: MutableMapping[str, Any], image: dict[str, Any] | None, order: list[str]) -> None:
    """Make the item's image ``image`` (None: no image); a part left as it was is not rewritten."""
    now = item.get("image")
    if image is None:
        drop(item, "image")
        return
    if not isinstance(now, dict):
        put_in_order(item, "image", to_yaml(image), order)
        return
    if plain(now) == image:
        return
    for key in ("src", "alt", "width"):
        if key not in image:
            drop(now, key)
        elif plain(now.get(key)) != image[key]:
            now[key] = to_yaml(image[key])


__all__ = [
    "IMAGE",
    "NEW_LINKS",
    "image_fields",
    "link_rows",
    "link_specs",
    "put_in_order",
    "read_image",
    "read_links",
    "schema_takes",
    "set_image",
    "set_links",
]
