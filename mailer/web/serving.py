"""Running the web app for real: several web processes and one sending worker (``mailer serve``).

The process that ``mailer serve`` starts supervises (docs/decisions.md, Serving):

- it opens (and migrates) the database once, then starts ``processes`` web processes with
  uvicorn's multi-process supervisor, each building the app with :func:`mailer.web.app.factory`
  on one shared listening socket; a web process that dies is replaced;
- it runs the one embedded sending worker (:class:`mailer.sending.Worker` with the workers' chores)
  in a thread of its own, so the desk's sends, scheduled campaigns and deferred retries go out with
  ``mailer serve`` alone, and the web processes never do the sending's work. On SQLite, where one
  worker runs at a time, it does not start beside a live separate ``mailer worker``;
- on SIGTERM or Ctrl-C it stops the web processes (each finishes the requests it has), then the
  worker (which finishes the messages on a connection and puts the rest back).

Web requests are counted across the processes by prometheus-client's multiprocess mode, in a
folder of this run's own (``PROMETHEUS_MULTIPROC_DIR``) unless one is given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mailer.chores import default_chores
from mailer.db import Database
from mailer.errors import MailerError
from mailer.sending import Worker, alive_workers
from mailer.settings import Settings
from mailer.web.logs import log_config

log = logging.getLogger("mailer.serve")

#: Connections the kernel holds for us while every process is busy (capped by net.core.somaxconn).
BACKLOG = 4096
#: Seconds an idle keep-alive connection stays open: longer than a proxy's (nginx keeps 60), so
#: the proxy, not we, closes it, and a request never meets a connection being closed.
KEEP_ALIVE = 75
#: Seconds the web processes have to finish their requests when told to stop.
GRACEFUL = 20
#: Seconds a web process has to answer its supervisor (a busy machine starts processes slowly).
HEALTHCHECK = 30


@dataclass(frozen=True)
class Plan:
    """What ``mailer serve`` will run; ``worker_note`` says why the embedded worker does not."""

    host: str
    port: int
    processes: int
    proxy: bool
    worker: bool
    worker_note: str = ""


def plan(
    db: Database, settings: Settings, *, host: str, port: int, processes: int, proxy: bool, worker: bool
) -> Plan:
    """Whether the embedded worker can run: asked for, and on SQLite no separate one alive."""
    note = ""
    if not worker:
        note = "off (--no-worker): sends from the desk and scheduled campaigns wait for a `mailer worker`"
    elif db.engine.dialect.name == "sqlite":
        live = alive_workers(db, settings)
        if live:
            worker = False
            note = (
                f"not started: worker {live[0]} is already running on this SQLite database, which takes "
                "one worker at a time; it sends the desk's campaigns"
            )
    log_config(settings)  # a bad log_format is refused before anything starts
    return Plan(host, port, processes, proxy, worker, note)


class EmbeddedWorker:
    """A :class:`mailer.sending.Worker` on an event loop of its own, in a thread."""

    def __init__(self, db: Database, settings: Settings, say: Callable[[str], None]) -> None:
        self.worker = Worker(db, settings, say=say, chores=default_chores(settings))
        self.say = say
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="mailer-worker", daemon=True)
        self.ready = threading.Event()

    @property
    def name(self) -> str:
        return self.worker.name

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready.set()
        try:
            summary = self.loop.run_until_complete(self.worker.run())
            self.say(f"worker {summary.name} {summary.stopped_because or 'stopped'}: sent {summary.sent}")
        except MailerError as exc:  # e.g. a worker started on the same SQLite database meanwhile
            self.say(f"the built-in sending worker stopped: {exc}")
        except Exception:
            log.exception("the built-in sending worker stopped on an error")
        finally:
            self.loop.close()

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(5)

    def stop(self, reason: str = "stopped with the web app", timeout: float = 60.0) -> None:
        if self.loop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.worker.stop, reason)
        self.thread.join(timeout)


def run(db: Database, settings: Settings, served: Plan, say: Callable[[str], None]) -> None:
    """Serve until SIGTERM or Ctrl-C: ``served.processes`` web processes, and the embedded worker
    when ``served.worker``."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ["MAILER_WORKSPACE"] = str(settings.workspace)
    own_metrics = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if own_metrics:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mailer-metrics-")
    config = uvicorn.Config(
        "mailer.web.app:factory",
        factory=True,
        host=served.host,
        port=served.port,
        workers=served.processes,
        proxy_headers=served.proxy,
        forwarded_allow_ips="127.0.0.1" if served.proxy else None,
        server_header=False,
        log_level="info",
        log_config=log_config(settings),
        backlog=BACKLOG,
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=GRACEFUL,
        timeout_worker_healthcheck=HEALTHCHECK,
    )
    embedded = EmbeddedWorker(db, settings, say) if served.worker else None
    try:
        sock = config.bind_socket()
        if embedded is not None:
            embedded.start()
        Multiprocess(config, sockets=[sock]).run()
    finally:
        if embedded is not None:
            embedded.stop()
        db.dispose()
        if own_metrics:
            shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"), ignore_errors=True)
