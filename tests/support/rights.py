"""One person held in every place mailer keeps people (docs/data.md): a member imported from a CSV
in the workspace (with a second row of theirs rejected into ``members.rejected.csv``), sent the Kent
newsletter through the Maildir outbox, a bounce of it processed from the inbound Maildir (so its
record, its diagnostic and the processed copy hold the address), a mail from them in the
quarantine, their answer to an event of the newsletter, and a desk account with a role and a
session. ``held`` builds it; ``occurrences``
greps the bytes of the database and the workspace for what identifies them."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from mailer import sending as delivery
from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import people, sessions
from mailer.inbound.process import process_source
from mailer.models import Delivery, EventRow, Member, Rsvp
from mailer.settings import Settings
from support.bounces import adapt, make_maildir
from support.sending import SLUG, add_campaign, send

ADDRESS = "annabel.q@example.org"
NAME = "Annabel Quillfeather"
POSTCODE = "CT4 7QZ"
OTHER = "bob.other@example.org"
CSV = (
    "email,name,postcode,region,interests,consent_source,consent_date\n"
    f"{ADDRESS},{NAME},{POSTCODE},kent,refugees,signup,2024-03-01\n"
    f"{OTHER},Bob Other,,kent,,signup,2024-03-01\n"
    f"{ADDRESS.upper()},{NAME},{'X' * 40},kent,,signup,2024-03-01\n"  # rejected: postcode too long
)


def held(db: Database, settings: Settings, shape: Shape, workspace: Path) -> Settings:
    """Build the story above; the settings with the inbound Maildir (``inbox/``) named."""
    settings = replace(settings, inbound_maildir="inbox")
    add_campaign(workspace)
    path = workspace / "members.csv"
    path.write_text(CSV, encoding="utf-8")
    with db.session() as session:
        report = import_csv(session, path, shape)
    assert report.rejected == 1 and (workspace / "members.rejected.csv").exists()
    delivery.enqueue(db, delivery.prepare(db, settings, shape, SLUG))
    send(db, settings, f"maildir://{workspace / 'outbox'}")
    with db.session() as session:
        delivery_id = session.scalar(
            select(Delivery.id).join(Member, Member.id == Delivery.member_id).where(Member.email == ADDRESS)
        )
    assert delivery_id is not None
    with (
        db.session() as session
    ):  # their answer to the newsletter's first event (the events are synced as it is sent)
        event_id = session.scalars(select(EventRow.id).order_by(EventRow.id)).first()
        member_id = session.scalar(select(Member.id).where(Member.email == ADDRESS))
        assert event_id is not None
        session.add(Rsvp(event_id=event_id, member_id=member_id, name=NAME, answer="yes"))
    bounce = adapt("exim-mailbox-full.eml", delivery_id, ADDRESS, keys=settings.secrets)
    inbox = make_maildir(workspace / "inbox", [bounce])
    process_source(db, settings, inbox)
    quarantine = inbox / ".quarantine" / "cur"
    quarantine.mkdir(parents=True, exist_ok=True)
    (quarantine / "1.host:2,").write_bytes(f"From: {NAME} <{ADDRESS}>\nSubject: \xff\n\n\x00".encode())
    now = datetime.now(UTC)
    with db.session() as session:
        role = people.check_role(shape, settings, "admin")
        user_id = people.add(session, ADDRESS, role, name=NAME, by=None, now=now).person.id
        sessions.create(session, user_id, now=now, user_agent="Mozilla/5.0 (X11; Linux) Firefox/140.0")
    return settings


def database_bytes(db: Database, url: str) -> bytes:
    """The database as stored: the SQLite file and its WAL, or a ``pg_dump`` of the PostgreSQL one."""
    if url.startswith("sqlite"):
        db.dispose()  # the last connection's close checkpoints what is left in the WAL
        path = Path(url.removeprefix("sqlite:///"))
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    return subprocess.run(
        ["pg_dump", "--no-owner", plain], check=True, capture_output=True, timeout=60
    ).stdout


def workspace_bytes(workspace: Path) -> dict[str, bytes]:
    """Every file of the workspace but the database's own, by path."""
    return {
        str(p.relative_to(workspace)): p.read_bytes()
        for p in sorted(workspace.rglob("*"))
        if p.is_file() and not p.name.startswith("mailer.db")
    }


def occurrences(data: bytes, words: tuple[str, ...] = (ADDRESS, NAME, POSTCODE)) -> list[str]:
    """Which of ``words`` ``data`` holds, in any case."""
    low = data.lower()
    return [w for w in words if w.lower().encode() in low]
