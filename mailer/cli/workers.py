"""``mailer worker`` (a long-running sender) and ``mailer workers`` (who is alive, what they hold)."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import click

from mailer.cli import App, cli, emit, json_option, pass_app

if TYPE_CHECKING:
    from mailer.sending import WorkerSummary


@cli.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="SMTP connections of this worker (default: the concurrency setting).",
)
@click.option(
    "--id",
    "name",
    metavar="NAME",
    help="This worker's name in `mailer workers` and on its claims (default: host:pid:random). "
    "Two running workers cannot share one.",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), help="Deliveries claimed at a time (default: batch_size)."
)
@json_option
@pass_app
def worker_command(
    app: App, concurrency: int | None, name: str | None, batch_size: int | None, as_json: bool
) -> None:
    """Send every campaign being sent, alongside any number of other workers, until stopped.

    Start as many as you like, on as many machines as share the PostgreSQL database: they split
    each campaign between them batch by batch, share each relay's rate limit, and start scheduled
    campaigns on time. SIGTERM or Ctrl-C finishes the messages on a connection, records them and
    exits; a worker that is killed outright loses its claims after lease_seconds, and the others
    send what it had not. `mailer workers` shows who is alive.

    A database restart, failover or outage does not stop it: it says so once, waits (backing off
    up to 2 seconds between tries), records what it sent meanwhile, and goes on.

    \b
    Examples:
      mailer worker
      mailer worker --concurrency 16 --id mail-2
    """
    from mailer.chores import default_chores
    from mailer.redact import redact_url
    from mailer.sending import Worker

    settings = app.settings

    def say(line: str) -> None:
        click.echo(line, err=as_json)

    worker = Worker(
        app.db,
        settings,
        name=name,
        concurrency=concurrency,
        batch_size=batch_size,
        say=say,
        chores=default_chores(settings),
    )

    relays = ", ".join(redact_url(u) for u in settings.relays)  # never a password in the log

    async def main() -> WorkerSummary:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop, f"stopped by {signal.Signals(sig).name}")
        say(
            f"worker {worker.name}: {worker.concurrency} connection(s) to {relays}; "
            f"lease {settings.lease_seconds:g}s, heartbeat {settings.heartbeat_seconds:g}s"
        )
        return await worker.run()

    summary = asyncio.run(main())

    def human() -> None:
        click.echo(
            f"worker {summary.name} {summary.stopped_because or 'stopped'}: sent {summary.sent}, "
            f"failed {summary.failed} in {summary.seconds:.1f}s"
        )

    emit(as_json, summary.as_dict(), human)


@cli.command("workers")
@json_option
@pass_app
def workers_command(app: App, as_json: bool) -> None:
    """Show each worker heard from in the last day: alive or not, what it holds, its rate.

    A worker is alive while its heartbeat is recent (three heartbeat_seconds); "stopped" means it
    was stopped cleanly (SIGTERM, Ctrl-C); "lost" means it stopped without that (it died of an
    error, was killed, or its machine is gone): its claims go back to the others when their
    leases end.

    \b
    Examples:
      mailer workers
      mailer workers --json
    """
    from mailer.sending import worker_health

    health = worker_health(app.db, app.settings)

    def human() -> None:
        if not health:
            click.echo("no workers: start one with `mailer worker` (as many as you like, on any machine)")
            return
        for h in health:
            where = f" on {h.campaign}" if h.campaign else ""
            click.echo(
                f"{h.name}  {h.state}{where}  holding {h.holding}  sent {h.sent}  {h.rate:,.0f}/s  "
                f"{h.concurrency} conn  heartbeat {h.seconds_since_heartbeat:.1f}s ago"
            )
        alive = sum(h.state == "alive" for h in health)
        click.echo(f"{alive} alive, {len(health) - alive} not")

    emit(as_json, [h.as_dict() for h in health], human)
