"""CSRF protection for the web app's forms: the signed double-submit cookie (OWASP).

A page with a form sets a cookie holding a random nonce (``mailer_csrf``, HttpOnly, SameSite=Lax)
and puts in the form a hidden field holding HMAC(key, scope, nonce), where the scope is the path the
form posts to (so a value from one member's page is no good on another's). A POST is accepted only
when the cookie's nonce and the field's MAC agree under one of the server's keys. Another site can
make a browser post a form, but it can neither read nor set our cookie, nor compute the MAC.

The one-click unsubscribe of RFC 8058 (``List-Unsubscribe=One-Click``) is exempt by design: mail
providers post it without cookies, and the signed token in its URL is what authorises it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "mailer_csrf"
FIELD = "csrf"
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")


@dataclass(frozen=True)
class CsrfToken:
    """The form field's value, and the nonce to set as the cookie when the request had none."""

    value: str
    new_cookie: str | None


class Csrf:
    """Issues and checks CSRF values with ``keys`` (newest first: the first signs, any verifies)."""

    def __init__(self, keys: list[str], *, secure: bool) -> None:
        if not keys:
            raise ValueError("CSRF protection needs at least one key")
        self._keys = [k.encode("utf-8") for k in keys]
        self.secure = secure

    def _mac(self, key: bytes, scope: str, nonce: str) -> str:
        msg = f"mailer-csrf-v1\0{scope}\0{nonce}".encode()
        return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def _nonce(request: Request) -> str | None:
        nonce = request.cookies.get(COOKIE, "")
        return nonce if _NONCE.fullmatch(nonce) else None

    def issue(self, request: Request, scope: str) -> CsrfToken:
        """The value for a form that posts to ``scope``, reusing the request's cookie if it has one."""
        nonce = self._nonce(request)
        new = None
        if nonce is None:
            nonce = new = secrets.token_urlsafe(24)
        return CsrfToken(self._mac(self._keys[0], scope, nonce), new)

    def set_cookie(self, response: Response, token: CsrfToken) -> None:
        if token.new_cookie is not None:
            response.set_cookie(
                COOKIE, token.new_cookie, httponly=True, samesite="lax", secure=self.secure, path="/"
            )

    def check(self, request: Request, form: Mapping[str, object], scope: str) -> bool:
        """Whether the form posted to ``scope`` carries a value matching the request's cookie."""
        nonce = self._nonce(request)
        value = form.get(FIELD)
        if nonce is None or not isinstance(value, str) or not value or not value.isascii():
            return False  # (compare_digest takes ASCII strings only)
        return any(hmac.compare_digest(self._mac(key, scope, nonce), value) for key in self._keys)
