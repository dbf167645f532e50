"""Benchmark: sending the seed newsletter into Postfix's smtp-sink, three ways, in one run.

    .venv/bin/python bench/send.py [--quick] [--members 100000] [--naive 2000]

All three go to the same ``smtp-sink`` on loopback:

(a) Postfix ``smtp-source`` (C): the same number of pre-built messages of the same average size as
    mailer's, over 8 reused connections (the anchor);
(b) a naive loop: each message built with ``EmailMessage`` and sent with ``smtplib`` over one
    connection (``--naive`` messages; its rate does not depend on the count);
(c) ``mailer campaigns send`` of the seed issue (the Kent newsletter, audience widened to everyone)
    to ``--members`` generated members, with every delivery's state recorded in SQLite, run as its
    own process so that its peak RSS can be read.

It prints messages per second for each and the ratios. Targets (issue 4): (c) >= 0.5 x (a) and
>= 5 x (b); peak RSS of (c) <= 250 MB at 325,000 recipients (``--members 325000``).
"""

from __future__ import annotations

import argparse
import email.policy
import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transport import ensure_postfix_tools, free_port, run_smtp_source

from mailer.audience.shape import load_shape
from mailer.audience.synthetic import generate, write_csv
from mailer.db import open_database
from mailer.settings import load
from mailer.workspace import init_workspace

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2025-11-kent-network"
# A strong key (weak ones are refused), for benchmarks only.
SECRET = "dU4eNoftE3ADXmtB2tE6RVR0-W4bbJPGix-KjjqDR1MdbWvxuHKoZlzlTDqkRD18"


def make_workspace(root: Path, members: int) -> Path:
    """A workspace with the seed issue sent to everyone, and ``members`` generated members."""
    ws = root / "ws"
    init_workspace(ws)
    shutil.copytree(ROOT / "campaigns" / SLUG, ws / "campaigns" / SLUG)
    issue = ws / "campaigns" / SLUG / "issue.yaml"
    issue.write_text(issue.read_text().replace("audience: region:kent", "audience: all", 1))
    shape = load_shape(ws / "lists")
    csv_path = root / "members.csv"
    write_csv(csv_path, generate(members, shape, seed=11))
    # The import runs in a process of its own: a child forked from a large process would report
    # that process's peak RSS as its own (Linux keeps ru_maxrss across exec).
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mailer", "-w", str(ws), "lists", "import", str(csv_path), "--json"],
        env=dict(os.environ, MAILER_SECRET=SECRET),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"  set-up: imported {members:,} members in {time.perf_counter() - start:.1f}s", flush=True)
    return ws


def run_mailer(ws: Path, port: int) -> dict[str, float]:
    """``mailer campaigns send`` as a child process; its summary, wall time and peak RSS."""
    env = dict(
        os.environ,
        MAILER_WORKSPACE=str(ws),
        MAILER_SECRET=SECRET,
        MAILER_RELAY=f"smtp://127.0.0.1:{port}",
    )
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailer", "campaigns", "send", SLUG, "--yes", "--json"],
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        # wait4: the peak RSS of this process alone (RUSAGE_CHILDREN is the largest of all children).
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"mailer send failed:\n{stdout.decode()}\n{stderr.decode()}")
    summary = json.loads(stdout)
    rss_mb = usage.ru_maxrss / 1024
    return {
        "sent": summary["sent"],
        "failed": summary["failed"],
        "engine_seconds": summary["seconds"],
        "wall_seconds": wall,
        "rss_mb": rss_mb,
    }


def average_size(ws: Path) -> int:
    """The average size of mailer's messages of this issue: the variants' text and HTML, encoded."""
    from sqlalchemy import func, select

    from mailer.models import Delivery, Variant

    settings = load(ws, env={"MAILER_SECRET": SECRET})
    db = open_database(settings)
    with db.session() as session:
        rows = session.execute(
            select(Variant.text, Variant.html, func.count(Delivery.id))
            .join(Delivery, Delivery.variant_id == Variant.id)
            .group_by(Variant.id)
        ).all()
    db.dispose()
    total = sum((len(t.encode()) + len(h.encode())) * 1.04 * n for t, h, n in rows)  # QP overhead
    return int(total / sum(n for _, _, n in rows)) + 1500  # headers


def run_naive(port: int, count: int, ws: Path) -> float:
    """Build each message with EmailMessage, send each with smtplib: the way most code does it."""
    from sqlalchemy import select

    from mailer.models import Variant

    settings = load(ws, env={"MAILER_SECRET": SECRET})
    db = open_database(settings)
    with db.session() as session:
        text, html, subject = session.execute(select(Variant.text, Variant.html, Variant.subject)).first()  # type: ignore[misc]
    db.dispose()
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(count):
            msg = EmailMessage(policy=email.policy.SMTP)
            msg["From"] = "Kent Network <newsletter@example.org>"
            msg["To"] = f"Member {i} <member{i}@example.org>"
            msg["Subject"] = subject
            msg["List-Unsubscribe"] = f"<https://example.org/u/{i}>"
            msg.set_content(text.replace("[[mailer:name]]", f"Member {i}"))
            msg.add_alternative(html.replace("[[mailer:name]]", f"Member {i}"), subtype="html")
            smtp.sendmail(f"bounces+{i}@lists.example.org", [f"member{i}@example.org"], msg.as_bytes())
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000, help="recipients of mailer's send")
    parser.add_argument("--naive", type=int, default=2_000, help="messages for the naive loop")
    parser.add_argument("--quick", action="store_true", help="10,000 members, 500 naive messages")
    args = parser.parse_args()
    if args.quick:
        args.members, args.naive = 10_000, 500
    sink, source = ensure_postfix_tools()
    port = free_port()
    sink_proc = subprocess.Popen(
        [sink, "-c", "-u", "root", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        with tempfile.TemporaryDirectory(prefix="mailer-bench-send-") as tmp:
            print(f"setting up {args.members:,} members ...", flush=True)
            ws = make_workspace(Path(tmp), args.members)
            print("(c) mailer campaigns send ...", flush=True)
            mailer = run_mailer(ws, port)
            size = average_size(ws)
            print(f"(a) smtp-source, {int(mailer['sent']):,} messages of {size:,} bytes ...", flush=True)
            source_rate = run_smtp_source(source, port, int(mailer["sent"]), 8, size)
            print(f"(b) naive EmailMessage + smtplib, {args.naive:,} messages ...", flush=True)
            naive_rate = run_naive(port, args.naive, ws)
    finally:
        sink_proc.terminate()
        sink_proc.wait()
    engine_rate = mailer["sent"] / mailer["engine_seconds"]
    wall_rate = mailer["sent"] / mailer["wall_seconds"]
    print()
    print(
        f"recipients: {int(mailer['sent']):,} sent, {int(mailer['failed'])} failed; "
        f"average message {size:,} bytes"
    )
    print(f"{'':44}{'msg/s':>10}{'vs smtp-source':>16}{'vs naive':>10}")
    rows = [
        ("(a) smtp-source (C, pre-built, 8 conns)", source_rate),
        ("(b) naive EmailMessage + smtplib", naive_rate),
        ("(c) mailer send: delivery engine", engine_rate),
        ("(c) mailer send: whole command", wall_rate),
    ]
    for label, rate in rows:
        print(f"{label:44}{rate:>10,.0f}{rate / source_rate:>15.2f}x{rate / naive_rate:>9.1f}x")
    print(f"peak RSS of the mailer process: {mailer['rss_mb']:.0f} MB")
    print("targets: engine >= 0.5x smtp-source, >= 5x naive; RSS <= 250 MB at 325,000 recipients")
    print("(the whole command also plans, renders every variant and snapshots the recipients)")


if __name__ == "__main__":
    main()
