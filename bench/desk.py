"""Benchmark: the server time of every page of the desk, beside the sign-in page.

    .venv/bin/python bench/desk.py [--quick] [--runs 30] [--database-url URL] [--check] [--json]

It makes the demo workspace (``mailer demo``'s data: both networks, the demo members, the three demo
campaigns sent to the outbox) on SQLite in a temporary folder, or on ``--database-url`` (an empty
PostgreSQL database: ``createdb mailer_bench`` then ``--database-url
postgresql+psycopg://127.0.0.1/mailer_bench``), adds an issue of 20 items (generated from the
Central England one) and a contribution waiting in an inbox, and signs an admin in with a session
made by the desk's library. Then it GETs every desk page ``--runs`` times in turn, in this process
(the app called as ASGI, no network), and times each call inside the app (``time.perf_counter``
around the ASGI call: server time, not the client's). The pages are found by walking the desk's
routes (``mailer.web.desk.routes``): a new page is measured without being named here, and a new
path parameter stops the bench until it is given a value below.

It prints p50, p95 and max per page and the p95's ratio to the anchor, the sign-in page (the
desk's lightest page, measured in the same run). Targets: every page's p95 at most 100 ms, and the
form of the 20-item issue at most 150 ms; with ``--check`` it exits 1 when one is missed. Figures
taken on a busy machine are noise: compare ratios, on a quiet machine.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anyio.to_thread
from machine import print_header
from ruamel.yaml import YAML
from sqlalchemy import select
from starlette.routing import Route

from mailer.audience.shape import Shape, load_shape
from mailer.db import Database, open_database
from mailer.demo import run_demo
from mailer.desk import contribution_forms, inbox, people, sessions
from mailer.models import EventRow
from mailer.settings import Settings, load
from mailer.web import create_app
from mailer.web.desk.routes import routes as desk_routes

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ANCHOR = "/desk/sign-in"
BIG = "2026-01-twenty-items"  # the generated issue of 20 items
NETWORK = "central-england"
# Pages of a sent issue only (the 20-item issue is not sent): measured for the demo's sent issue.
SENT_ONLY = ("/progress", "/progress.json", "/report")
# Pages that need a query to show what they are for (the confirmation of removing the first item).
QUERIES = {"/desk/issues/{slug}/remove": "?item=0"}
PAGE_TARGET_MS = 100.0
BIG_FORM_TARGET_MS = 150.0
ADMIN = "bench-admin@example.org"
# A strong key (weak ones are refused), for benchmarks only.
SECRET = "dU4eNoftE3ADXmtB2tE6RVR0-W4bbJPGix-KjjqDR1MdbWvxuHKoZlzlTDqkRD18"


@dataclass
class Timed:
    """The ASGI app, timed: each call's server time in seconds, by path, in order."""

    app: Any
    times: dict[str, list[float]] = field(default_factory=dict)
    profiler: cProfile.Profile | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        if self.profiler is not None:
            self.profiler.enable()
        try:
            await self.app(scope, receive, send)
        finally:
            if self.profiler is not None:
                self.profiler.disable()
            self.times.setdefault(scope["path"], []).append(time.perf_counter() - start)


@dataclass(frozen=True)
class Page:
    label: str
    path: str
    target_ms: float | None  # None: the anchor
    anonymous: bool = False  # the sign-in pages are seen signed out (signed in, they redirect)


@dataclass(frozen=True)
class Row:
    label: str
    path: str
    p50_ms: float
    p95_ms: float
    max_ms: float
    ratio: float
    target_ms: float | None

    @property
    def met(self) -> bool:
        return self.target_ms is None or self.p95_ms <= self.target_ms


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


# ---------------------------------------------------------------------------------------------
# The data: the demo, an issue of 20 items, a contribution, an admin


def twenty_items(workspace: Path, slug: str = BIG, count: int = 20) -> Path:
    """``campaigns/<slug>/issue.yaml``: the Central England issue with its items repeated (new ids
    and titles) up to ``count`` items."""
    yaml = YAML()
    yaml.preserve_quotes = True
    source = workspace / "campaigns" / "2025-12-central-england" / "issue.yaml"
    data = yaml.load(source.read_text(encoding="utf-8"))
    items = list(data["items"])
    made = []
    for n in range(count):
        item = yaml.load(_dump(yaml, items[n % len(items)]))
        item["id"] = f"{item['id']}-{n + 1}"
        item["title"] = f"{item['title']} ({n + 1})"
        made.append(item)
    data["items"] = made
    data["title"] = "Central England Network Newsletter: January 2026 (twenty items)"
    target = workspace / "campaigns" / slug / "issue.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_dump(yaml, data), encoding="utf-8")
    return target


def _dump(yaml: YAML, value: Any) -> str:
    import io

    out = io.StringIO()
    yaml.dump(value, out)
    return out.getvalue()


def contribution(db: Database, shape: Shape, settings: Settings, by: int) -> int:
    """A news item waiting in the Central England inbox; its id."""
    regions = contribution_forms.network_regions(shape, settings, NETWORK)
    raw = {
        "title": "Coffee morning for Write for Rights",
        "highlight": "join our coffee morning and write a card",
        "body": "Join us at the library on Saturday morning to write cards for Write for Rights.",
        "region": regions[0] if regions else "",
    }
    checked = contribution_forms.check("item", raw, shape, regions, date.today())
    assert not checked.errors, checked.errors
    with db.session() as s:
        return inbox.submit(s, NETWORK, checked, by=by, now=datetime.now(UTC))


def admin_cookie(db: Database, shape: Shape, settings: Settings) -> tuple[int, str]:
    """An admin of every network and a session for them (the cookie's value), made by the desk's
    library as the desk's own tests do."""
    now = datetime.now(UTC)
    with db.session() as s:
        role = people.check_role(shape, settings, "admin")
        user_id = people.add(s, ADMIN, role, name="Bench Admin", by=None, now=now).person.id
        return user_id, sessions.create(s, user_id, now=now, user_agent="bench")


# ---------------------------------------------------------------------------------------------
# The pages


def page_paths(values: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Every GET route of the desk with its path parameters filled from ``values``: (route, path)."""
    for route in desk_routes:
        if not isinstance(route, Route) or "GET" not in (route.methods or ()):
            continue
        missing = [p for p in route.param_convertors if p not in values]
        if missing:
            raise SystemExit(f"bench/desk.py: give the page {route.path} a value for {', '.join(missing)}")
        path = route.path.format(**{p: values[p] for p in route.param_convertors})
        yield route.path, path + QUERIES.get(route.path, "")


def pages(values: dict[str, str]) -> list[Page]:
    """The pages measured: the desk's GET routes; those of an issue both for the demo's Central
    England issue and for the 20-item one; the sign-in page is the anchor."""
    out: list[Page] = []
    for route, path in page_paths(values):
        if path == ANCHOR:
            out.insert(0, Page("(anchor) sign-in page", path, None, anonymous=True))
            continue
        label = route.replace("{", "").replace("}", "")
        out.append(Page(label, path, PAGE_TARGET_MS, anonymous=route.startswith(ANCHOR)))
        if "{slug}" in route and not route.endswith(SENT_ONLY):
            big = route.format(**{**values, "slug": BIG}) + QUERIES.get(route, "")
            target = BIG_FORM_TARGET_MS if route == "/desk/issues/{slug}" else PAGE_TARGET_MS
            out.append(Page(f"{label} (20 items)", big, target))
    return out


def profiled(clients: tuple[TestClient, TestClient], timed: Timed, listed: list[Page]) -> None:
    """GET ``listed`` once with cProfile on in the app's thread, the work the app hands to threads
    done inline (so the profile sees it); the functions by cumulative time, on stderr."""
    signed_in, signed_out = clients
    threaded = anyio.to_thread.run_sync

    async def inline(func: Callable[..., Any], *args: Any, **_kw: Any) -> Any:
        return func(*args)

    timed.profiler = cProfile.Profile()
    anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    try:
        for page in listed:
            (signed_out if page.anonymous else signed_in).get(page.path)
    finally:
        anyio.to_thread.run_sync = threaded
        profile, timed.profiler = timed.profiler, None
    pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(50)
    timed.times.clear()


def measure(
    clients: tuple[TestClient, TestClient],
    timed: Timed,
    listed: list[Page],
    runs: int,
    progress: Callable[[str], None],
    profile: str = "",
) -> list[Row]:
    """GET each page once (to warm it and check it answers 200), then every page in turn ``runs``
    times; the rows, by page. ``clients``: signed in, signed out. With ``profile``, the pages whose
    label has it are first profiled once more (cProfile, on stderr)."""
    signed_in, signed_out = clients
    for page in listed:
        client = signed_out if page.anonymous else signed_in
        got = client.get(page.path)
        if got.status_code != 200:
            raise SystemExit(f"bench/desk.py: {page.path} answered {got.status_code}, not 200")
    timed.times.clear()
    if profile:
        profiled(clients, timed, [p for p in listed if profile in p.label])
    for n in range(runs):
        for page in listed:
            (signed_out if page.anonymous else signed_in).get(page.path)
        if (n + 1) % 10 == 0:
            progress(f"  {n + 1} of {runs} rounds")
    anchor_p95 = percentile(timed.times[listed[0].path], 0.95)
    rows = []
    for page in listed:
        t = [1000 * x for x in timed.times[page.path.partition("?")[0]]]
        p95 = percentile(t, 0.95)
        rows.append(
            Row(
                page.label,
                page.path,
                statistics.median(t),
                p95,
                max(t),
                p95 / (1000 * anchor_p95),
                page.target_ms,
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------


def run(runs: int, database_url: str | None, progress: Callable[[str], None], profile: str = "") -> list[Row]:
    """Build the data in a temporary workspace and measure every page ``runs`` times."""
    env_before = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="mailer-bench-desk-") as tmp:
        ws = Path(tmp) / "ws"
        os.environ["MAILER_SECRET"] = SECRET
        if database_url:
            os.environ["MAILER_DATABASE_URL"] = database_url
        try:
            progress("making the demo workspace (mailer demo) …")
            run_demo(ws, echo=lambda _line: None)
            twenty_items(ws)
            settings = load(ws)
            shape = load_shape(settings.path("lists"))
            db = open_database(settings)
            try:
                user_id, cookie = admin_cookie(db, shape, settings)
                contribution_id = contribution(db, shape, settings, user_id)
                with db.session() as s:
                    link = sessions.issue_link(s, user_id, now=datetime.now(UTC))
                    # An event of the sent Central England issue (sending put it in the calendar).
                    uid = s.scalars(select(EventRow.uid).order_by(EventRow.id)).first() or ""
                values = {
                    "name": NETWORK,
                    "slug": "2025-12-central-england",
                    "id": str(contribution_id),
                    "kind": "item",
                    "token": link,
                    "uid": uid,
                }
                timed = Timed(create_app(settings, shape=shape, database=db))
                base = "http://127.0.0.1:8000"
                with (
                    TestClient(timed, base_url=base, follow_redirects=False) as signed_in,
                    TestClient(timed, base_url=base, follow_redirects=False) as signed_out,
                ):
                    signed_in.cookies.set(sessions.cookie_name(settings), cookie)
                    progress(f"measuring {runs} rounds …")
                    return measure((signed_in, signed_out), timed, pages(values), runs, progress, profile)
            finally:
                db.dispose()
        finally:
            os.environ.clear()
            os.environ.update(env_before)


def print_rows(rows: list[Row], runs: int) -> None:
    print(f"# {runs} GETs a page, server time (inside the app), in ms")
    print(f"{'page':58}{'p50':>9}{'p95':>9}{'max':>9}{'p95/anchor':>12}{'target':>12}")
    for r in rows:
        target = "" if r.target_ms is None else f"{r.target_ms:.0f}" + ("" if r.met else " MISSED")
        print(f"{r.label:58}{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}{r.max_ms:>9.1f}{r.ratio:>11.1f}×{target:>12}")
    pages_only = [r for r in rows if r.target_ms is not None]
    worst = max(pages_only, key=lambda r: r.p95_ms)
    missed = [r for r in pages_only if not r.met]
    print(f"slowest page: {worst.label}, p95 {worst.p95_ms:.1f} ms = {worst.ratio:.1f}× the sign-in page")
    print(f"targets missed: {len(missed)} of {len(pages_only)}")
    anchor = rows[0]
    big = next(r for r in rows if r.label == "/desk/issues/slug (20 items)")
    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    print(
        f"README row: | `bench/desk.py` ({when}, load {os.getloadavg()[0]:.2f}): server time of every desk "
        f"page, demo data, {runs} GETs each, p95 | slowest page {worst.label} {worst.p95_ms:.0f} ms; "
        f"the issue form of a 20-item issue {big.p95_ms:.0f} ms | "
        f"the sign-in page, {anchor.p95_ms:.1f} ms (same run) | "
        f"{worst.ratio:.0f}× / {big.ratio:.0f}× | every page ≤ 100 ms; the 20-item issue form ≤ 150 ms "
        "(`--check`) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="GETs of each page (default 30)")
    parser.add_argument("--quick", action="store_true", help="3 GETs a page: to see that it runs")
    parser.add_argument("--database-url", help="an empty database to use instead of a new SQLite file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a page misses its target")
    parser.add_argument(
        "--profile", default="", metavar="TEXT", help="profile the pages whose label has TEXT (on stderr)"
    )
    parser.add_argument("--json", action="store_true", help="the rows as JSON (no header)")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    if not args.json:
        print_header()
    quiet = args.json

    def progress(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    cpu_before = time.process_time()
    rows = run(runs, args.database_url, progress, args.profile)
    cpu = time.process_time() - cpu_before
    if args.json:
        print(json.dumps([{**r.__dict__, "met": r.met} for r in rows], indent=2))
    else:
        print_rows(rows, runs)
        print(f"# CPU of this process (building the demo included): {cpu:.1f} s")
    if args.check and not all(r.met for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
