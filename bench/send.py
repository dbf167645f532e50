"""Benchmark: ``mailer campaigns send`` of the seed newsletter into Postfix's smtp-sink, beside its anchors.

    .venv/bin/python bench/send.py [--quick] [--members 100000] [--dkim none,rsa,ed25519,dual] [--naive 2000]

It prints the machine first (bench/machine.py), then, in one run, against the same ``smtp-sink`` on
loopback:

(a) Postfix ``smtp-source`` (C): as many pre-built messages of mailer's average size, over 8
    reused connections (the anchor of the unsigned send);
(b) a naive loop: each message built with ``EmailMessage`` and sent with ``smtplib`` over one
    connection (``--naive`` messages; its rate does not depend on the count);
(c) ``mailer campaigns send`` of the seed issue (the Kent newsletter, audience widened to everyone)
    to ``--members`` generated members, every delivery's state recorded in SQLite, run as its own
    process so that its peak RSS can be read; once per ``--dkim`` choice (``none``: unsigned;
    ``rsa``: RSA-2048; ``ed25519``; ``dual``: both signatures on each message), each from the same
    freshly imported database. "engine" is the delivery engine's own rate, "whole command" the
    process's, from start to exit (planning, rendering, snapshotting the recipients included);
(d) with RSA in the choices: ``openssl speed -seconds 3 rsa2048``, the sign rate of one core (the
    anchor of the signed sends).

Then where the CPU went, per message, in each of those runs: the sender's own (smtp-source, or
mailer with its filling processes) and the sink's (read from /proc), and how many of the machine's
cores the two kept busy together. The sink runs on the same machine and takes a core's worth of
work at these rates, so the sender has what is left; with Ed25519 in the choices, the least one
Ed25519 signature adds (one signature and the body hash of one average message, timed here) is
printed beside what the machine leaves for it at 0.9 x the unsigned send.

Targets (docs/decisions.md, The send's budget): the whole unsigned command >= 1.0 x smtp-source (engine
alone higher); with RSA-2048 the whole command >= 0.6 x the one-core openssl sign rate (aim 1.0 x, with both
cores); with Ed25519 only >= 0.9 x the unsigned command; peak RSS <= 250 MB at 325,000 members (``--members
325000``).
"""

from __future__ import annotations

import argparse
import compileall
import email.policy
import json
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_header
from transport import ensure_postfix_tools, free_port, smtp_source_command

from mailer.audience.shape import load_shape
from mailer.audience.synthetic import generate, write_csv
from mailer.db import open_database
from mailer.settings import load
from mailer.workspace import init_workspace, write_dkim_keys

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2025-11-kent-network"
# A strong key (weak ones are refused), for benchmarks only.
SECRET = "dU4eNoftE3ADXmtB2tE6RVR0-W4bbJPGix-KjjqDR1MdbWvxuHKoZlzlTDqkRD18"
DKIM_CHOICES = {
    "none": "off",
    "rsa": "rsa-sha256",
    "ed25519": "ed25519-sha256",
    "dual": "rsa-sha256,ed25519-sha256",
}


def make_workspace(root: Path, members: int) -> Path:
    """A workspace with the seed issue sent to everyone, ``members`` generated members, and DKIM
    keys (used or not as each send's ``dkim_algorithms`` says)."""
    ws = root / "ws"
    init_workspace(ws)
    write_dkim_keys(ws)
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
    shutil.copy(ws / "mailer.db", root / "imported.db")
    return ws


def use_dkim(ws: Path, choice: str, fill_processes: int) -> None:
    """Set ``dkim_algorithms`` (and ``fill_processes``) for the next send, and start again from the
    freshly imported database."""
    toml = ws / "mailer.toml"
    text = toml.read_text()
    text = re.sub(r'(?m)^dkim_algorithms = ".*"$', f'dkim_algorithms = "{DKIM_CHOICES[choice]}"', text)
    toml.write_text(re.sub(r"(?m)^fill_processes = .*$", f"fill_processes = {fill_processes}", text))
    for suffix in ("-wal", "-shm"):
        (ws / f"mailer.db{suffix}").unlink(missing_ok=True)
    shutil.copy(ws.parent / "imported.db", ws / "mailer.db")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a running process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_source(source: str, port: int, count: int, size: int, sink_pid: int) -> dict[str, float]:
    """Postfix smtp-source over 8 connections: its rate, its own CPU and the sink's."""
    command = smtp_source_command(source, port, count, 8, size)
    sink_before = cpu_seconds(sink_pid)
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"smtp-source failed: {' '.join(command)}")
    return {
        "sent": count,
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "sink_cpu_seconds": cpu_seconds(sink_pid) - sink_before,
    }


def ed25519_floor(ws: Path, size: int, rounds: int = 3000) -> tuple[float, float]:
    """(µs a signature, µs the SHA-256 of ``size`` bytes): the least an Ed25519 DKIM signature adds
    to a message, on this machine, with the workspace's own key."""
    import hashlib

    from mailer.message.dkim import ED25519, dkim_keys, signer_for

    settings = load(ws, env={"MAILER_SECRET": SECRET})
    key = next(k for k in dkim_keys(settings) if k.algorithm == ED25519)
    signer = signer_for(key)
    digest, body = hashlib.sha256(b"x").digest(), os.urandom(size)
    best_sign = best_hash = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(rounds):
            signer.sign(digest)
        best_sign = min(best_sign, (time.process_time() - start) / rounds * 1e6)
        start = time.process_time()
        for _ in range(rounds):
            hashlib.sha256(body).digest()
        best_hash = min(best_hash, (time.process_time() - start) / rounds * 1e6)
    return best_sign, best_hash


def run_mailer(ws: Path, port: int, sink_pid: int) -> dict[str, float]:
    """``mailer campaigns send`` as a child process; its summary, wall time, peak RSS, and the CPU
    it and the sink used."""
    env = dict(
        os.environ,
        MAILER_WORKSPACE=str(ws),
        MAILER_SECRET=SECRET,
        MAILER_RELAY=f"smtp://127.0.0.1:{port}",
    )
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sink_before = cpu_seconds(sink_pid)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailer", "campaigns", "send", SLUG, "--yes", "--json"],
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        # wait4: the peak RSS of this process (Linux counts its own waited-for children in it:
        # the filling processes of a signed send, each far smaller than the sender).
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        sink_cpu = cpu_seconds(sink_pid) - sink_before
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"mailer send failed:\n{stdout.decode()}\n{stderr.decode()}")
    summary = json.loads(stdout)
    return {
        "sent": summary["sent"],
        "failed": summary["failed"],
        "engine_seconds": summary["seconds"],
        "wall_seconds": wall,
        "rss_mb": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "sink_cpu_seconds": sink_cpu,
    }


def average_size(ws: Path) -> int:
    """The average size of the messages mailer sent: for each variant of the issue, one message
    filled for one of its recipients exactly as the send fills it (headers, both parts, tokens,
    signatures as configured), weighted by the variant's deliveries. Members' names, addresses and
    tokens differ by a few bytes, so this is the sent bytes' average to within a fraction of a
    percent (the earlier estimate, from the variants' text and HTML plus a guess at the encoding
    and headers, came 2 % short of it)."""
    from sqlalchemy import func, select

    from mailer.message.filling import BatchFiller
    from mailer.models import Campaign, Delivery, Member, Variant
    from mailer.sending.prepare import stored_identity, template_for

    settings = load(ws, env={"MAILER_SECRET": SECRET})
    db = open_database(settings)
    total = count = 0
    with db.session() as session:
        campaign_id = session.scalars(select(Campaign.id).where(Campaign.slug == SLUG)).one()
        rows = session.execute(
            select(Delivery.variant_id, func.count(), func.min(Delivery.id))
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.variant_id)
        ).all()
        identity = None
        for variant_id, deliveries, first in rows:
            variant = session.get(Variant, variant_id)
            assert variant is not None
            identity = identity or stored_identity(settings, variant)
            kind = session.scalars(select(Campaign.kind).where(Campaign.id == campaign_id)).one()
            template = template_for(settings, SLUG, variant, kind=kind, identity=identity)
            delivery = session.get(Delivery, first)
            assert delivery is not None
            member = session.get(Member, delivery.member_id)
            assert member is not None
            filler = BatchFiller(settings.secrets, campaign_id, lambda _id, t=template: t)
            row = (delivery.id, member.id, variant_id, member.email, member.name or "", member.first_name)
            _delivery, _sender, payload = filler.fill([row])[0]
            assert not isinstance(payload, str), payload
            total += len(payload) * deliveries
            count += deliveries
    db.dispose()
    return round(total / count)


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


def openssl_rsa_sign_rate(seconds: int = 3) -> float | None:
    """``openssl speed -seconds N rsa2048``: RSA-2048 signatures a second on one core, or None."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    out = subprocess.run(
        [openssl, "speed", "-seconds", str(seconds), "rsa2048"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+[\d.]+\s*$", out, re.MULTILINE)
    return float(match[1]) if match else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000, help="recipients of mailer's send")
    parser.add_argument("--naive", type=int, default=2_000, help="messages for the naive loop (0: skip it)")
    parser.add_argument(
        "--dkim",
        default="none",
        help="comma-separated sends to run: none (unsigned), rsa, ed25519, dual (default: none)",
    )
    parser.add_argument(
        "--fill-processes",
        type=int,
        default=-1,
        help="the fill_processes setting of the sends (default -1: auto, one per core when signed)",
    )
    parser.add_argument("--quick", action="store_true", help="10,000 members, 500 naive messages")
    args = parser.parse_args()
    if args.quick:
        args.members, args.naive = 10_000, 500
    choices = [c.strip() for c in args.dkim.split(",") if c.strip()]
    unknown = [c for c in choices if c not in DKIM_CHOICES]
    if unknown or not choices:
        parser.error(f"--dkim takes {', '.join(DKIM_CHOICES)} (comma-separated), not {args.dkim!r}")
    print_header()
    # mailer's own modules compiled once, as an installed package's are (an editable install under
    # PYTHONDONTWRITEBYTECODE=1 would compile them again in every command timed here).
    compileall.compile_dir(str(ROOT / "mailer"), quiet=1)
    sink, source = ensure_postfix_tools()
    port = free_port()
    sink_proc = subprocess.Popen(
        [sink, "-c", "-u", "root", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs: list[tuple[str, dict[str, float]]] = []
    rsa_rate = None
    naive_rate = None
    floor = None
    try:
        time.sleep(0.3)
        with tempfile.TemporaryDirectory(prefix="mailer-bench-send-") as tmp:
            print(f"setting up {args.members:,} members ...", flush=True)
            ws = make_workspace(Path(tmp), args.members)
            for choice in choices:
                use_dkim(ws, choice, args.fill_processes)
                print(f"(c) mailer campaigns send, DKIM {choice} ...", flush=True)
                runs.append((choice, run_mailer(ws, port, sink_proc.pid)))
                if choice == choices[0]:
                    size = average_size(ws)
                    sent = int(runs[0][1]["sent"])
                    print(f"(a) smtp-source, {sent:,} messages of {size:,} bytes ...", flush=True)
                    source_run = run_source(source, port, sent, size, sink_proc.pid)
            if args.naive:
                print(f"(b) naive EmailMessage + smtplib, {args.naive:,} messages ...", flush=True)
                naive_rate = run_naive(port, args.naive, ws)
            if any(c in ("rsa", "dual") for c in choices):
                print("(d) openssl speed -seconds 3 rsa2048 ...", flush=True)
                rsa_rate = openssl_rsa_sign_rate()
            if "ed25519" in choices:
                floor = ed25519_floor(ws, size)
    finally:
        sink_proc.terminate()
        sink_proc.wait()
    report(args.members, size, source_run, naive_rate, rsa_rate, runs, floor)


def report(
    members: int,
    size: int,
    source_run: dict[str, float],
    naive_rate: float | None,
    rsa_rate: float | None,
    runs: list[tuple[str, dict[str, float]]],
    floor: tuple[float, float] | None,
) -> None:
    source_rate = source_run["sent"] / source_run["wall_seconds"]
    print()
    print(
        f"{members:,} members, average message {size:,} bytes (as sent: filled per variant, weighted), "
        f"load {os.getloadavg()[0]:.2f} at the end"
    )
    unsigned = next((r for c, r in runs if c == "none"), None)
    unsigned_rate = unsigned["sent"] / unsigned["wall_seconds"] if unsigned else None
    print(f"{'':44}{'msg/s':>9}{'x smtp-source':>15}{'x naive':>9}{'x openssl rsa':>15}{'x unsigned':>12}")

    def row(label: str, rate: float, unsigned_ratio: bool = False) -> None:
        cells = f"{label:44}{rate:>9,.0f}{rate / source_rate:>14.2f}x"
        cells += f"{rate / naive_rate:>8.1f}x" if naive_rate else f"{'':>9}"
        cells += f"{rate / rsa_rate:>14.2f}x" if rsa_rate else f"{'':>15}"
        if unsigned_ratio and unsigned_rate:
            cells += f"{rate / unsigned_rate:>11.2f}x"
        print(cells)

    row("(a) smtp-source (C, pre-built, 8 conns)", source_rate)
    if naive_rate:
        row("(b) naive EmailMessage + smtplib", naive_rate)
    if rsa_rate:
        row("(d) openssl speed rsa2048, 1 core (sign/s)", rsa_rate)
    for choice, r in runs:
        if r["failed"]:
            print(f"  DKIM {choice}: {int(r['failed'])} failed!")
        row(f"(c) DKIM {choice}: delivery engine", r["sent"] / r["engine_seconds"])
        row(f"(c) DKIM {choice}: whole command", r["sent"] / r["wall_seconds"], unsigned_ratio=True)
    for choice, r in runs:
        print(
            f"DKIM {choice}: {int(r['sent']):,} sent in {r['wall_seconds']:.1f}s "
            f"(engine {r['engine_seconds']:.1f}s); peak RSS {r['rss_mb']:.0f} MB; "
            f"CPU {r['cpu_seconds']:.1f}s ({r['cpu_seconds'] / r['sent'] * 1e6:.0f} us a message, "
            "filling processes included)"
        )
    cores = os.cpu_count() or 1
    print(f"where the CPU went, a message (the sender's own + the sink's; cores both kept busy, of {cores}):")

    def account(label: str, r: dict[str, float], seconds: float) -> None:
        own, sink = r["cpu_seconds"] / r["sent"] * 1e6, r["sink_cpu_seconds"] / r["sent"] * 1e6
        busy = (r["cpu_seconds"] + r["sink_cpu_seconds"]) / seconds
        total = own + sink
        print(f"  {label:40}{own:>6.0f} us + sink {sink:>4.0f} us = {total:>4.0f} us; {busy:.2f} cores busy")

    account("(a) smtp-source", source_run, source_run["wall_seconds"])
    for choice, r in runs:
        account(f"(c) DKIM {choice} (while the engine ran)", r, r["engine_seconds"])
    if floor is not None and unsigned is not None:
        signed = next((r for c, r in runs if c == "ed25519"), None)
        sign, body = floor
        busy = (unsigned["cpu_seconds"] + unsigned["sink_cpu_seconds"]) / unsigned["engine_seconds"]
        budget = busy * unsigned["wall_seconds"] / 9 / unsigned["sent"] * 1e6
        extra = ""
        if signed is not None:
            measured = (signed["cpu_seconds"] - unsigned["cpu_seconds"]) / signed["sent"] * 1e6
            extra = f" (the send's own: {measured:.0f} us)"
        print(
            f"Ed25519's least extra work: a signature {sign:.0f} us + the body hash of {size:,} bytes "
            f"{body:.0f} us = {sign + body:.0f} us a message{extra}"
        )
        print(
            f"  what 0.9x the unsigned send leaves for it: {budget:.0f} us a message, with the "
            f"{busy:.2f} cores the unsigned send kept busy (the sink's share included)"
        )
    print(
        "targets: whole unsigned command >= 1.0x smtp-source; RSA whole command >= 0.6x openssl rsa "
        "(aim 1.0x); Ed25519 whole command >= 0.9x unsigned; RSS <= 250 MB at 325,000 members"
    )


if __name__ == "__main__":
    main()
