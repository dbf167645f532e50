"""The app's own scripts and styles (``mailer/web/static/``) at ``/static/…``, cached for a year:
a page names each by ``url(name)``, which carries a hash of the file's content, so a changed file
gets a new address. Nothing comes from another site (the pages' CSP allows scripts from 'self' only)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

FOLDER = Path(__file__).resolve().parent / "static"
CACHE = "public, max-age=31536000, immutable"


@cache
def url(name: str) -> str:
    """The address of ``static/<name>``, with its content's hash."""
    digest = hashlib.sha256((FOLDER / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


class _Cached(StaticFiles):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") in (200, 304):
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", CACHE.encode())]}
            await send(message)

        await super().__call__(scope, receive, send_cached)


route = Mount("/static", app=_Cached(directory=FOLDER), name="static")
