"""Secrets kept out of what mailer prints: the password of a URL becomes ``***``.

``redact_url`` is for a value known to be a URL (a relay, a database URL), however malformed;
``redact`` finds such URLs inside any text (an error message, a library's exception) and redacts
each. Every message that shows a configured URL goes through one of them.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@ — the userinfo runs to the last "@" before the host's end (a "/", "?", "#",
# white space or a quote), so a password holding an unencoded "@" is still hidden whole.
_URL_WITH_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#'\"<>]*)@")


def _userinfo(userinfo: str) -> str:
    user, colon, _password = userinfo.partition(":")
    return f"{user}:{MASK}" if colon else userinfo


def redact_url(url: str) -> str:
    """``url`` with its password (``user:password@``) replaced by ``***``; the rest unchanged.

    Works on malformed URLs too (an unclosed ``[``, a bad port, an unencoded ``/`` or ``@`` in the
    password): everything between ``://`` and the last ``@`` is taken as the user and password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    return f"{scheme}://{_userinfo(userinfo)}@{host}"


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it replaced by ``***``."""
    if "://" not in text:
        return text
    return _URL_WITH_USERINFO.sub(lambda m: f"{m['scheme']}{_userinfo(m['userinfo'])}@", text)


__all__ = ["MASK", "redact", "redact_url"]
