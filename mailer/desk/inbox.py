"""Contributions from local groups: stored, listed, accepted into an issue or declined.
The pages are ``mailer.web.desk.contributions``; the forms' checks, ``contribution_forms``.

A contributor (a local group: a region) sends an event or an item to their network's inbox. A row
(``contributions``) keeps the form's checked values as JSON; the issue entry is made from them again
when the editor edits or accepts it. Accepting writes the entry into one of the network's issues
(``campaigns/<slug>/issue.yaml``) through ``mailer.desk.issuefile``, which keeps the file's
comments and order; the row is claimed first (``claim``), so two editors never both decide it. An
accepted event is in its region's calendar feeds at once (``accepted_events``, read by
``mailer.web.calendars``), until its issue is sent and the issue's own entry takes over. Every
action is in the audit log (``contribution.submit``, ``.edit``, ``.accept``, ``.decline``), with
mailer's own words only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.desk import audit, issuefile
from mailer.desk.contribution_forms import Checked
from mailer.desk.issuefile import record_edit
from mailer.issue.schema import Event
from mailer.models import Contribution, User

STATUSES = ("new", "accepted", "declined")
NOTE_LIMIT = 2000

# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class Entry:
    """A contribution as the inbox shows it."""

    id: int
    network: str
    region: str
    kind: str
    title: str
    values: dict[str, Any]
    status: str
    submitted_by: int | None
    submitter: str  # their address, "" if they are gone
    decided_by: int | None
    issue_slug: str
    note: str
    created_at: datetime
    decided_at: datetime | None
    accepted: dict[str, Any]

    @property
    def day(self) -> str:
        """An event's first day (YYYY-MM-DD), "" for an item."""
        return str(self.values.get("date", "")) if self.kind == "event" else ""


def _entry(row: Contribution, email: str | None) -> Entry:
    try:
        stored = json.loads(row.fields)
    except ValueError:
        stored = {}
    stored = stored if isinstance(stored, dict) else {}
    values = stored.get("form")
    accepted = stored.get("accepted")
    return Entry(
        id=row.id,
        network=row.network,
        region=row.region,
        kind=row.kind,
        title=row.title,
        values=values if isinstance(values, dict) else {},
        status=row.status,
        submitted_by=row.submitted_by,
        submitter=email or "",
        decided_by=row.decided_by,
        issue_slug=row.issue_slug,
        note=row.note,
        created_at=row.created_at,
        decided_at=row.decided_at,
        accepted=accepted if isinstance(accepted, dict) else {},
    )


def _fields(values: dict[str, Any], accepted: dict[str, Any] | None = None) -> str:
    data: dict[str, Any] = {"form": values}
    if accepted:
        data["accepted"] = accepted
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def submit(session: Session, network: str, checked: Checked, *, by: int, now: datetime) -> int:
    """Store a checked contribution in ``network``'s inbox; its id."""
    assert checked.ok
    row = Contribution(
        network=network,
        region=str(checked.values["region"]),
        kind=checked.kind,
        title=str(checked.values["title"]),
        fields=_fields(checked.values),
        status="new",
        submitted_by=by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "contribution.submit",
        by=by,
        object=f"contribution {row.id}",
        detail=f"{checked.kind} for {network or 'the network'}/{row.region or 'all'}",
        now=now,
    )
    return row.id


def listed(
    session: Session, network: str, *, status: str | None = None, submitted_by: int | None = None
) -> list[Entry]:
    """``network``'s contributions, newest first: only those in ``status``, or by ``submitted_by``."""
    query = (
        select(Contribution, User.email)
        .outerjoin(User, User.id == Contribution.submitted_by)
        .where(Contribution.network == network)
        .order_by(Contribution.id.desc())
    )
    if status is not None:
        query = query.where(Contribution.status == status)
    if submitted_by is not None:
        query = query.where(Contribution.submitted_by == submitted_by)
    return [_entry(row, email) for row, email in session.execute(query).all()]


def one(session: Session, network: str, contribution_id: int) -> Entry | None:
    """The contribution ``contribution_id`` if it is in ``network``'s inbox (else None)."""
    found = session.execute(
        select(Contribution, User.email)
        .outerjoin(User, User.id == Contribution.submitted_by)
        .where(Contribution.id == contribution_id, Contribution.network == network)
    ).first()
    return None if found is None else _entry(found[0], found[1])


def edit(
    session: Session, network: str, contribution_id: int, checked: Checked, *, by: int, now: datetime
) -> str:
    """Replace a new contribution's fields with the editor's checked ones: "done", "missing" (not in
    ``network``) or "decided" (accepted or declined already)."""
    row = session.get(Contribution, contribution_id, with_for_update=True)
    if row is None or row.network != network or row.kind != checked.kind:
        return "missing"
    if row.status != "new":
        return "decided"
    row.title = str(checked.values["title"])
    row.region = str(checked.values["region"])
    row.fields = _fields(checked.values)
    audit.record(
        session, "contribution.edit", by=by, object=f"contribution {row.id}", detail=row.kind, now=now
    )
    return "done"


def claim(
    session: Session, network: str, contribution_id: int, *, by: int, now: datetime, status: str
) -> str:
    """Mark a new contribution ``status`` (accepted or declined) by ``by``, so no second editor
    decides it too: "done", "missing" or "decided"."""
    row = session.get(Contribution, contribution_id, with_for_update=True)
    if row is None or row.network != network:
        return "missing"
    if row.status != "new":
        return "decided"
    row.status, row.decided_by, row.decided_at = status, by, now
    return "done"


def release(session: Session, contribution_id: int) -> None:
    """Undo ``claim`` (the issue could not take it): new again."""
    row = session.get(Contribution, contribution_id, with_for_update=True)
    if row is not None:
        row.status, row.decided_by, row.decided_at, row.issue_slug = "new", None, None, ""


def accepted(
    session: Session,
    contribution_id: int,
    *,
    slug: str,
    issue_title: str,
    placed: str,
    event: dict[str, Any] | None,
    by: int,
    now: datetime,
    version: str | None = None,
) -> None:
    """Record a claimed contribution as accepted into issue ``slug`` (``placed``: calendar, item,
    or under:<item id>), with the event the issue now holds (for the calendar feeds); with the
    issue file's ``version`` as written, ``by`` is its last editor (``issuefile.record_edit``)."""
    if version is not None:
        record_edit(session, slug, by, version, now=now)
    row = session.get(Contribution, contribution_id, with_for_update=True)
    assert row is not None
    stored = _entry(row, None)
    info: dict[str, Any] = {"issue": slug, "issue_title": issue_title, "as": placed}
    if event is not None:
        info["event"] = event
    row.issue_slug = slug
    row.fields = _fields(stored.values, info)
    audit.record(
        session,
        "contribution.accept",
        by=by,
        object=f"contribution {row.id}",
        detail=f"{row.kind} into {slug} as {placed}",
        now=now,
    )


def declined(session: Session, contribution_id: int, note: str, *, by: int, now: datetime) -> None:
    """Record a claimed contribution as declined, with the editor's note."""
    row = session.get(Contribution, contribution_id, with_for_update=True)
    assert row is not None
    row.note = note
    audit.record(
        session, "contribution.decline", by=by, object=f"contribution {row.id}", detail=row.kind, now=now
    )


def decline(
    session: Session, network: str, contribution_id: int, note: str, *, by: int, now: datetime
) -> str:
    """Decline a contribution still new with ``note`` for its contributor: "done", or the
    outcome of ``claim`` when someone decided it first."""
    outcome = claim(session, network, contribution_id, by=by, now=now, status="declined")
    if outcome == "done":
        declined(session, contribution_id, note, by=by, now=now)
    return outcome


# ---------------------------------------------------------------------------------------------
# Into an issue's file


def write_into_issue(
    workspace: Path,
    shape: Shape,
    slug: str,
    kind: str,
    placed: str,
    entry: dict[str, Any],
    *,
    highlight: str = "",
    description: str = "",
) -> tuple[str, dict[str, Any] | None]:
    """Write the checked ``entry`` into issue ``slug`` where ``placed`` says: the file's new
    version, and the event as the issue now holds it (None for an item)."""
    if kind == "item":
        news = {**entry, "id": slug_of_title(str(entry["title"]), _item_ids(workspace, slug))}
        return issuefile.add_item(workspace, slug, news, expected_version=None, shape=shape), None
    if placed == "calendar":
        return issuefile.add_event(
            workspace, slug, entry, to_item=None, expected_version=None, shape=shape
        ), entry
    if placed.startswith("under/"):
        item_id = placed.removeprefix("under/")
        version = issuefile.add_event(
            workspace, slug, entry, to_item=item_id, expected_version=None, shape=shape
        )
        return version, entry
    # A new item holding the event: the event's description is its text.
    item: dict[str, Any] = {
        "id": slug_of_title(str(entry["title"]), _item_ids(workspace, slug)),
        "title": entry["title"],
        "highlight": highlight or entry["title"],
        "body": description,
    }
    if entry.get("regions"):
        item["regions"] = list(entry["regions"])
    item["events"] = [entry]
    return issuefile.add_item(workspace, slug, item, expected_version=None, shape=shape), entry


def _item_ids(workspace: Path, slug: str) -> set[str]:
    items = issuefile.IssueFile.open(workspace, slug).data().get("items")
    return {str(i.get("id")) for i in items if isinstance(i, dict)} if isinstance(items, list) else set()


def slug_of_title(title: str, taken: set[str]) -> str:
    """An item id from ``title`` that is none of ``taken``."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "contribution"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


# ---------------------------------------------------------------------------------------------
# Accepted events, for the calendar feeds


@dataclass(frozen=True)
class AcceptedEvent:
    """An event accepted into an issue, as the issue now holds it."""

    id: int
    network: str
    issue_slug: str
    issue_title: str
    event: Event
    decided_at: datetime


def accepted_events(session: Session) -> list[AcceptedEvent]:
    """Every accepted event that reached its issue (valid as an issue entry), oldest first."""
    rows = session.scalars(
        select(Contribution)
        .where(Contribution.status == "accepted", Contribution.kind == "event")
        .order_by(Contribution.id)
    )
    out = []
    for row in rows:
        info = _entry(row, None).accepted
        data = info.get("event")
        if not isinstance(data, dict) or row.decided_at is None:
            continue
        try:
            event = Event.model_validate(data, context={"shape": None, "folder": None})
        except ValidationError:
            continue
        out.append(
            AcceptedEvent(
                row.id, row.network, row.issue_slug, str(info.get("issue_title", "")), event, row.decided_at
            )
        )
    return out
