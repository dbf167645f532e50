"""Benchmark: one-click unsubscribes per second while a send is running.

    .venv/bin/python bench/web.py [--quick] [--members 20000] [--posts 1000]

It makes a workspace with ``--members`` generated members on SQLite, starts ``mailer serve`` (one
uvicorn process), and measures ``--posts`` RFC 8058 one-click POSTs (``List-Unsubscribe=One-Click``
to ``/u/TOKEN``) from this process with 8 client threads, twice in one run: with the server idle
(the anchor), and while ``mailer campaigns send`` delivers the seed issue to every member into
Postfix's ``smtp-sink``. It prints both rates, their ratio, and checks that every POST answered 200
and was recorded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_header
from transport import ensure_postfix_tools, free_port

from mailer import tokens
from mailer.audience.importer import import_csv
from mailer.audience.shape import load_shape, sync
from mailer.audience.synthetic import generate, write_csv
from mailer.db import open_database
from mailer.settings import load
from mailer.workspace import init_workspace

ROOT = Path(__file__).resolve().parent.parent
SLUG = "2025-11-kent-network"
# A strong key (weak ones are refused), for benchmarks only.
SECRET = "dU4eNoftE3ADXmtB2tE6RVR0-W4bbJPGix-KjjqDR1MdbWvxuHKoZlzlTDqkRD18"


def one_click(base_url: str, token_list: Sequence[str], threads: int = 8) -> list[tuple[str, int, float]]:
    """POST ``List-Unsubscribe=One-Click`` for each token; (token, HTTP status, time done) each."""
    results: list[tuple[str, int, float]] = []
    lock = threading.Lock()
    todo = list(token_list)

    def work() -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    if not todo:
                        return
                    token = todo.pop()
                try:
                    status = client.post(
                        f"{base_url}/u/{token}", data={"List-Unsubscribe": "One-Click"}
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    results.append((token, status, time.time()))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``mailer serve`` on a free port; returns the process and its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/subscribe", timeout=2)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("mailer serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--posts", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="5,000 members, 300 POSTs")
    args = parser.parse_args()
    print_header()
    if args.quick:
        args.members, args.posts = 5_000, 300
    sink, _source = ensure_postfix_tools()
    sink_port = free_port()
    sink_proc = subprocess.Popen(
        [sink, "-c", "-u", "root", f"127.0.0.1:{sink_port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory(prefix="mailer-bench-web-") as tmp:
        ws = Path(tmp) / "ws"
        init_workspace(ws)
        shutil.copytree(ROOT / "campaigns" / SLUG, ws / "campaigns" / SLUG)
        issue = ws / "campaigns" / SLUG / "issue.yaml"
        issue.write_text(issue.read_text().replace("audience: region:kent", "audience: all", 1))
        env = dict(os.environ, MAILER_WORKSPACE=str(ws), MAILER_SECRET=SECRET)
        env["MAILER_RELAY"] = f"smtp://127.0.0.1:{sink_port}"
        settings = load(ws, env={"MAILER_SECRET": SECRET})
        shape = load_shape(ws / "lists")
        write_csv(Path(tmp) / "members.csv", generate(args.members, shape, seed=5))
        db = open_database(settings)
        with db.session() as session:
            sync(session, shape)
            import_csv(session, Path(tmp) / "members.csv", shape)
        db.dispose()
        ids = range(1, args.members + 1)
        idle_ids, busy_ids = ids[: args.posts], ids[-args.posts :]
        sign = lambda m: tokens.sign("unsubscribe", m, keys=[SECRET])  # noqa: E731
        server, base = start_server(env)
        try:
            start = time.perf_counter()
            idle = one_click(base, [sign(m) for m in idle_ids])
            idle_rate = len(idle) / (time.perf_counter() - start)
            send = subprocess.Popen(
                [sys.executable, "-m", "mailer", "campaigns", "send", SLUG, "--yes", "--json"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            time.sleep(2.0)  # let it plan, render and start sending
            running = send.poll() is None
            start = time.perf_counter()
            busy = one_click(base, [sign(m) for m in busy_ids])
            busy_rate = len(busy) / (time.perf_counter() - start)
            still_running = send.poll() is None
            send.wait()
        finally:
            server.terminate()
            server.wait()
            sink_proc.terminate()
            sink_proc.wait()
    bad = [r for r in idle + busy if r[1] != 200]
    print(f"{'':44}{'unsubscribes/s':>16}")
    print(f"{'(anchor) one-click POSTs, server idle':44}{idle_rate:>16,.0f}")
    print(f"{'one-click POSTs during a send':44}{busy_rate:>16,.0f}")
    print(f"ratio busy / idle: {busy_rate / idle_rate:.2f}")
    print(f"send running when the POSTs started: {running}; still running when they ended: {still_running}")
    print(f"answers other than 200: {len(bad)} of {len(idle) + len(busy)}")


if __name__ == "__main__":
    main()
