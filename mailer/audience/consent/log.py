"""The consent log: one line appended per change, never rewritten."""

from __future__ import annotations

from datetime import datetime
from typing import Final, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from mailer.models import ConsentEvent, utcnow

IMPORT_SOURCE: Final = "import"
"""The source of an imported member's ``subscribe`` event when the file names none."""

consent_table = cast(Table, ConsentEvent.__table__)


def stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def log_line(
    session: Session,
    member_id: int | None,
    digest: str,
    action: str,
    source: str,
    *,
    campaign: str | None = None,
    detail: str = "",
    wording: str = "",
    network: str | None = None,
    form: str | None = None,
    wording_version: str | None = None,
) -> None:
    """Append one line to the consent log (``network``, ``form``, ``wording_version``: where a
    sign-up came from and which words it agreed to)."""
    session.add(
        ConsentEvent(
            member_id=member_id,
            address_hash=digest,
            action=action,
            source=source,
            wording=wording,
            campaign=campaign,
            detail=detail,
            created_at=utcnow(),
            network=network,
            form=form,
            wording_version=wording_version,
        )
    )
