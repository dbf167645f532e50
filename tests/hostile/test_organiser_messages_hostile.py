"""An organiser's message to the people coming to an event, against hostile posts (docs/events.md,
Messages to the people coming): a subject with CR/LF (a header injected) or other line breaks, an
over-long subject or body, control characters, a forged or foreign event uid, a post without or
with a forged CSRF value, a post by nobody. Each is refused with a page that says why (400) or 403,
nothing is stored or queued, and nothing answers with a 5xx. Both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from support.desk import BASE, TestClient, csrf_of
from support.events import GROUP_EVENT
from support.organiser import confirm, coordinator, gathering, write
from support.smtp_server import SmtpTestServer

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.events.organiser import BODY_LIMIT, SUBJECT_LIMIT
from mailer.models import EventMail, OrganiserMessage
from mailer.settings import Settings

PATH = f"/desk/events/{GROUP_EVENT}/message"


def stored(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return (
            int(s.scalar(select(func.count()).select_from(OrganiserMessage)) or 0),
            int(s.scalar(select(func.count()).select_from(EventMail)) or 0),
        )


def test_hostile_messages_are_refused_and_nothing_is_queued(
    settings: Settings, db: Database, shape: Shape, workspace: Path, smtp_server: SmtpTestServer
) -> None:
    met = gathering(settings, db, shape, workspace, smtp_server)
    met.desk.raise_server_exceptions = False
    with met.desk.client():
        mine = coordinator(met.desk, "mms-coordinator@example.org", "maidstone-medway-swale")
        csrf = csrf_of(mine.get(f"/desk/events/{GROUP_EVENT}").text)
        subjects = {
            "CR/LF and a header": "Hello\r\nBcc: everyone@example.net",
            "a bare LF": "Hello\nX-Evil: 1",
            "a bare CR": "Hello\rX-Evil: 1",
            "a Unicode line separator": "Hello\u2028X-Evil: 1",
            "a NUL": "Hello\x00there",
            "too long": "x" * (SUBJECT_LIMIT + 1),
            "empty": "   ",
        }
        for why, subject in subjects.items():
            for step in ("preview", "send") if why == "CR/LF and a header" else ("send",):
                data = {"csrf": csrf, "step": step, "subject": subject, "body": "Hello"}
                got = mine.post(PATH, data=data)
                assert got.status_code == 400, (why, step)
                assert 'id="subject-error"' in got.text and "Nothing was sent" in got.text, why
        bodies = {
            "too long": "y" * (BODY_LIMIT + 1),
            "far too long": "z" * (BODY_LIMIT * 10),
            "an escape character": "Hello \x1b[31mred",
            "empty": "\r\n\r\n",
        }
        for why, body in bodies.items():
            for step in ("send",):
                got = mine.post(PATH, data={"csrf": csrf, "step": step, "subject": "Hi", "body": body})
                assert got.status_code == 400, (why, step)
                assert 'id="body-error"' in got.text, why
        long = mine.post(PATH, data={"csrf": csrf, "step": "preview", "subject": "Hi", "body": "y" * 6000})
        assert "6,000 characters long, more than 5,000" in long.text

        # Forged uids: no such event, another group's, odd paths; the same 403 as "not yours".
        for uid in (f"{GROUP_EVENT}-nope", "2025-11-kent-network-calendar-2", "x" * 400, "%00", "..%2F.."):
            got = mine.post(
                f"/desk/events/{uid}/message",
                data={"csrf": csrf, "step": "send", "subject": "Hi", "body": "Hello"},
            )
            assert got.status_code in (400, 403, 404), uid  # 400: a NUL in a path is refused before routing
            assert got.status_code < 500

        # Without a CSRF value, with a forged one, by nobody: 403.
        for data in (
            {"step": "send", "subject": "Hi", "body": "Hello"},
            {"csrf": "forged", "step": "send", "subject": "Hi", "body": "Hello"},
        ):
            assert mine.post(PATH, data=data).status_code == 403
        with TestClient(met.desk.app, base_url=BASE) as nobody:
            assert nobody.post(
                PATH, data={"csrf": csrf, "step": "send", "subject": "Hi", "body": "Hello"}
            ).status_code in (403, 303)

        # A header can't come in through the body either: it is the mail's text, after the headers.
        assert stored(db) == (0, 0)
        preview = write(mine, GROUP_EVENT, "Plain subject", "Bcc: everyone@example.net\r\n\r\nHello")
        assert preview.status_code == 200
        assert confirm(mine, GROUP_EVENT, preview).status_code == 200
    assert stored(db) == (1, 4)
