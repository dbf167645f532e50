"""Benchmark: importing 325,000 members, and counting segments over them.

    .venv/bin/python bench/import.py [--quick] [--rows N] [--seed S] [--keep]

In one run, on a generated CSV of synthetic members (mailer.audience.synthetic):

(a) ``sqlite-utils insert DB members FILE --csv`` into a fresh SQLite file: the anchor. It stores the
    rows as they are: no validation, no normalisation, no dedupe, one table without indexes.
(b) ``mailer lists import FILE`` into a fresh SQLite workspace database (schema and lists synced
    first, untimed), every check on: addresses validated and normalised, duplicates merged,
    suppressions checked, regions from postcodes, interests and fields in their own tables, a
    consent-log line per member. Targets: (b) <= 1.5x (a)'s wall-clock time, and a peak resident
    memory (RSS) of at most 150 MB: the import streams, whatever the file's size.
(c) the same import again (every row unchanged), for information.
(d) ``mailer.audience.segments.count`` for several expressions over those members against the same
    count as a hand-written SQL query through the sqlite3 module. Target: <= 3x.

Each of (a), (b) and (c) runs as its own process, and its figures are that process's own resource
usage (``os.wait4``): wall-clock time, CPU time (user + system) and peak RSS. The machines are
shared, and CPU time is the steadier figure when something else is running; sqlite-utils commits
(and syncs) every few rows, so its wall-clock time is mostly waiting for the disk. The targets are
for 325,000 rows; with --quick, fixed costs (starting Python, parsing an expression: ~1 ms) weigh
more and the ratios are higher.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from machine import print_header

from mailer.audience.shape import load_shape, sync
from mailer.audience.synthetic import generate, write_csv
from mailer.db import open_database
from mailer.settings import load
from mailer.workspace import init_workspace

ROOT = Path(__file__).resolve().parent.parent
IMPORT_TARGET = 1.5  # (b)'s wall-clock time over (a)'s
RSS_TARGET_MB = 150  # (b)'s peak resident memory
COUNT_TARGET = 3.0

# The hand-written SQL: what a person who knows the schema and its indexes would write.
# Who may be mailed (mailer.audience.mailable): subscribed, and not suppressed.
MAILABLE = "m.status = 'subscribed' AND m.address_hash NOT IN (SELECT address_hash FROM suppressions)"


def in_region(slug: str) -> str:
    return (
        "m.region_id IN (SELECT r.id FROM regions r WHERE r.path LIKE "
        f"(SELECT path FROM regions WHERE slug = '{slug}') || '%')"
    )


def has_interest(slug: str) -> str:
    return (
        "m.id IN (SELECT mi.member_id FROM member_interests mi "
        f"WHERE mi.interest_id = (SELECT id FROM interests WHERE slug = '{slug}'))"
    )


def has_field(name: str, value: str) -> str:
    return f"m.id IN (SELECT member_id FROM member_fields WHERE name = '{name}' AND value = '{value}')"


# Each segment expression with the SQL a person would write by hand for the same count.
COUNTS: list[tuple[str, str]] = [
    ("all", "TRUE"),
    ("region:kent", in_region("kent")),
    ("interest:refugees", has_interest("refugees")),
    (
        "region:west-midlands and interest:mp-advocacy",
        f"{in_region('west-midlands')} AND {has_interest('mp-advocacy')}",
    ),
    (
        'region:kent and (interest:refugees or interest:womens-rights) and not field.student = "yes"',
        f"{in_region('kent')} AND ({has_interest('refugees')} OR {has_interest('womens-rights')}) "
        f"AND NOT {has_field('student', 'yes')}",
    ),
]


@dataclass(frozen=True)
class Run:
    """A command's own figures, from its rusage: not those of this process or of other children."""

    wall: float
    cpu: float
    rss_mb: float
    stdout: str


def run(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` as its own process; its wall-clock and CPU seconds, peak RSS and standard output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read().decode(errors='replace')}")
        return Run(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            stdout=out.read().decode(),
        )


def best_of(n: int, fn: Callable[[], int]) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def raw_count(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=325_000, help="members in the generated CSV")
    parser.add_argument("--quick", action="store_true", help="a small run (20,000 rows)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows

    bin_dir = Path(sys.executable).parent
    sqlite_utils = shutil.which("sqlite-utils", path=str(bin_dir)) or shutil.which("sqlite-utils")
    if sqlite_utils is None:
        raise SystemExit("sqlite-utils is not installed: pip install -e '.[test]'")

    print_header()
    tmp = Path(tempfile.mkdtemp(prefix="mailer-bench-import-"))
    try:
        shape = load_shape(ROOT / "lists")
        csv_path = tmp / "members.csv"
        t0 = time.perf_counter()
        write_csv(csv_path, generate(rows, shape, seed=args.seed))
        size = csv_path.stat().st_size / 1e6
        print(f"generated {rows:,} members ({size:.1f} MB) in {time.perf_counter() - t0:.1f}s: {csv_path}")

        # (a) the anchor
        anchor = run([sqlite_utils, "insert", str(tmp / "su.db"), "members", str(csv_path), "--csv"])

        # (b) mailer, into a fresh workspace database with the schema and the lists in place
        ws = tmp / "ws"
        init_workspace(ws)
        secret = "xlU0EoW9W55FYelXl0p4C0--bZtyMw_LWLReIfzaoQb7q8CRMiYCnaN0sOC1j5-0"  # weak keys are refused
        env = dict(os.environ, MAILER_SECRET=secret)
        env.pop("MAILER_DATABASE_URL", None)
        settings = load(ws, env={"MAILER_SECRET": secret})
        db = open_database(settings)
        with db.session() as session:
            sync(session, shape)
        db.dispose()
        cmd = [sys.executable, "-m", "mailer", "-w", str(ws), "lists", "import", str(csv_path), "--json"]
        fresh = run(cmd, env)
        report = json.loads(fresh.stdout)
        assert report["added"] == rows and report["rejected"] == 0, report
        # (c) again: nothing changes
        again = run(cmd, env)
        assert json.loads(again.stdout)["unchanged"] == rows

        print()
        print(f"{'import of ' + format(rows, ',') + ' rows':<44}{'wall':>9}{'CPU':>9}{'peak RSS':>11}")
        for label, r in (
            ("(a) sqlite-utils insert --csv (anchor)", anchor),
            ("(b) mailer lists import (fresh database)", fresh),
            ("(c) mailer lists import (again, unchanged)", again),
        ):
            print(f"{label:<44}{r.wall:>8.2f}s{r.cpu:>8.2f}s{r.rss_mb:>8.0f} MB")
        ratio, cpu_ratio = fresh.wall / anchor.wall, fresh.cpu / anchor.cpu
        verdict = "meets" if ratio <= IMPORT_TARGET else "MISSES"
        print(
            f"time (b)/(a): {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU "
            f"(target <= {IMPORT_TARGET}x wall: {verdict}); {rows / fresh.wall:,.0f} rows/s"
        )
        verdict = "meets" if fresh.rss_mb <= RSS_TARGET_MB else "MISSES"
        print(
            f"peak RSS (b): {fresh.rss_mb:.0f} MB, {fresh.rss_mb / anchor.rss_mb:.1f}x the anchor's "
            f"{anchor.rss_mb:.0f} MB (target <= {RSS_TARGET_MB} MB: {verdict}); (c): {again.rss_mb:.0f} MB"
        )

        # (d) counting segments
        from mailer.audience import segments

        print()
        print(f"{'count over ' + format(rows, ',') + ' members':<74}{'mailer':>9}{'raw SQL':>9}{'ratio':>8}")
        db = open_database(settings)
        raw = sqlite3.connect(settings.sqlalchemy_url.removeprefix("sqlite:///"))
        worst = 0.0
        with db.session() as session:
            for expression, where in COUNTS:
                sql = f"SELECT count(*) FROM members m WHERE {where} AND {MAILABLE}"
                m_time, m_count = best_of(5, partial(segments.count, session, expression, shape))
                r_time, r_count = best_of(5, partial(raw_count, raw, sql))
                assert m_count == r_count, (expression, m_count, r_count)
                worst = max(worst, m_time / r_time)
                label = expression if len(expression) <= 60 else expression[:57] + "..."
                print(
                    f"{label + f' = {m_count:,}':<74}{m_time * 1000:>7.1f}ms{r_time * 1000:>7.1f}ms"
                    f"{m_time / r_time:>7.2f}x"
                )
        raw.close()
        db.dispose()
        verdict = "meets" if worst <= COUNT_TARGET else "MISSES"
        print(f"worst ratio mailer/raw SQL: {worst:.2f}x (target <= {COUNT_TARGET:.0f}x: {verdict})")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
