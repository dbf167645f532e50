"""What a claim of 500 deliveries costs on PostgreSQL, fresh and at 96 % sent (bench/workers.py --claims).

A queue of ``queued`` deliveries (a campaign, its members and their deliveries, bulk-inserted with
SQL) is claimed from, 500 at a time, as the workers claim:

- *from the start*: every state (expired leases, deferred, pending) scanned from the lowest id, as
  every claim did before claims kept a cursor;
- *as the workers claim*: pending rows above the sender's previous claim first, expired leases
  looked for only now and then (:func:`mailer.sending.queue.claim`, ``after`` and ``expired``).

It claims on the fresh queue, then marks ``sent_share`` of it sent the way senders do (pending →
sending → sent, 20,000 rows a transaction) with autovacuum off for the table, so that nothing
vacuums ``deliveries`` meanwhile (the case a busy national send meets), and claims again both ways;
then it vacuums the table and claims from the start once more. Each figure is the first claim and
the median of five, in milliseconds. Timing figures on a shared machine are noise: the lead
measures on a quiet one.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from sqlalchemy import text

from mailer.db import Database, open_database
from mailer.sending.queue import claim

SIZE = 500
CHUNK = 20_000
ROUNDS = 5


def fill(db: Database, queued: int) -> int:
    """A sending campaign with one variant and ``queued`` members, each with a pending delivery."""
    with db.engine.begin() as conn:
        campaign = conn.execute(
            text(
                "INSERT INTO campaigns (slug, kind, title, subject, audience, issue_date, source, status,"
                " network, status_reason, created_at) VALUES ('bench', 'newsletter', 'Bench', 'Bench',"
                " 'all', '2025-11-17', '', 'sending', '', '', now()) RETURNING id"
            )
        ).scalar_one()
        variant = conn.execute(
            text(
                "INSERT INTO variants (campaign_id, key, label, item_ids, subject, preheader, text, html)"
                " VALUES (:c, 'all', 'all', '', 'Bench', '', 'text', '<p>html</p>') RETURNING id"
            ),
            {"c": campaign},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO members (email, address_hash, name, postcode, created_at, updated_at,"
                " first_name, status, status_source, status_at)"
                " SELECT 'm' || i || '@example.org', md5(i::text) || md5('x' || i), 'Member ' || i, '',"
                " now(), now(), 'Member', 'subscribed', '', now() FROM generate_series(1, :n) AS i"
            ),
            {"n": queued},
        )
        conn.execute(
            text(
                "INSERT INTO deliveries (campaign_id, member_id, variant_id, status, attempts, last_error)"
                " SELECT :c, id, :v, 'pending', 0, '' FROM members ORDER BY id"
            ),
            {"c": campaign, "v": variant},
        )
        conn.execute(text("ALTER TABLE deliveries SET (autovacuum_enabled = false)"))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE deliveries"))
        conn.execute(text("VACUUM ANALYZE members"))
    return int(campaign)


def mark_sent(db: Database, upto: int) -> None:
    """Deliveries 1..upto go pending → sending → sent, as senders take them (no vacuum between)."""
    for start in range(1, upto + 1, CHUNK):
        end = min(start + CHUNK - 1, upto)
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE deliveries SET status = 'sending', claimed_by = 'bench', lease_until = now()"
                    " + interval '1 minute' WHERE id BETWEEN :a AND :b AND status = 'pending'"
                ),
                {"a": start, "b": end},
            )
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE deliveries SET status = 'sent', claimed_by = NULL, lease_until = NULL,"
                    " sent_at = now(), attempts = 1 WHERE id BETWEEN :a AND :b AND status = 'sending'"
                ),
                {"a": start, "b": end},
            )


def timed(db: Database, campaign: int, *, cursor: bool, after: int = 0) -> tuple[float, float, int]:
    """(first, median) milliseconds of ROUNDS claims of SIZE, and the cursor after them."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        got = claim(
            db, campaign, "bench-claimer", SIZE, timedelta(minutes=5), after=after, expired=not cursor
        )
        times.append((time.perf_counter() - start) * 1000)
        assert len(got) == SIZE, len(got)
        if cursor:
            after = max(c.delivery_id for c in got)
    return times[0], statistics.median(times), after


def claim_costs(url: str, queued: int, sent_share: float) -> None:
    db = open_database(url)
    try:
        print(f"filling a queue of {queued:,} deliveries with SQL ...", flush=True)
        start = time.perf_counter()
        campaign = fill(db, queued)
        print(f"  filled in {time.perf_counter() - start:.1f}s", flush=True)
        rows: list[tuple[str, float, float]] = []
        first, median, _ = timed(db, campaign, cursor=False)
        rows.append(("fresh: from the start", first, median))
        first, median, _ = timed(db, campaign, cursor=True)
        rows.append(("fresh: as the workers claim (cursor)", first, median))
        upto = int(queued * sent_share)
        print(f"marking {upto:,} sent without vacuum ...", flush=True)
        start = time.perf_counter()
        mark_sent(db, upto)
        print(f"  marked in {time.perf_counter() - start:.1f}s", flush=True)
        share = f"{sent_share:.0%} sent"
        first, median, _ = timed(db, campaign, cursor=True, after=upto)
        rows.append((f"{share}, no vacuum: as the workers claim (cursor)", first, median))
        first, median, _ = timed(db, campaign, cursor=False)
        rows.append((f"{share}, no vacuum: from the start", first, median))
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE deliveries"))
        first, median, _ = timed(db, campaign, cursor=False)
        rows.append((f"{share}, vacuumed: from the start", first, median))
    finally:
        db.dispose()
    print()
    print(f"a claim of {SIZE} deliveries (with their members), {queued:,} queued, milliseconds")
    print(f"{'':52}{'first':>8}{'median':>8}")
    for label, first, median in rows:
        print(f"{label:52}{first:>8.1f}{median:>8.1f}")
    print("(timings on a shared machine are noise: measure on a quiet one)")
