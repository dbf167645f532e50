"""Benchmark: 1, 2 and 4 ``mailer worker`` processes sharing one campaign, into Postfix's smtp-sink;
and what a claim of 500 deliveries costs in a queue of a million, fresh and 96 % sent.

    .venv/bin/python bench/workers.py [--quick] [--members 50000] [--counts 1,2,4]
    .venv/bin/python bench/workers.py --claims [--queued 1000000] [--sent-share 0.96]

All in one run, against the same ``smtp-sink`` on loopback and one PostgreSQL database (a fresh
one, dropped at the end; the server from ``MAILER_BENCH_PG``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``):

(a) Postfix ``smtp-source`` (C): as many pre-built messages of mailer's average size, over 8
    connections (the anchor, as in bench/send.py and bench/transport.py);
(b) for each worker count N: the seed newsletter (audience widened to everyone) to ``--members``
    generated members, sent by N ``mailer worker`` processes (8 connections each). The workers are
    started first and the clock runs from ``mailer campaigns resume`` to the moment the campaign is
    ``sent``, so start-up is not counted; between runs every delivery is set back to pending.

It prints the machine first (bench/machine.py), then messages per second for each, against
smtp-source and against one worker. With ``--claims`` it measures the claim instead
(:func:`claim_costs`: rows bulk-inserted with SQL, a few minutes in all). On these
2-core machines the workers, PostgreSQL and smtp-sink share two cores, so more workers than cores
cannot go faster here; on more machines each worker brings its own CPU (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from claims import claim_costs
from machine import print_header
from send import average_size
from sqlalchemy import create_engine, func, select, text, update
from transport import ensure_postfix_tools, free_port, run_smtp_source

from mailer import sending as delivery
from mailer.audience.importer import import_csv
from mailer.audience.shape import load_shape, sync
from mailer.audience.synthetic import generate, write_csv
from mailer.db import Database, open_database
from mailer.models import Campaign, Delivery
from mailer.settings import load
from mailer.workspace import init_workspace

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2025-11-kent-network"
# A strong key (weak ones are refused), for benchmarks only.
SECRET = "dU4eNoftE3ADXmtB2tE6RVR0-W4bbJPGix-KjjqDR1MdbWvxuHKoZlzlTDqkRD18"
ADMIN = os.environ.get("MAILER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def create_database() -> str:
    name = f"mailer_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def make_workspace(root: Path, url: str, members: int, port: int) -> tuple[Path, Database]:
    """The seed issue to everyone, ``members`` generated members, enqueued and paused."""
    ws = root / "ws"
    init_workspace(ws)
    toml = ws / "mailer.toml"
    toml.write_text(
        toml.read_text()
        .replace('database_url = "sqlite:///mailer.db"', f'database_url = "{url}"')
        .replace('relay = "maildir:///outbox"', f'relay = "smtp://127.0.0.1:{port}"')
        .replace("heartbeat_seconds = 5.0", "heartbeat_seconds = 1.0")
    )
    shutil.copytree(ROOT / "campaigns" / SLUG, ws / "campaigns" / SLUG)
    issue = ws / "campaigns" / SLUG / "issue.yaml"
    issue.write_text(issue.read_text().replace("audience: region:kent", "audience: all", 1))
    settings = load(ws, env={"MAILER_SECRET": SECRET})
    shape = load_shape(ws / "lists")
    csv_path = root / "members.csv"
    write_csv(csv_path, generate(members, shape, seed=11))
    db = open_database(settings)
    start = time.perf_counter()
    with db.session() as session:
        sync(session, shape)
        report = import_csv(session, csv_path, shape)
    imported = time.perf_counter()
    prepared = delivery.prepare(db, settings, shape, SLUG)
    planned = time.perf_counter()
    delivery.enqueue(db, prepared)
    enqueued = time.perf_counter()
    delivery.pause_campaign(db, SLUG, reason="waiting for the benchmark")
    print(
        f"  set-up: {report.added:,} members imported in {imported - start:.1f}s; "
        f"planned and rendered in {planned - imported:.1f}s; "
        f"enqueued in {enqueued - planned:.1f}s ({report.added / (enqueued - planned):,.0f} deliveries/s)"
    )
    return ws, db


def reset(db: Database) -> None:
    with db.session() as session:
        session.execute(
            update(Delivery).values(
                status="pending", attempts=0, sent_at=None, claimed_by=None, lease_until=None
            )
        )
        session.execute(update(Campaign).values(status="paused", status_reason="", finished_at=None))


def campaign_status(db: Database) -> str:
    with db.session() as session:
        return str(session.scalars(select(Campaign.status)).one())


def run_workers(ws: Path, db: Database, count: int, members: int) -> tuple[float, float, float]:
    """Messages per second of ``count`` workers: from resume to sent, and while sending; and the
    workers' CPU time per message in microseconds.

    The first rate includes each worker noticing the campaign (it looks every second when idle) and
    loading its variants; the second runs from the first recorded send to the last.
    """
    from mailer.sending import alive_workers

    settings = load(ws, env={"MAILER_SECRET": SECRET})
    reset(db)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, MAILER_WORKSPACE=str(ws), MAILER_SECRET=SECRET)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mailer", "worker", "--id", f"bench-{count}-{i}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]
    try:
        deadline = time.monotonic() + 60
        while len([n for n in alive_workers(db, settings) if n.startswith(f"bench-{count}-")]) < count:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start")
            time.sleep(0.1)
        start = time.perf_counter()
        delivery.resume_campaign(db, SLUG)
        while campaign_status(db) != "sent":
            time.sleep(0.02)
        seconds = time.perf_counter() - start
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / members * 1e6
    counts = delivery.status_counts(db, 1)
    if counts != {"sent": members}:
        raise SystemExit(f"not everyone was sent: {counts}")
    with db.session() as session:
        first, last = session.execute(select(func.min(Delivery.sent_at), func.max(Delivery.sent_at))).one()
    return members / seconds, members / (last - first).total_seconds(), cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=50_000, help="recipients of each run")
    parser.add_argument("--counts", default="1,2,4", help="worker counts to run, comma-separated")
    parser.add_argument("--quick", action="store_true", help="10,000 members")
    parser.add_argument("--claims", action="store_true", help="measure a claim of 500, not the workers")
    parser.add_argument("--queued", type=int, default=1_000_000, help="deliveries queued (--claims)")
    parser.add_argument("--sent-share", type=float, default=0.96, help="share sent, unvacuumed (--claims)")
    args = parser.parse_args()
    if args.claims:
        print_header()
        url = create_database()
        try:
            claim_costs(url, args.queued, args.sent_share)
        finally:
            drop_database(url)
        return
    if args.quick:
        args.members = 10_000
    counts = [int(c) for c in args.counts.split(",")]
    print_header()
    sink, source = ensure_postfix_tools()
    port = free_port()
    sink_proc = subprocess.Popen(
        [sink, "-c", "-u", "root", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = create_database()
    rates: dict[int, tuple[float, float, float]] = {}
    try:
        time.sleep(0.3)
        with tempfile.TemporaryDirectory(prefix="mailer-bench-workers-") as tmp:
            print(f"setting up {args.members:,} members on PostgreSQL ...", flush=True)
            ws, db = make_workspace(Path(tmp), url, args.members, port)
            size = average_size(ws)
            print(f"(a) smtp-source, {args.members:,} messages of {size:,} bytes ...", flush=True)
            source_rate = run_smtp_source(source, port, args.members, 8, size)
            for n in counts:
                print(f"(b) {n} worker(s) ...", flush=True)
                rates[n] = run_workers(ws, db, n, args.members)
            db.dispose()
    finally:
        sink_proc.terminate()
        sink_proc.wait()
        drop_database(url)
    one = rates.get(1) or next(iter(rates.values()))
    print()
    print(f"{args.members:,} recipients per run, average message {size:,} bytes, {os.cpu_count()} CPU(s)")
    print(f"{'':44}{'msg/s':>8}{'vs smtp-source':>16}{'vs 1 worker':>13}")
    print(f"{'(a) smtp-source (C, pre-built, 8 conns)':44}{source_rate:>8,.0f}{1.0:>15.2f}x")
    for n, (whole, sending, _cpu) in rates.items():
        for label, rate, base in (
            (f"(b) {n} worker(s): resume to sent", whole, one[0]),
            (f"(b) {n} worker(s): while sending", sending, one[1]),
        ):
            print(f"{label:44}{rate:>8,.0f}{rate / source_rate:>15.2f}x{rate / base:>12.2f}x")
    cpu = ", ".join(f"{n} worker(s) {c:,.0f}" for n, (_, _, c) in rates.items())
    print(f"workers' CPU time per message (µs, whole processes): {cpu}")
    print("(8 connections per worker; workers, PostgreSQL and smtp-sink share this machine's CPUs)")


if __name__ == "__main__":
    main()
