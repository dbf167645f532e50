"""Benchmark: one-click unsubscribes answered while a send runs, on SQLite and on PostgreSQL.

    .venv/bin/python bench/web.py [--quick] [--backend sqlite|postgresql|both] [--processes N]
                                  [--members 20000] [--posts 1000] [--clients 50]

For each database it makes a workspace with ``--members`` generated members, starts
``mailer serve --processes N`` (its built-in sending worker on, as a network runs it), and sends
``--posts`` RFC 8058 one-click POSTs (``List-Unsubscribe=One-Click`` to ``/u/TOKEN``) from
``--clients`` client threads, twice: with the server idle (the anchor), and while the built-in
worker delivers the seed issue to every member into Postfix's ``smtp-sink``. For each run it
prints the latency (p50, p99, max), the rate, the requests that got no answer at all (a closed
connection or a timeout: there must be none), the answers other than 200, and where the CPU went:
user and system seconds of the server's processes (the supervisor with its worker, and the web
processes), of this bench itself, and the machine's load. The target on a quiet 2-core machine:
p99 <= 250 ms during the send, and nothing unanswered (docs/decisions.md, Serving).

PostgreSQL is reached at 127.0.0.1:5432 (``MAILER_BENCH_PG``, trust auth); a database of the
bench's own is made and dropped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_header
from transport import ensure_postfix_tools, free_port

from mailer import sending, tokens
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
PG = os.environ.get("MAILER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Answer:
    token: str
    status: int  # 0: no answer (connection closed, refused or timed out)
    at: float  # time.time() when it came
    seconds: float  # from sending the request to the answer


def one_click(base_url: str, token_list: Sequence[str], threads: int = 50) -> list[Answer]:
    """POST ``List-Unsubscribe=One-Click`` for each token from ``threads`` clients at once."""
    results: list[Answer] = []
    lock = threading.Lock()
    todo = list(token_list)

    def work() -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    if not todo:
                        return
                    token = todo.pop()
                start = time.perf_counter()
                try:
                    status = client.post(
                        f"{base_url}/u/{token}", data={"List-Unsubscribe": "One-Click"}
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                answer = Answer(token, status, time.time(), time.perf_counter() - start)
                with lock:
                    results.append(answer)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def start_server(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``mailer serve ARGS`` on a free port; returns the process and its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a busy machine starts processes slowly
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("mailer serve did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    proc.wait(90)


# --- where the CPU goes: /proc, for the server's process tree ------------------------------------
def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def cpu_of(pid: int) -> dict[int, tuple[float, float]]:
    """(user, system) seconds of ``pid`` and every process below it."""
    times = {}
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[p] = (int(fields[11]) / TICK, int(fields[12]) / TICK)
    return times


@dataclass
class Run:
    name: str
    answers: list[Answer]
    seconds: float
    server: tuple[float, float]
    own: tuple[float, float]
    load: float

    def line(self) -> str:
        ms = sorted(a.seconds * 1000 for a in self.answers)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        unanswered = sum(a.status == 0 for a in self.answers)
        other = sum(a.status not in (0, 200) for a in self.answers)
        return (
            f"{self.name:34}{statistics.median(ms):>7.0f}{p99:>7.0f}{ms[-1]:>7.0f}"
            f"{len(ms) / self.seconds:>8,.0f}{unanswered:>6}{other:>6}"
            f"{self.server[0]:>8.1f}{self.server[1]:>6.1f}{self.own[0]:>7.1f}{self.own[1]:>6.1f}{self.load:>6.2f}"
        )


HEADER = (
    f"{'':34}{'p50':>7}{'p99':>7}{'max':>7}{'POST/s':>8}{'none':>6}{'!200':>6}"
    f"{'srv-u':>8}{'srv-s':>6}{'own-u':>7}{'own-s':>6}{'load':>6}\n"
    f"{'':34}{'(ms)':>21}{'':>8}{'(no answer)':>12}{'(CPU seconds)':>27}"
)


def measure(name: str, server_pid: int, base: str, token_list: Sequence[str], clients: int) -> Run:
    before, own_before = cpu_of(server_pid), os.times()
    start = time.perf_counter()
    answers = one_click(base, token_list, clients)
    seconds = time.perf_counter() - start
    after, own_after = cpu_of(server_pid), os.times()
    user = sum(u - before.get(p, (0.0, 0.0))[0] for p, (u, _s) in after.items())
    system = sum(s - before.get(p, (0.0, 0.0))[1] for p, (_u, s) in after.items())
    own = (own_after.user - own_before.user, own_after.system - own_before.system)
    return Run(name, answers, seconds, (user, system), own, os.getloadavg()[0])


@contextmanager
def database(backend: str, ws: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{ws / 'mailer.db'}"
        return
    import psycopg

    name = f"mailer_bench_{os.getpid()}"
    admin = PG.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bench(backend: str, args: argparse.Namespace, sink_port: int, tmp: Path) -> list[Run]:
    ws = tmp / backend
    init_workspace(ws)
    shutil.copytree(ROOT / "campaigns" / SLUG, ws / "campaigns" / SLUG)
    issue = ws / "campaigns" / SLUG / "issue.yaml"
    issue.write_text(issue.read_text().replace("audience: region:kent", "audience: all", 1))
    with database(backend, ws) as url:
        env = dict(os.environ, MAILER_WORKSPACE=str(ws), MAILER_SECRET=SECRET, MAILER_DATABASE_URL=url)
        env["MAILER_RELAY"] = f"smtp://127.0.0.1:{sink_port}"
        settings = load(ws, env={k: v for k, v in env.items() if k.startswith("MAILER_")})
        shape = load_shape(ws / "lists")
        write_csv(tmp / f"members-{backend}.csv", generate(args.members, shape, seed=5))
        db = open_database(settings)
        with db.session() as session:
            sync(session, shape)
            import_csv(session, tmp / f"members-{backend}.csv", shape)
        ids = range(1, args.members + 1)
        idle_ids, busy_ids = ids[: args.posts], ids[-args.posts :]

        def sign(member: int) -> str:
            return tokens.sign("unsubscribe", member, keys=[SECRET])

        server, base = start_server(env, "--processes", str(args.processes))
        try:
            one_click(base, [sign(m) for m in ids[args.posts : args.posts + 50]], 10)  # warm up
            idle = measure(
                f"{backend}: idle (anchor)", server.pid, base, [sign(m) for m in idle_ids], args.clients
            )
            sending.send(sending.plan_send(db, settings, shape, SLUG, to_workers=True))
            deadline = time.monotonic() + 60
            while sending.campaign_status(db, shape, SLUG).counts.get("sent", 0) < 200:
                assert time.monotonic() < deadline, "the built-in worker did not start sending"
                time.sleep(0.2)
            busy = measure(
                f"{backend}: during a send", server.pid, base, [sign(m) for m in busy_ids], args.clients
            )
            status = sending.campaign_status(db, shape, SLUG)
            sent = status.counts.get("sent", 0)
            print(f"  {backend}: the send was {status.status} when the POSTs ended ({sent:,} sent)")
        finally:
            stop_server(server)
            db.dispose()
    return [idle, busy]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--posts", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
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
    runs: list[Run] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mailer-bench-web-") as tmp:
            for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
                runs += bench(backend, args, sink_port, Path(tmp))
    finally:
        sink_proc.terminate()
        sink_proc.wait()
    print(f"{args.posts:,} one-click POSTs from {args.clients} clients each run; ", end="")
    print(f"mailer serve --processes {args.processes}")
    print(HEADER)
    for run in runs:
        print(run.line())
    unanswered = sum(a.status == 0 for r in runs for a in r.answers)
    print(f"requests without an answer: {unanswered} (must be 0); target: p99 <= 250 ms during a send")


if __name__ == "__main__":
    main()
