"""Benchmark: sending ready ~60 KB messages into Postfix's smtp-sink, three ways, in one run.

    .venv/bin/python bench/transport.py [--quick] [--count N] [--connections 8] [--rounds R]

(a) Postfix ``smtp-source`` (C): N messages of the same size over 8 reused connections (``-d``);
(b) ``aiosmtplib``: 8 concurrent connections, each ``sendmail`` of the ready message bytes;
(c) mailer's ``SmtpPool``: ``send_many`` of N pre-built, dot-stuffed DATA payloads over 8
    connections (PIPELINING, payload written as is, with the next envelope in the same write).

It prints the machine first (bench/machine.py).

All three go to the same ``smtp-sink`` on loopback, interleaved round by round, because the
machine is shared and its speed drifts; each figure is the median over the rounds. The anchor is
smtp-source; the target is (c) >= 0.5 x (a) (docs/decisions.md, The send's budget: smtp-source ~5,400/s on
these 2-core machines, smtplib/aiosmtplib ~1,400-1,700/s). Postfix is installed with apt-get if it is
missing.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_header

from mailer.transport import Outgoing, SmtpPool, data_payload

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared/seeds/004_c3d5667b87322864.txt"
SIZE = 56_000  # of text; with headers and HTML the message is ~60 KB
SENDER = "bounces+1@lists.example.org"
RECIPIENT = "member@example.net"


def find(tool: str) -> str | None:
    return shutil.which(tool) or next(
        (str(p) for p in (Path("/usr/sbin") / tool, Path("/usr/bin") / tool) if p.exists()), None
    )


def ensure_postfix_tools() -> tuple[str, str]:
    sink, source = find("smtp-sink"), find("smtp-source")
    if sink and source:
        return sink, source
    print("smtp-sink/smtp-source missing: installing postfix with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postfix"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    sink, source = find("smtp-sink"), find("smtp-source")
    if not (sink and source):
        raise SystemExit("postfix is installed but smtp-sink/smtp-source are not on this machine")
    return sink, source


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message_bytes() -> bytes:
    """A ~60 KB newsletter-like message (text and HTML), as the email package writes it for SMTP."""
    text = SEED.read_text(encoding="utf-8") if SEED.exists() else "Kent Network newsletter.\n" * 400
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Kent Network <newsletter@kent.example.org>"
    msg["To"] = f"Jane Smith <{RECIPIENT}>"
    msg["Subject"] = "Kent Network newsletter: November 2025"
    body = (text * (SIZE // 2 // len(text) + 1))[: SIZE // 2]
    msg.set_content(body)
    html = "".join(f"<p>{line}</p>\n" for line in body.splitlines() if line.strip())
    msg.add_alternative(html[: SIZE // 2], subtype="html")
    return msg.as_bytes()


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def smtp_source_command(source: str, port: int, count: int, connections: int, size: int) -> list[str]:
    """Postfix smtp-source sending ``count`` messages of ``size`` bytes over ``connections``
    reused connections (the anchor of every send bench)."""
    command = [source, "-s", str(connections), "-d", "-m", str(count), "-l", str(size)]
    return [*command, "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"]


def run_smtp_source(source: str, port: int, count: int, connections: int, size: int) -> float:
    command = smtp_source_command(source, port, count, connections, size)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return count / (time.perf_counter() - start)


async def run_aiosmtplib(port: int, count: int, connections: int, message: bytes) -> float:
    async def one(n: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.local") as smtp:
            for _ in range(n):
                await smtp.sendmail(SENDER, [RECIPIENT], message)

    shares = [count // connections + (i < count % connections) for i in range(connections)]
    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in shares))
    return count / (time.perf_counter() - start)


async def run_pool(port: int, count: int, connections: int, payload: bytes) -> tuple[float, int]:
    def messages() -> Iterator[Outgoing]:
        for i in range(count):
            yield Outgoing(SENDER, RECIPIENT, payload, key=i)

    async with SmtpPool(
        f"smtp://127.0.0.1:{port}", concurrency=connections, local_hostname="bench.local"
    ) as pool:
        ok = 0
        start = time.perf_counter()
        async for result in pool.send_many(messages()):
            ok += result.ok
        elapsed = time.perf_counter() - start
    if ok != count:
        raise SystemExit(f"mailer pool: only {ok} of {count} messages accepted")
    return count / elapsed, ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run (2,000 messages, 1 round)")
    parser.add_argument("--count", type=int, default=None, help="messages per method per round (20,000)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3)")
    args = parser.parse_args()
    count = args.count or (2_000 if args.quick else 20_000)
    rounds = args.rounds or (1 if args.quick else 3)
    print_header()

    sink, source = ensure_postfix_tools()
    message = message_bytes()
    payload = data_payload(message)
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink_proc = subprocess.Popen([sink, *user, f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        print(
            f"{count:,} messages of {len(message):,} bytes per method and round, "
            f"{args.connections} connections, {rounds} round(s), into smtp-sink on 127.0.0.1:{port}"
        )
        rates: dict[str, list[float]] = {"source": [], "aiosmtplib": [], "pool": []}
        cpu_per_message: list[float] = []
        for r in range(rounds):
            rates["source"].append(run_smtp_source(source, port, count, args.connections, len(message)))
            rates["aiosmtplib"].append(asyncio.run(run_aiosmtplib(port, count, args.connections, message)))
            before = cpu()
            rate, _ = asyncio.run(run_pool(port, count, args.connections, payload))
            cpu_per_message.append((cpu() - before) / count * 1e6)
            rates["pool"].append(rate)
            print(
                f"  round {r + 1}: smtp-source {rates['source'][-1]:,.0f}/s, "
                f"aiosmtplib {rates['aiosmtplib'][-1]:,.0f}/s, mailer {rates['pool'][-1]:,.0f}/s",
                flush=True,
            )
    finally:
        sink_proc.terminate()
        sink_proc.wait(10)

    median = {name: statistics.median(values) for name, values in rates.items()}
    ratios = [pool / source for pool, source in zip(rates["pool"], rates["source"], strict=True)]
    anchor = median["source"]
    print()
    print(f"{'method':<46} {'msg/s':>8} {'x smtp-source':>14}")
    rows = [
        ("(a) Postfix smtp-source (C, anchor)", median["source"]),
        ("(b) aiosmtplib sendmail, ready bytes", median["aiosmtplib"]),
        ("(c) mailer SmtpPool, pipelined payloads", median["pool"]),
    ]
    for label, value in rows:
        print(f"{label:<46} {value:>8,.0f} {value / anchor:>14.2f}")
    print()
    print(f"mailer pool CPU in this process: {statistics.median(cpu_per_message):.0f} us per message")
    print(f"mailer / aiosmtplib: {median['pool'] / median['aiosmtplib']:.2f}x")
    print("mailer / smtp-source, round by round: " + ", ".join(f"{r:.2f}" for r in ratios))
    target = 0.5 * anchor
    verdict = "meets" if median["pool"] >= target else "MISSES"
    print(f"target: mailer >= 0.5 x smtp-source = {target:,.0f}/s: {verdict}")
    sys.exit(0)


if __name__ == "__main__":
    main()
