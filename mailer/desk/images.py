"""An image uploaded on the desk, made fit for email and kept in the issue's folder.

``store(folder, data)`` takes the bytes as sent (never their name): only JPEG, PNG or WebP as the
bytes themselves say (Pillow opens them and must find one of those formats), at most ``MAX_BYTES``
and ``MAX_PIXELS`` (a decompression bomb is refused before it is decoded), then re-encoded from
its pixels alone, so no metadata survives (EXIF, GPS location, comments, ICC profiles, anything
appended after the image: a polyglot loses its other half). A picture wider than ``MAX_WIDTH`` is
scaled down; the phone's rotation (EXIF orientation) is applied first. The file is named from a
hash of the result (``image-<hash>.jpg`` or ``.png``), so a name sent with the upload never reaches
the disk and the same picture uploaded twice is one file. The archive serves the campaign's
folder at ``/files/<slug>/<name>``, the address the rendered mail uses for it.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from mailer.desk.issuefile import Saved, edit
from mailer.desk.itemparts import set_image
from mailer.errors import MailerError

MAX_BYTES = 10 * 1024 * 1024
"""The largest upload taken (a phone's photo is 2–6 MB)."""
MAX_PIXELS = 40_000_000
"""The most pixels an upload may have (a 48-megapixel phone photo is refused; decoded, it would be
about 150 MB)."""
MAX_WIDTH = 1200
"""The widest an image is kept: twice a 600 px email column, for sharp screens."""
FORMATS = {"JPEG", "PNG", "WEBP"}
MAX_ALT = 300


@dataclass(frozen=True)
class Stored:
    """An image written to the campaign's folder: its file name there, its size in pixels."""

    name: str
    width: int
    height: int


class ImageRefused(MailerError):
    """An upload that is not a picture we take, or an image without its words."""

    exit_code = 2


def _refuse(message: str, hint: str) -> ImageRefused:
    return ImageRefused(message, field="image", hint=hint)


def _opened(data: bytes) -> Image.Image:
    if len(data) > MAX_BYTES:
        raise _refuse(
            f"the picture is too large ({len(data) // (1024 * 1024)} MB)",
            f"send one of at most {MAX_BYTES // (1024 * 1024)} MB",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=sorted(FORMATS))
            if image.width * image.height > MAX_PIXELS:
                raise _refuse(
                    "the picture has too many pixels", "send a smaller picture (at most 40 megapixels)"
                )
            image.load()
        except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            if isinstance(exc, UnidentifiedImageError):
                raise _refuse(
                    "this file is not a JPEG, PNG or WebP picture",
                    "send a photo or a picture in one of those",
                ) from None
            raise _refuse("the picture has too many pixels", "send a smaller picture") from None
        except (OSError, ValueError, SyntaxError):
            raise _refuse(
                "the picture cannot be read (it is damaged or cut short)", "send it again"
            ) from None
    if image.format not in FORMATS:
        raise _refuse(
            "this file is not a JPEG, PNG or WebP picture", "send a photo or a picture in one of those"
        )
    return image


def fit(data: bytes) -> tuple[bytes, str, int, int]:
    """The picture in ``data`` made fit for email: its bytes, its extension, its width and height."""
    image = _opened(data)
    image = ImageOps.exif_transpose(image) or image
    if image.width > MAX_WIDTH:
        height = max(1, round(image.height * MAX_WIDTH / image.width))
        image = image.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
    keeps_alpha = image.mode in ("RGBA", "LA", "P") and image.format != "JPEG"
    clean = Image.new("RGBA" if keeps_alpha else "RGB", image.size)
    clean.paste(image.convert(clean.mode))  # the pixels alone: no metadata is carried over
    out = io.BytesIO()
    if keeps_alpha:
        clean.save(out, "PNG", optimize=True)
        return out.getvalue(), "png", clean.width, clean.height
    clean.save(out, "JPEG", quality=85, optimize=True, progressive=True)
    return out.getvalue(), "jpg", clean.width, clean.height


def store(folder: Path, data: bytes) -> Stored:
    """Make the picture in ``data`` fit for email and write it into ``folder`` (a campaign's);
    ImageRefused (field ``image``) naming what is wrong when it is not a picture we take."""
    return _write(folder, fit(data))


def _write(folder: Path, fitted: tuple[bytes, str, int, int]) -> Stored:
    encoded, ext, width, height = fitted
    name = f"image-{hashlib.sha256(encoded).hexdigest()[:16]}.{ext}"
    target = folder / name
    if not target.exists():
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".upload.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encoded)
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        finally:
            Path(temp).unlink(missing_ok=True)
    return Stored(name, width, height)


def attach(
    workspace: Path,
    slug: str,
    item: int,
    data: bytes,
    alt: str,
    *,
    expected_version: str,
    item_order: list[str],
) -> Saved:
    """Store the picture in ``data`` in the campaign's folder and make it the image of item number
    ``item`` (from 0), described by ``alt`` (required: read aloud to those who cannot see it).
    ``item_order``: the order of an item's keys (the image is put in its place)."""
    alt = " ".join(alt.split())
    if not alt:
        raise ImageRefused(
            "describe the picture",
            field="alt",
            hint="say in a few words what it shows, for those who cannot see it",
        )
    if len(alt) > MAX_ALT:
        raise ImageRefused(
            "the description is too long", field="alt", hint=f"use at most {MAX_ALT} characters"
        )
    folder = workspace / "campaigns" / slug
    fitted = fit(data)  # refused before the issue is opened

    def change(doc: MutableMapping[str, Any]) -> None:
        items = doc.get("items")
        if not isinstance(items, list) or not 0 <= item < len(items) or not isinstance(items[item], dict):
            raise ImageRefused("that item is no longer in the issue", field="item", hint="reload the page")
        stored = _write(folder, fitted)  # only for an issue as it was opened, with that item
        set_image(items[item], {"src": stored.name, "alt": alt, "width": min(stored.width, 600)}, item_order)

    return edit(workspace, slug, change, expected_version=expected_version)
