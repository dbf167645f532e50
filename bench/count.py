"""Benchmark: `lists count` (segments.count) against a hand-written raw SQL count, on 325,000 members.

Usage: python bench_count.py [--quick] [--url URL]   (default: a SQLite file in a temp folder)
Prints, per expression: mailer's time (parse + compile + query), raw SQL time, their ratio, and both counts.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, text

ROOT = Path("/work/main")
sys.path.insert(0, str(ROOT))

from mailer.audience.addresses import address_hash  # noqa: E402
from mailer.audience.segments import count, count_query  # noqa: E402
from mailer.audience.shape import load_shape, sync  # noqa: E402
from mailer.db import open_database  # noqa: E402
from mailer.models import Interest, Member, MemberField, MemberInterest, Region, Suppression  # noqa: E402

CASES = [
    (
        "all",
        "SELECT count(*) FROM members m WHERE NOT EXISTS "
        "(SELECT 1 FROM suppressions s WHERE s.address_hash = m.address_hash)",
    ),
    (
        "region:kent",
        "SELECT count(*) FROM members m JOIN regions r ON r.id = m.region_id "
        "WHERE r.path LIKE '/south-east/kent/%' "
        "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.address_hash = m.address_hash)",
    ),
    (
        "interest:refugees",
        "SELECT count(*) FROM members m JOIN member_interests mi ON mi.member_id = m.id "
        "JOIN interests i ON i.id = mi.interest_id WHERE i.slug = 'refugees' "
        "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.address_hash = m.address_hash)",
    ),
    (
        "region:kent and interest:refugees",
        "SELECT count(*) FROM members m JOIN regions r ON r.id = m.region_id "
        "JOIN member_interests mi ON mi.member_id = m.id JOIN interests i ON i.id = mi.interest_id "
        "WHERE r.path LIKE '/south-east/kent/%' AND i.slug = 'refugees' "
        "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.address_hash = m.address_hash)",
    ),
    (
        'region:kent and (interest:refugees or interest:womens-rights) and not field.student = "yes"',
        "SELECT count(*) FROM members m JOIN regions r ON r.id = m.region_id "
        "WHERE r.path LIKE '/south-east/kent/%' "
        "AND EXISTS (SELECT 1 FROM member_interests mi JOIN interests i ON i.id = mi.interest_id "
        "  WHERE mi.member_id = m.id AND i.slug IN ('refugees', 'womens-rights')) "
        "AND NOT EXISTS (SELECT 1 FROM member_fields f WHERE f.member_id = m.id "
        "  AND f.name = 'student' AND f.value = 'yes') "
        "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.address_hash = m.address_hash)",
    ),
    (
        "west-midlands-mp-advocacy",
        "SELECT count(*) FROM members m JOIN regions r ON r.id = m.region_id "
        "JOIN member_interests mi ON mi.member_id = m.id JOIN interests i ON i.id = mi.interest_id "
        "WHERE r.path LIKE '/central-england/west-midlands/%' AND i.slug = 'mp-advocacy' "
        "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.address_hash = m.address_hash)",
    ),
]


def populate(url: str, n: int) -> None:
    db = open_database(url)
    shape = load_shape(ROOT / "lists")
    rng = random.Random(325)
    with db.session() as session:
        sync(session, shape)
    with db.session() as session:
        if session.scalar(select(Member.id).limit(1)) is not None:
            return
        region_ids = [id_ for (id_,) in session.execute(select(Region.id))]
        interest_ids = [id_ for (id_,) in session.execute(select(Interest.id))]
        members, interests, fields, suppressed = [], [], [], []
        for i in range(1, n + 1):
            email = f"member{i}@example.org"
            h = address_hash(email)
            members.append(
                {
                    "id": i,
                    "email": email,
                    "address_hash": h,
                    "name": f"Member {i}",
                    "postcode": "",
                    "region_id": rng.choice(region_ids) if rng.random() > 0.02 else None,
                }
            )
            for iid in rng.sample(interest_ids, rng.choice([0, 1, 1, 2, 3])):
                interests.append({"member_id": i, "interest_id": iid})
            if rng.random() < 0.6:
                fields.append({"member_id": i, "name": "student", "value": rng.choice(["yes", "no"])})
            if rng.random() < 0.05:
                suppressed.append({"address_hash": h, "reason": "unsubscribe", "source": "link"})
        for table, rows in ((Member, members), (MemberInterest, interests), (MemberField, fields)):
            for k in range(0, len(rows), 20000):
                session.execute(insert(table), rows[k : k + 20000])
        session.execute(insert(Suppression), suppressed)
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    db.dispose()


def best(fn, repeat: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    times, result = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--url")
    ap.add_argument("--plan", action="store_true")
    args = ap.parse_args()
    n = 20_000 if args.quick else 325_000
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    t = time.perf_counter()
    populate(url, n)
    print(f"{url.split(':')[0]}: {n} members ready in {time.perf_counter() - t:.1f}s")
    db = open_database(url)
    shape = load_shape(ROOT / "lists")
    repeat = 3 if args.quick else 5
    print(f"{'expression':<60} {'mailer':>9} {'raw SQL':>9} {'ratio':>6}  counts")
    ratios = []
    with db.session() as session:
        for expression, raw in CASES:
            count(session, expression, shape)  # warm caches
            session.execute(text(raw)).scalar()
            tm, cm = best(lambda e=expression: count(session, e, shape), repeat)  # type: ignore[misc]
            tr, cr = best(lambda r=raw: session.execute(text(r)).scalar(), repeat)  # type: ignore[misc]
            ratios.append(tm / tr)
            short = expression if len(expression) <= 58 else expression[:55] + "..."
            print(f"{short:<60} {tm * 1000:>7.1f}ms {tr * 1000:>7.1f}ms {tm / tr:>5.2f}x  {cm} {cr}")
            if args.plan:
                sql = count_query(expression, shape).compile(
                    dialect=session.bind.dialect,  # type: ignore[union-attr]
                    compile_kwargs={"literal_binds": True},
                )
                explain = "EXPLAIN QUERY PLAN " if url.startswith("sqlite") else "EXPLAIN "
                for row in session.execute(text(explain + str(sql))):
                    print("    ", " ".join(str(c) for c in row))
    print(f"worst ratio {max(ratios):.2f}x, median {statistics.median(ratios):.2f}x (target <= 3x)")
    db.dispose()


if __name__ == "__main__":
    main()
