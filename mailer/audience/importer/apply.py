"""Merging the checked records into the database: what is there already, the plan, the bulk writes.

Runs in the caller's transaction. New members are inserted in chunks with their interests, fields
and a ``subscribe`` line in the consent log (``consent.subscribe_imported``); existing members get
the file's non-empty cells and new interests. A suppressed address is never resubscribed, and one
with no member record is not added at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, DateTime, String, Table, bindparam, func, select, update
from sqlalchemy import text as sql_text

from mailer.audience import consent
from mailer.audience.bulk import insert_many
from mailer.audience.importer.read import Record
from mailer.audience.importer.report import CHUNK, ImportReport, Notice, Progress
from mailer.errors import MailerError
from mailer.models import Interest, Member, MemberField, MemberInterest, Region, Suppression
from mailer.models import utcnow as _utcnow

LOOKUP_CHUNK = 900  # values in one IN (…): under the 999 parameters of older SQLite builds

members_t = cast(Table, Member.__table__)
interests_t = cast(Table, MemberInterest.__table__)
fields_t = cast(Table, MemberField.__table__)


@dataclass(slots=True)
class Existing:
    id: int
    name: str
    postcode: str
    region: str | None
    interests: set[str] = field(default_factory=set)
    fields: dict[str, str] = field(default_factory=dict)


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _load_existing(conn: Connection, emails: list[str]) -> dict[str, Existing]:
    """Members already in the database among ``emails``, with their interests and fields."""
    region_slugs: dict[int, str] = {id_: slug for id_, slug in conn.execute(select(Region.id, Region.slug))}
    held = conn.scalar(select(func.count()).select_from(members_t)) or 0
    cols = (members_t.c.id, members_t.c.email, members_t.c.name, members_t.c.postcode, members_t.c.region_id)
    rows: list[Any] = []
    whole = held <= 2 * len(emails)  # most of the table is in the file: read it whole
    if whole:
        rows.extend(conn.execute(select(*cols)).all())
    else:
        for chunk in _chunks(emails, LOOKUP_CHUNK):
            rows.extend(conn.execute(select(*cols).where(members_t.c.email.in_(chunk))).all())
    wanted = set(emails)
    existing = {
        r.email: Existing(r.id, r.name, r.postcode, region_slugs.get(r.region_id))
        for r in rows
        if r.email in wanted
    }
    by_id = {e.id: e for e in existing.values()}
    interest_q = select(MemberInterest.member_id, Interest.slug).join(
        Interest, Interest.id == MemberInterest.interest_id
    )
    field_q = select(fields_t.c.member_id, fields_t.c.name, fields_t.c.value)
    ids = list(by_id)
    interest_rows: list[Any] = []
    field_rows: list[Any] = []
    if whole:
        interest_rows.extend(conn.execute(interest_q).all())
        field_rows.extend(conn.execute(field_q).all())
    else:
        for id_chunk in _chunks(ids, LOOKUP_CHUNK):
            interest_rows.extend(conn.execute(interest_q.where(MemberInterest.member_id.in_(id_chunk))).all())
            field_rows.extend(conn.execute(field_q.where(fields_t.c.member_id.in_(id_chunk))).all())
    for member_id, slug in interest_rows:
        if member_id in by_id:
            by_id[member_id].interests.add(slug)
    for member_id, name, value in field_rows:
        if member_id in by_id:
            by_id[member_id].fields[name] = value
    return existing


def _load_suppressions(conn: Connection, hashes: list[str]) -> dict[str, str]:
    """Reason of each suppressed hash among ``hashes``."""
    held = conn.scalar(select(func.count()).select_from(Suppression)) or 0
    q = select(Suppression.address_hash, Suppression.reason)
    found: dict[str, str] = {}
    if held <= 2 * len(hashes):
        found.update((h, reason) for h, reason in conn.execute(q))
    else:
        for chunk in _chunks(hashes, LOOKUP_CHUNK):
            found.update(
                (h, reason) for h, reason in conn.execute(q.where(Suppression.address_hash.in_(chunk)))
            )
    wanted = set(hashes)
    return {h: reason for h, reason in found.items() if h in wanted}


@dataclass
class Plan:
    new: list[Record] = field(default_factory=list)
    updates: list[tuple[int, Record, Existing]] = field(default_factory=list)


def plan_import(conn: Connection, records: dict[str, Record], report: ImportReport) -> Plan:
    """Decide, for each record, to add, update or leave it, counting each in ``report``; a
    suppressed address stays suppressed and, without a member record, is not added."""
    existing = _load_existing(conn, list(records))
    suppressed = _load_suppressions(conn, [r.address_hash for r in records.values()])

    plan = Plan()
    for email, record in records.items():
        reason = suppressed.get(record.address_hash)
        old = existing.get(email)
        if reason is not None:
            report.suppressed += 1
            if old is None:
                report.not_added += 1
                note = f"suppressed ({reason}): kept suppressed, not added"
                report.kept_suppressed.append(Notice(record.row, email, note))
                continue
            report.kept_suppressed.append(
                Notice(record.row, email, f"suppressed ({reason}): kept suppressed")
            )
        if old is None:
            plan.new.append(record)
            report.added += 1
        elif _changes(record, old):
            plan.updates.append((old.id, record, old))
            report.updated += 1
        else:
            report.unchanged += 1
    return plan


def apply(conn: Connection, plan: Plan, path: Path, progress: Progress | None) -> None:
    """Write ``plan`` (from the file at ``path``) into the database, in chunks."""
    with _big_cache(conn):
        _apply(conn, plan, path, progress)


@contextmanager
def _big_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a page cache big enough for the indexes of a large import (default: 2 MB)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MiB, allocated only as used
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


def _changes(record: Record, old: Existing) -> bool:
    return bool(
        (record.name and record.name != old.name)
        or (record.postcode and record.postcode != old.postcode)
        or (record.region is not None and record.region != old.region)
        or not record.interests <= old.interests
        or any(old.fields.get(k) != v for k, v in record.fields.items())
    )


def _ids(
    conn: Connection, model: type[Region] | type[Interest], wanted: Iterable[str], what: str
) -> dict[str, int]:
    ids: dict[str, int] = {slug: id_ for slug, id_ in conn.execute(select(model.slug, model.id))}
    missing = sorted(set(wanted) - set(ids))
    if missing:
        raise MailerError(
            f"{what} {', '.join(missing)} not in the database yet",
            hint="run `mailer lists sync` to load lists/regions.toml and lists/interests.toml first",
        )
    return ids


_NEXT_MEMBER_IDS = sql_text(
    "SELECT nextval(pg_get_serial_sequence('members', 'id')) FROM generate_series(1, :n)"
)


def _new_member_ids(conn: Connection, count: int) -> list[int]:
    """Ids for ``count`` new members, taken before they are inserted.

    PostgreSQL: from the table's sequence. SQLite: after the largest id. SQLite has one writer at a
    time and from the first chunk on this transaction holds the write lock; a member added by
    another process in the instant before the first chunk is written makes the insert fail on the
    primary key, and the whole import rolls back: an error, never a half-done import.
    """
    if conn.dialect.name == "postgresql":
        return list(conn.execute(_NEXT_MEMBER_IDS, {"n": count}).scalars())
    start = (conn.scalar(select(func.max(members_t.c.id))) or 0) + 1
    return list(range(start, start + count))


def _apply(conn: Connection, plan: Plan, path: Path, progress: Progress | None) -> None:
    records = [r for r in plan.new] + [r for _id, r, _old in plan.updates]
    region_ids = _ids(conn, Region, {r.region for r in records if r.region}, "region(s)")
    interest_ids = _ids(conn, Interest, {s for r in records for s in r.interests}, "interest(s)")
    total = len(records)
    done = 0

    # The timestamp as the dialect stores it (text on SQLite), converted once rather than per row.
    naive = _utcnow().astimezone(UTC).replace(tzinfo=None)
    to_db = DateTime().bind_processor(conn.dialect)
    stamp = to_db(naive) if to_db else naive
    stamp_type = String() if conn.dialect.name == "sqlite" else DateTime()

    for chunk in _chunks(plan.new):
        ids = _new_member_ids(conn, len(chunk))
        member_rows = [
            {
                "id": i,
                "email": r.email,
                "address_hash": r.address_hash,
                "name": r.name,
                "postcode": r.postcode,
                "region_id": region_ids[r.region] if r.region else None,
                "created_at": stamp,
                "updated_at": stamp,
            }
            for i, r in zip(ids, chunk, strict=True)
        ]
        insert_many(conn, members_t, member_rows)
        pairs = [
            {"member_id": i, "interest_id": interest_ids[s]}
            for i, r in zip(ids, chunk, strict=True)
            for s in r.interests
        ]
        if pairs:
            insert_many(conn, interests_t, pairs)
        values = [
            {"member_id": i, "name": k, "value": v}
            for i, r in zip(ids, chunk, strict=True)
            for k, v in r.fields.items()
        ]
        if values:
            insert_many(conn, fields_t, values)
        consent.subscribe_imported(
            conn,
            [
                (i, r.address_hash, r.consent_source, _detail(path, r))
                for i, r in zip(ids, chunk, strict=True)
            ],
            at=stamp,
        )
        done += len(chunk)
        if progress is not None:
            progress("write", done, total)

    update_member = (
        update(members_t)
        .where(members_t.c.id == bindparam("b_id"))
        .values(
            name=bindparam("b_name"),
            postcode=bindparam("b_postcode"),
            region_id=bindparam("b_region_id"),
            updated_at=bindparam("b_updated_at", type_=stamp_type),
        )
    )
    update_field = (
        update(fields_t)
        .where(fields_t.c.member_id == bindparam("b_member_id"), fields_t.c.name == bindparam("b_name"))
        .values(value=bindparam("b_value"))
    )
    for chunk_ in _chunks(plan.updates):
        rows, pairs, new_fields, changed_fields = [], [], [], []
        for member_id, r, old in chunk_:
            region = r.region or old.region
            rows.append(
                {
                    "b_id": member_id,
                    "b_name": r.name or old.name,
                    "b_postcode": r.postcode or old.postcode,
                    "b_region_id": region_ids[region] if region else None,
                    "b_updated_at": stamp,
                }
            )
            pairs.extend(
                {"member_id": member_id, "interest_id": interest_ids[s]}
                for s in sorted(r.interests - old.interests)
            )
            for k, v in r.fields.items():
                if k not in old.fields:
                    new_fields.append({"member_id": member_id, "name": k, "value": v})
                elif old.fields[k] != v:
                    changed_fields.append({"b_member_id": member_id, "b_name": k, "b_value": v})
        conn.execute(update_member, rows)
        if pairs:
            insert_many(conn, interests_t, pairs)
        if new_fields:
            insert_many(conn, fields_t, new_fields)
        if changed_fields:
            conn.execute(update_field, changed_fields)
        done += len(chunk_)
        if progress is not None:
            progress("write", done, total)


def _detail(path: Path, record: Record) -> str:
    detail = f"imported from {path.name} line {record.row}"
    if record.consent_date:
        detail += f"; consent given {record.consent_date}"
    return detail
