"""The access log cuts a desk sign-in link's token as it cuts every member's: whoever reads the log
must not be able to sign in as an editor with it."""

from __future__ import annotations

import logging
import secrets

from mailer.web.logs import PREFIX, RedactingFilter, redact


def test_a_sign_in_link_is_cut_in_the_access_log() -> None:
    token = secrets.token_urlsafe(32)
    # uvicorn's access record: '%s - "%s %s HTTP/%s" %d' with the path as an argument.
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/desk/sign-in/{token}", "1.1", 200),
        None,
    )
    assert RedactingFilter().filter(record)
    line = record.getMessage()
    assert f"/desk/sign-in/{token[:PREFIX]}..." in line and token not in line
    posted = redact(
        f'"POST /desk/sign-in/{token} HTTP/1.1" 303 https://news.example.org/desk/sign-in/{token}'
    )
    assert token not in posted and token[: PREFIX + 1] not in posted
    assert redact("GET /desk/sign-in HTTP/1.1") == "GET /desk/sign-in HTTP/1.1"
