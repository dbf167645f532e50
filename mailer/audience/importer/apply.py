"""Merging checked records into the database, a chunk at a time: what is there already, the plan,
the bulk writes.

Runs in the caller's transaction. For each chunk the members already held among its addresses are
looked up (with their interests and fields) and its suppressed addresses; new members are inserted
with their interests, fields and a ``subscribe`` line in the consent log
(``consent.subscribe_imported``); existing members get the file's non-empty cells and new
interests. A suppressed address is never resubscribed, and one with no member record is not added
at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    DateTime,
    String,
    Table,
    any_,
    bindparam,
    exists,
    func,
    select,
    update,
)
from sqlalchemy import text as sql_text

from mailer.audience import consent
from mailer.audience.bulk import insert_many, insert_rows
from mailer.audience.importer.check import Record
from mailer.audience.importer.report import ImportReport, Kept, KeptRows, Notice
from mailer.audience.mailable import CLEANED, NOT_OPTED_IN, SUBSCRIBED, UNSUBSCRIBED, worse
from mailer.errors import MailerError
from mailer.models import (
    Interest,
    Member,
    MemberChoice,
    MemberField,
    MemberInterest,
    Region,
    Suppression,
)
from mailer.models import utcnow as _utcnow

LOOKUP_CHUNK = 900  # values in one IN (…): under the 999 parameters of older SQLite builds
CACHE_KIB = 32 * 1024  # SQLite's page cache during an import (its default is 2 MB)

members_t = cast(Table, Member.__table__)
interests_t = cast(Table, MemberInterest.__table__)
fields_t = cast(Table, MemberField.__table__)
suppressions_t = cast(Table, Suppression.__table__)
MEMBER_COLUMNS = (
    "id",
    "email",
    "address_hash",
    "name",
    "postcode",
    "region_id",
    "created_at",
    "updated_at",
    "first_name",
    "status",
    "status_source",
    "status_at",
)
SUPPRESSING = {UNSUBSCRIBED: "unsubscribe", CLEANED: "hard-bounce"}  # status → suppression reason
LOG_ACTIONS = {
    SUBSCRIBED: "subscribe",
    NOT_OPTED_IN: "not-opted-in",
    UNSUBSCRIBED: "unsubscribe",
    CLEANED: "bounce",
}


@dataclass(slots=True)
class Existing:
    id: int
    name: str
    postcode: str
    region: str | None
    interests: set[str] = field(default_factory=set)
    fields: dict[str, str] = field(default_factory=dict)
    status: str = SUBSCRIBED
    first_name: str = ""
    choices: dict[str, str] = field(default_factory=dict)  # field → "source time" the member chose it


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Plan:
    new: list[Record] = field(default_factory=list)
    updates: list[tuple[int, Record, Existing]] = field(default_factory=list)
    # Addresses a "no" in the file suppresses now: (record, member id or None).
    suppress: list[tuple[Record, int | None]] = field(default_factory=list)


_NEXT_MEMBER_IDS = sql_text(
    "SELECT nextval(pg_get_serial_sequence('members', 'id')) FROM generate_series(1, :n)"
)


class Merger:
    """Plans and writes one chunk of records at a time, in ``conn``'s transaction."""

    def __init__(
        self,
        conn: Connection,
        path: Path,
        report: ImportReport,
        kept: KeptRows | None = None,
        *,
        older: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.older = older  # other hashes an erased person's suppression may be under
        self.conn = conn
        self.path = path
        self.report = report
        self.kept = kept or KeptRows(path, report, write=False)
        self.any_choices = bool(conn.scalar(select(exists().select_from(MemberChoice))))
        # An empty table needs no look-ups: every address in the file is new to it (addresses on
        # several rows are merged before they get here).
        self.any_members = bool(conn.scalar(select(exists().select_from(members_t))))
        self.any_suppressed = bool(conn.scalar(select(exists().select_from(Suppression))))
        self.region_ids: dict[str, int] = {s: i for s, i in conn.execute(select(Region.slug, Region.id))}
        self.region_slugs = {id_: slug for slug, id_ in self.region_ids.items()}
        self.interest_ids: dict[str, int] = {
            s: i for s, i in conn.execute(select(Interest.slug, Interest.id))
        }
        # The timestamp as the dialect stores it (text on SQLite), converted once rather than per row.
        naive = _utcnow().astimezone(UTC).replace(tzinfo=None)
        to_db = DateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
        self.stamp = to_db(naive) if to_db else naive
        self.stamp_type = String() if conn.dialect.name == "sqlite" else DateTime()

    # -- planning ---------------------------------------------------------------------------

    def plan(self, records: Sequence[Record]) -> Plan:
        """Decide, for each record, to add, update or leave it, counting each in the report; a
        suppressed address stays suppressed and, without a member record, is not added; a "no" in
        the file suppresses or marks "not opted in"; a member's own choices are kept."""
        existing = self._existing([r.email for r in records]) if self.any_members else {}
        suppressed = self._suppressed_records(records) if self.any_suppressed else {}
        report = self.report
        plan = Plan()
        for record in records:
            report.statuses[record.status] = report.statuses.get(record.status, 0) + 1
            reason = suppressed.get(record.address_hash)
            old = existing.get(record.email)
            if reason is not None:
                report.suppressed += 1
                if old is None:
                    report.not_added += 1
                    note = f"suppressed ({reason}): kept suppressed, not added"
                    report.keep_suppressed(Notice(record.row, record.email, note))
                    continue
                report.keep_suppressed(
                    Notice(record.row, record.email, f"suppressed ({reason}): kept suppressed")
                )
            if old is None:
                self._plan_new(plan, record)
            else:
                self._plan_update(plan, record, old, suppressed=reason is not None)
        return plan

    def _plan_new(self, plan: Plan, record: Record) -> None:
        if record.status in SUPPRESSING:  # a Mailchimp unsubscribed export: suppressed, nobody added
            plan.suppress.append((record, None))
            self.report.newly_suppressed += 1
            self.report.not_added += 1
            return
        if record.status == NOT_OPTED_IN:
            self.report.not_opted_in += 1
        plan.new.append(record)
        self.report.added += 1

    def _plan_update(self, plan: Plan, record: Record, old: Existing, *, suppressed: bool) -> None:
        """An existing member: the file's status only ever makes theirs more final (a "no" wins),
        and a field the member chose themselves is kept as they chose it."""
        report = self.report
        kept = _keep_choices(record, old)
        if kept:
            self.kept.add(kept)
        status = worse(old.status, record.status) or SUBSCRIBED
        if status != old.status and status == NOT_OPTED_IN:
            report.not_opted_in += 1
        record.status = status
        if status in SUPPRESSING and not suppressed:
            plan.suppress.append((record, old.id))
            report.newly_suppressed += 1
        if _changes(record, old):
            plan.updates.append((old.id, record, old))
            report.updated += 1
        else:
            report.unchanged += 1

    def _among(self, column: ColumnElement[Any], values: list[Any]) -> Iterator[ColumnElement[bool]]:
        """Conditions that together select the rows whose ``column`` is one of ``values``:
        PostgreSQL takes them as one array (one query, the same text each time, so it is prepared
        once); SQLite in lists of at most ``LOOKUP_CHUNK``."""
        if self.conn.dialect.name == "postgresql":
            yield column == any_(bindparam("among", values, type_=ARRAY(column.type)))
            return
        for chunk in _chunks(values):
            yield column.in_(chunk)

    def _existing(self, emails: list[str]) -> dict[str, Existing]:
        """Members already in the database among ``emails``, with their interests and fields."""
        conn, m = self.conn, members_t.c
        existing: dict[str, Existing] = {}
        for where in self._among(m.email, emails):
            query = select(m.id, m.email, m.name, m.postcode, m.region_id, m.status, m.first_name)
            for r in conn.execute(query.where(where)):
                existing[r.email] = Existing(
                    r.id,
                    r.name,
                    r.postcode,
                    self.region_slugs.get(r.region_id),
                    status=r.status,
                    first_name=r.first_name,
                )
        if not existing:
            return existing
        by_id = {e.id: e for e in existing.values()}
        slugs = {id_: slug for slug, id_ in self.interest_ids.items()}
        ids = list(by_id)
        interest_q = select(interests_t.c.member_id, interests_t.c.interest_id)
        for where in self._among(interests_t.c.member_id, ids):
            for member_id, interest_id in conn.execute(interest_q.where(where)):
                if interest_id in slugs:  # (one synced since the import began cannot be in the file)
                    by_id[member_id].interests.add(slugs[interest_id])
        field_q = select(fields_t.c.member_id, fields_t.c.name, fields_t.c.value)
        for where in self._among(fields_t.c.member_id, ids):
            for member_id, name, value in conn.execute(field_q.where(where)):
                by_id[member_id].fields[name] = value
        if self.any_choices:
            choices_t = cast(Table, MemberChoice.__table__)
            choice_q = select(
                choices_t.c.member_id, choices_t.c.field, choices_t.c.source, choices_t.c.created_at
            )
            for where in self._among(choices_t.c.member_id, ids):
                for member_id, name, source, at in conn.execute(choice_q.where(where)):
                    by_id[member_id].choices[name] = f"{source} {str(at)[:19]}"
        return existing

    def _suppressed_records(self, records: Sequence[Record]) -> dict[str, str]:
        """Reason of each suppressed record's hash, its suppression found under the newest key's
        hash or, for a person erased earlier, an older one."""
        found = self._suppressed([r.address_hash for r in records])
        if self.older is not None:
            alias = {old: r.address_hash for r in records for old in self.older(r.email)}
            for old, reason in self._suppressed(list(alias)).items():
                found.setdefault(alias[old], reason)
        return found

    def _suppressed(self, hashes: list[str]) -> dict[str, str]:
        """Reason of each suppressed hash among ``hashes``."""
        q = select(Suppression.address_hash, Suppression.reason)
        found: dict[str, str] = {}
        for where in self._among(cast(Table, Suppression.__table__).c.address_hash, hashes):
            found.update((h, reason) for h, reason in self.conn.execute(q.where(where)))
        return found

    # -- writing ----------------------------------------------------------------------------

    def write(self, plan: Plan) -> None:
        """Write ``plan`` (one chunk's) into the database."""
        self._ensure_ids(plan)
        if plan.new:
            self._insert(plan.new)
        if plan.updates:
            self._update(plan.updates)
        if plan.suppress:
            self._suppress(plan.suppress)

    def _suppress(self, suppress: list[tuple[Record, int | None]]) -> None:
        """Suppress each address a "no" in the file names, with a consent-log line, in bulk."""
        stamp = self.stamp
        insert_rows(
            self.conn,
            suppressions_t,
            ("address_hash", "reason", "source", "campaign", "detail", "created_at"),
            [
                (r.address_hash, SUPPRESSING[r.status], "import", None, _detail(self.path, r), stamp)
                for r, _id in suppress
            ],
        )
        self.any_suppressed = True
        consent.log_imported(
            self.conn,
            [(id_, r.address_hash, LOG_ACTIONS[r.status], _detail(self.path, r)) for r, id_ in suppress],
            at=stamp,
        )

    def _ensure_ids(self, plan: Plan) -> None:
        records = [*plan.new, *(r for _id, r, _old in plan.updates)]
        for model, known, wanted, what in (
            (Region, self.region_ids, {r.region for r in records if r.region}, "region(s)"),
            (Interest, self.interest_ids, {s for r in records for s in r.interests}, "interest(s)"),
        ):
            if wanted <= known.keys():
                continue
            known.update((slug, id_) for slug, id_ in self.conn.execute(select(model.slug, model.id)))
            missing = sorted(wanted - known.keys())
            if missing:
                raise MailerError(
                    f"{what} {', '.join(missing)} not in the database yet",
                    hint="run `mailer lists sync` to load lists/regions.toml and lists/interests.toml first",
                )
            if model is Region:
                self.region_slugs = {id_: slug for slug, id_ in self.region_ids.items()}

    def _new_member_ids(self, count: int) -> list[int]:
        """Ids for ``count`` new members, taken before they are inserted.

        PostgreSQL: from the table's sequence. SQLite: after the largest id. SQLite has one writer at
        a time and from the first chunk on this transaction holds the write lock; a member added by
        another process in the instant before the first chunk is written makes the insert fail on
        the primary key, and the whole import rolls back: an error, never a half-done import.
        """
        if self.conn.dialect.name == "postgresql":
            return list(self.conn.execute(_NEXT_MEMBER_IDS, {"n": count}).scalars())
        start = (self.conn.scalar(select(func.max(members_t.c.id))) or 0) + 1
        return list(range(start, start + count))

    def _insert(self, new: list[Record]) -> None:
        conn, stamp, region_ids, interest_ids = self.conn, self.stamp, self.region_ids, self.interest_ids
        ids = self._new_member_ids(len(new))
        pairs = list(zip(ids, new, strict=True))
        # Welcomed by --welcome: never a member the file says did not opt in.
        self.report.added_ids.extend(i for i, r in pairs if r.status == SUBSCRIBED)
        insert_rows(
            conn,
            members_t,
            MEMBER_COLUMNS,
            [
                (
                    i,
                    r.email,
                    r.address_hash,
                    r.name,
                    r.postcode,
                    region_ids[r.region] if r.region else None,
                    stamp,
                    stamp,
                    r.first_name,
                    r.status,
                    r.status_source,
                    stamp,
                )
                for i, r in pairs
            ],
        )
        insert_rows(
            conn,
            interests_t,
            ("member_id", "interest_id"),
            [(i, interest_ids[s]) for i, r in pairs for s in r.interests],
        )
        insert_rows(
            conn,
            fields_t,
            ("member_id", "name", "value"),
            [(i, k, v) for i, r in pairs if r.fields for k, v in r.fields.items()],
        )
        consent.subscribe_imported(
            conn,
            [
                (i, r.address_hash, r.consent_source, _detail(self.path, r))
                for i, r in pairs
                if r.status == SUBSCRIBED
            ],
            at=stamp,
        )
        consent.log_imported(
            conn,
            [
                (i, r.address_hash, LOG_ACTIONS[r.status], _detail(self.path, r))
                for i, r in pairs
                if r.status != SUBSCRIBED
            ],
            at=stamp,
        )

    def _update(self, updates: list[tuple[int, Record, Existing]]) -> None:
        conn, region_ids, interest_ids = self.conn, self.region_ids, self.interest_ids
        update_member = (
            update(members_t)
            .where(members_t.c.id == bindparam("b_id"))
            .values(
                name=bindparam("b_name"),
                first_name=bindparam("b_first_name"),
                postcode=bindparam("b_postcode"),
                region_id=bindparam("b_region_id"),
                updated_at=bindparam("b_updated_at", type_=self.stamp_type),
            )
        )
        update_status = (
            update(members_t)
            .where(members_t.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                status_source=bindparam("b_status_source"),
                status_at=bindparam("b_updated_at", type_=self.stamp_type),
            )
        )
        statuses: list[dict[str, Any]] = []
        update_field = (
            update(fields_t)
            .where(fields_t.c.member_id == bindparam("b_member_id"), fields_t.c.name == bindparam("b_name"))
            .values(value=bindparam("b_value"))
        )
        rows: list[dict[str, Any]] = []
        pairs: list[dict[str, Any]] = []
        new_fields: list[dict[str, Any]] = []
        changed_fields: list[dict[str, Any]] = []
        for member_id, r, old in updates:
            region = r.region or old.region
            rows.append(
                {
                    "b_id": member_id,
                    "b_name": r.name or old.name,
                    "b_first_name": r.first_name or old.first_name,
                    "b_postcode": r.postcode or old.postcode,
                    "b_region_id": region_ids[region] if region else None,
                    "b_updated_at": self.stamp,
                }
            )
            if r.status != old.status:
                statuses.append(
                    {
                        "b_id": member_id,
                        "b_status": r.status,
                        "b_status_source": r.status_source,
                        "b_updated_at": self.stamp,
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
        if statuses:
            conn.execute(update_status, statuses)
            changed = [(member_id, r) for member_id, r, old in updates if r.status != old.status]
            consent.log_imported(
                conn,
                [
                    (i, r.address_hash, LOG_ACTIONS[r.status], _detail(self.path, r))
                    for i, r in changed
                    if r.status not in SUPPRESSING  # a suppression logs its own line
                ],
                at=self.stamp,
            )


@contextmanager
def page_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a page cache of ``CACHE_KIB`` for the indexes a large import touches at random
    (the addresses and their hashes); the pages beyond it are read back from the operating
    system's cache, which the import's memory does not count."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


def _keep_choices(record: Record, old: Existing) -> list[Kept]:
    """The fields of ``record`` that the member chose otherwise themselves, each taken out of the
    record (so that the update leaves it as they chose it)."""
    if not old.choices:
        return []
    kept: list[Kept] = []

    def keep(name: str, in_file: str, theirs: str) -> None:
        kept.append(Kept(record.row, record.email, name, in_file, theirs, old.choices[name]))

    if "name" in old.choices and record.name and record.name != old.name:
        keep("name", record.name, old.name)
        record.name, record.first_name = "", ""
    if "region" in old.choices and record.region is not None and record.region != old.region:
        keep("region", record.region, old.region or "")
        record.region = None
    if "interests" in old.choices and not record.interests <= old.interests:
        keep("interests", ";".join(sorted(record.interests)), ";".join(sorted(old.interests)))
        record.interests = set()
    if "status" in old.choices and record.status != old.status:
        keep("status", f"{record.status} ({record.status_source})", old.status)
        record.status = old.status
    return kept


def _changes(record: Record, old: Existing) -> bool:
    return bool(
        (record.name and record.name != old.name)
        or (record.first_name and record.first_name != old.first_name)
        or record.status != old.status
        or (record.postcode and record.postcode != old.postcode)
        or (record.region is not None and record.region != old.region)
        or not record.interests <= old.interests
        or any(old.fields.get(k) != v for k, v in record.fields.items())
    )


def _detail(path: Path, record: Record) -> str:
    detail = f"imported from {path.name} line {record.row}"
    if record.consent_date:
        detail += f"; consent given {record.consent_date}"
    if record.status_source:
        detail += f"; {record.status}: {record.status_source}"
    return detail
