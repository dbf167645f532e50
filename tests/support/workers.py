"""Shared by the tests of ``mailer worker`` processes: a workspace on PostgreSQL with short leases,
worker subprocesses that log to files, and small readers of the queue and of ``mailer workers``.

The fixtures themselves stay in the test files (``pg_workspace``, ``workers_factory``), made from
:func:`make_pg_workspace` and :class:`Workers`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO, TEST_SECRET, _empty_pg
from sqlalchemy import select

from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape, load_shape, sync
from mailer.audience.synthetic import generate, write_csv
from mailer.db import Database, open_database
from mailer.models import Campaign, Delivery, Member
from mailer.settings import Settings, load
from support.cli_runner import MailerCli
from support.smtp_server import SmtpTestServer

SLUG = "2025-11-echr-alert"
LEASE = 3.0
HEARTBEAT = 0.5
CONCURRENCY = 4
WINDOW = max(16, 4 * CONCURRENCY)  # the SMTP pool's default window at this concurrency


# ---------------------------------------------------------------------------------------------
# a workspace on PostgreSQL with short leases, and worker processes


def configure(workspace: Path, **values: object) -> None:
    """Set settings in the workspace's mailer.toml (every setting is written there by init)."""
    path = workspace / "mailer.toml"
    text = path.read_text()
    for name, value in values.items():
        text, n = re.subn(rf"(?m)^{name} = .*$", f"{name} = {json.dumps(value)}", text)
        assert n == 1, name
    path.write_text(text)


@dataclass
class PgWorkspace:
    root: Path
    url: str
    settings: Settings
    shape: Shape
    db: Database
    tmp: Path

    def env(self, relay: str) -> dict[str, str]:
        return dict(
            os.environ,
            MAILER_WORKSPACE=str(self.root),
            MAILER_DATABASE_URL=self.url,
            MAILER_SECRET=TEST_SECRET,
            MAILER_RELAY=relay,
        )

    def reload(self) -> None:
        self.settings = load(self.root, env={"MAILER_DATABASE_URL": self.url, "MAILER_SECRET": TEST_SECRET})


def make_pg_workspace(pg_session_url: str, workspace: Path, tmp_path: Path) -> PgWorkspace:
    """A workspace on the session's PostgreSQL database (emptied), with the alert to everyone
    (``db.dispose()`` it at the end)."""
    _empty_pg(pg_session_url)
    configure(
        workspace,
        lease_seconds=LEASE,
        heartbeat_seconds=HEARTBEAT,
        concurrency=CONCURRENCY,
        batch_size=200,
    )
    dest = workspace / "campaigns" / SLUG
    shutil.copytree(REPO / "campaigns" / SLUG, dest)
    issue = dest / "issue.yaml"
    issue.write_text(issue.read_text().replace("audience: interest:mp-advocacy", "audience: all", 1))
    settings = load(workspace, env={"MAILER_DATABASE_URL": pg_session_url, "MAILER_SECRET": TEST_SECRET})
    shape = load_shape(workspace / "lists")
    db = open_database(settings)
    with db.session() as session:
        sync(session, shape)
    return PgWorkspace(workspace, pg_session_url, settings, shape, db, tmp_path)


def add_members(ws: PgWorkspace | tuple[Database, Shape, Path], count: int) -> set[str]:
    db, shape, tmp = (ws.db, ws.shape, ws.tmp) if isinstance(ws, PgWorkspace) else ws
    csv_path = tmp / f"members-{count}.csv"
    write_csv(csv_path, generate(count, shape, seed=7))
    with db.session() as session:
        report = import_csv(session, csv_path, shape)
        assert report.rejected == 0
        return set(session.scalars(select(Member.email)))


class Workers:
    """``mailer worker`` subprocesses, each logging to files; all stopped at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *names: str) -> None:
        for name in names:
            out = open(self.logs / f"{name}.out", "wb")  # noqa: SIM115 - the child writes to it
            err = open(self.logs / f"{name}.err", "wb")  # noqa: SIM115
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "mailer", "worker", "--id", name, "--json"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
            out.close()
            err.close()

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def terminate(self, *names: str) -> dict[str, dict[str, object]]:
        """SIGTERM, wait, and return each worker's JSON summary."""
        for name in names:
            self.procs[name].send_signal(signal.SIGTERM)
        out = {}
        for name in names:
            code = self.procs[name].wait(60)
            assert code == 0, self.log(name)
            out[name] = json.loads((self.logs / f"{name}.out").read_text())
        return out

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.err").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def cli_json(env: dict[str, str], *args: str) -> object:
    out = MailerCli(env)(*args, "--json")
    assert out.exit_code == 0, out.stderr
    return json.loads(out.stdout)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def campaign_status(db: Database) -> str:
    with db.session() as session:
        return str(session.scalars(select(Campaign.status).where(Campaign.slug == SLUG)).one())


def statuses(db: Database) -> Counter[str]:
    with db.session() as session:
        return Counter(session.scalars(select(Delivery.status)))


def received(server: SmtpTestServer) -> Counter[str]:
    return Counter(r for m in server.messages for r in m.rcpt_tos)


def health(env: dict[str, str]) -> dict[str, dict[str, object]]:
    data = cli_json(env, "workers")
    assert isinstance(data, list)
    return {h["name"]: h for h in data}
