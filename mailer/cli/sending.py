"""``mailer campaigns send``, ``status``, ``pause``, ``resume`` and ``cancel``: the delivery engine
from the command line.

On SQLite ``send`` sends from its own process. On PostgreSQL it enqueues the campaign for the
``mailer worker`` processes (``--in-process`` sends from this process anyway, alongside any workers);
``--at`` schedules it, and a running worker starts it on time.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import click

from mailer import delivery
from mailer.cli import App, emit, json_option, pass_app
from mailer.cli.campaigns import campaigns_group
from mailer.errors import DeliveryError
from mailer.models import utcnow
from mailer.transport import Transport, transport_for
from mailer.worker import alive_workers, shared_transport


def _show_plan(prepared: delivery.Prepared) -> None:
    click.echo(f"{prepared.slug}: {prepared.loaded.issue.subject!r}")
    click.echo(f"audience: {prepared.audience}")
    click.echo(f"{prepared.plan.total} member(s) in {len(prepared.plan.variants)} variant(s):")
    for _key, label, n in prepared.by_variant():
        click.echo(f"  {n:>7}  {label}")
    click.echo("by home region:")
    for label, n in prepared.by_region():
        click.echo(f"  {n:>7}  {label}")


class _Progress:
    """A progress line on stderr with sent, failed, rate and ETA (only on a terminal)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled

    def __call__(self, s: delivery.Summary) -> None:
        if not self.enabled:
            return
        done = s.sent + s.failed + s.skipped + s.suppressed
        rate = s.rate
        eta = (self.total - done) / rate if rate else 0.0
        width = 30
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        click.echo(
            f"\r[{bar}] {done}/{self.total} sent {s.sent} failed {s.failed} {rate:,.0f}/s ETA {eta:,.0f}s   ",
            nl=False,
            err=True,
        )


def run_engine(engine: delivery.Engine, app: App) -> delivery.Summary:
    """Run the engine with SIGINT/SIGTERM finishing the messages in flight, then stopping."""

    async def main() -> delivery.Summary:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.stop, f"stopped by {signal.Signals(sig).name}")
        async with _transport(app) as transport:
            return await engine.run(transport)

    return asyncio.run(main())


def _transport(app: App) -> Transport:
    """On PostgreSQL the relay's rate limit is shared with any workers; on SQLite it is this process's."""
    if _on_postgresql(app):
        return shared_transport(app.settings, app.db)
    return transport_for(app.settings)


def _on_postgresql(app: App) -> bool:
    return app.db.engine.dialect.name == "postgresql"


def _workers_line(app: App, slug: str) -> str:
    alive = alive_workers(app.db, app.settings)
    if alive:
        return (
            f"{len(alive)} worker(s) alive will send it; "
            f"watch with `mailer workers` and `mailer campaigns status {slug}`"
        )
    if _on_postgresql(app):
        return (
            "no worker is running: start one or more with `mailer worker` (on any machine that shares this "
            f"database), or send from here with `mailer campaigns send {slug} --in-process`"
        )
    return f"no worker is running: start `mailer worker`, or send now with `mailer campaigns send {slug}`"


@campaigns_group.command("send")
@click.argument("slug")
@click.option("--to-segment", "segment", metavar="EXPR", help="Narrow the issue's audience to this segment.")
@click.option(
    "--test",
    "tests",
    metavar="EMAIL",
    multiple=True,
    help="Send only to these addresses, subject marked [TEST]; changes nothing. Repeatable.",
)
@click.option(
    "--dry-run", is_flag=True, help="Validate, plan and render everything, but send and record nothing."
)
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages in this run.")
@click.option(
    "--at",
    "at",
    metavar="WHEN",
    help='Schedule instead of sending now: "2025-11-17 08:00", in the timezone setting (Europe/London); '
    "a running `mailer worker` starts it then.",
)
@click.option(
    "--in-process",
    is_flag=True,
    help="On PostgreSQL, send from this process (alongside any workers) instead of leaving it to workers.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@json_option
@pass_app
def send(
    app: App,
    slug: str,
    segment: str | None,
    tests: tuple[str, ...],
    dry_run: bool,
    limit: int | None,
    at: str | None,
    in_process: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Send campaign SLUG: each member of its audience gets the variant meant for them, once.

    Everything is validated and rendered first; then it shows how many members of which regions
    and variants will get it, and asks. Running it again on a stopped or crashed campaign resumes
    it: nobody is skipped, nobody already recorded as sent gets it twice. Ctrl-C finishes the
    messages in flight, records them, and stops.

    On PostgreSQL the `mailer worker` processes send it (start as many as you like, on any
    machine); add --in-process to send from this process. On SQLite it sends from this process.

    \b
    Examples:
      mailer campaigns send 2025-11-kent-network --test me@example.org
      mailer campaigns send 2025-11-kent-network --dry-run
      mailer campaigns send 2025-11-kent-network --to-segment region:canterbury --yes
      mailer campaigns send 2025-11-kent-network --at "2025-11-17 08:00" --yes
    """
    settings = app.settings
    when = delivery.parse_send_time(at, settings.timezone) if at else None
    if when is not None and when <= utcnow() and not tests and not dry_run:
        raise DeliveryError(
            f"{at} ({settings.timezone}) has passed",
            field="--at",
            hint="give a time to come, or leave out --at",
        )
    to_workers = _on_postgresql(app) and not in_process and when is None
    if limit is not None and (to_workers or when is not None):
        raise DeliveryError("--limit counts what this process sends", hint="add --in-process, without --at")
    with app.db.session() as session:
        existing = delivery.find_campaign(session, slug)
        existing_status = existing.status if existing is not None else None
    if existing_status is not None and not tests and not dry_run:
        delivery.check_sendable(existing_status, slug)
    prepared = delivery.prepare(app.db, settings, app.shape, slug, segment=segment)

    if tests:
        results = asyncio.run(_send_tests(app, prepared, list(tests)))
        sent = [{"to": r.recipient, "ok": r.ok, "code": r.code, "text": r.text} for r in results]

        def show_tests() -> None:
            for d in sent:
                click.echo(f"test to {d['to']}: {'sent' if d['ok'] else d['text']}")

        emit(as_json, sent, show_tests)
        if not all(r.ok for r in results):
            sys.exit(1)
        return

    if dry_run:
        data: dict[str, Any] = {
            "campaign": slug,
            "dry_run": True,
            "members": prepared.plan.total,
            "variants": [{"key": k, "label": lab, "members": n} for k, lab, n in prepared.by_variant()],
            "by_region": dict(prepared.by_region()),
        }

        def show_dry_run() -> None:
            _show_plan(prepared)
            click.echo("dry run: nothing sent, nothing recorded")

        emit(as_json, data, show_dry_run)
        return

    if existing_status is None:
        if not as_json:
            _show_plan(prepared)
        if not yes:
            if not sys.stdin.isatty():
                raise DeliveryError(
                    "not sending without confirmation", hint="add --yes to send without a terminal"
                )
            what = f"Schedule for {at} ({settings.timezone})" if at else "Send"
            click.confirm(f"{what} to {prepared.plan.total} member(s)?", abort=True)
    elif not as_json and when is None:
        click.echo(f"resuming {slug} (was {existing_status})")

    enqueued = delivery.enqueue(app.db, prepared, scheduled_at=when)
    if when is not None or to_workers:
        control = (
            delivery.schedule_campaign(app.db, slug, when)
            if when is not None
            else delivery.start_campaign(app.db, slug)
        )
        counts = delivery.status_counts(app.db, enqueued.campaign_id)
        queued = {
            **control.as_dict(),
            "deliveries": enqueued.deliveries,
            "pending": counts.get("pending", 0) + counts.get("sending", 0),
            "scheduled_at": when.isoformat() if when else None,
            "workers_alive": alive_workers(app.db, settings),
        }

        def show_queued() -> None:
            if when is not None:
                click.echo(f"{slug}: {queued['pending']} deliveries scheduled for {at} ({settings.timezone})")
            else:
                click.echo(f"{slug}: {queued['pending']} deliveries queued for the workers")
            click.echo(_workers_line(app, slug))

        emit(as_json, queued, show_queued)
        return

    pending = delivery.status_counts(app.db, enqueued.campaign_id)
    open_ = pending.get("pending", 0) + pending.get("sending", 0)
    progress = _Progress(min(open_, limit) if limit else open_, sys.stderr.isatty() and not as_json)
    engine = delivery.Engine(app.db, settings, slug, limit=limit, progress=progress)
    summary = run_engine(engine, app)
    if progress.enabled:
        click.echo(err=True)
    status = delivery.campaign_status(app.db, app.shape, slug)

    def human() -> None:
        click.echo(
            f"{slug}: sent {summary.sent}, failed {summary.failed}, suppressed {summary.suppressed}, "
            f"skipped {summary.skipped} in {summary.seconds:.1f}s ({summary.rate:,.0f}/s)"
        )
        for email, code, text in summary.failures[:10]:
            click.echo(f"  failed: {email}: {code or ''} {text}".rstrip())
        if len(summary.failures) > 10:
            click.echo(f"  … and {len(summary.failures) - 10} more (mailer campaigns status {slug})")
        click.echo(f"campaign is {status.status}" + (f": {status.reason}" if status.reason else ""))
        if status.status != "sent":
            click.echo(f"run `mailer campaigns send {slug}` again to continue")

    emit(as_json, {**summary.as_dict(), "status": status.as_dict()}, human)
    if summary.stopped_because.startswith("paused"):
        sys.exit(3)


async def _send_tests(app: App, prepared: delivery.Prepared, addresses: list[str]) -> list[Any]:
    async with transport_for(app.settings) as transport:
        return await delivery.send_tests(app.db, app.settings, prepared, addresses, transport)


@campaigns_group.command("status")
@click.argument("slug")
@json_option
@pass_app
def status(app: App, slug: str, as_json: bool) -> None:
    """Show a campaign's deliveries by state (pending, sent, failed, suppressed, skipped), by region."""
    report = delivery.campaign_status(app.db, app.shape, slug)

    def human() -> None:
        click.echo(f"{slug}: {report.status}" + (f" ({report.reason})" if report.reason else ""))
        click.echo("  " + "  ".join(f"{s} {report.counts.get(s, 0)}" for s in delivery.STATES))
        for label, counts in report.by_region:
            click.echo(f"  {label}: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))

    emit(as_json, report.as_dict(), human)


@campaigns_group.command("pause")
@click.argument("slug")
@json_option
@pass_app
def pause(app: App, slug: str, as_json: bool) -> None:
    """Pause campaign SLUG on every worker: each stops within a second, after the messages on a connection.

    What they had claimed goes back to the queue; `mailer campaigns resume SLUG` goes on from there.
    """
    control = delivery.pause_campaign(app.db, slug, reason="paused by `mailer campaigns pause`")

    def human() -> None:
        click.echo(f"{slug}: paused (was {control.was}); resume with `mailer campaigns resume {slug}`")

    emit(as_json, control.as_dict(), human)


@campaigns_group.command("resume")
@click.argument("slug")
@json_option
@pass_app
def resume(app: App, slug: str, as_json: bool) -> None:
    """Set paused campaign SLUG sending again, where it stopped; the workers take it up at once."""
    control = delivery.resume_campaign(app.db, slug)

    def human() -> None:
        click.echo(f"{slug}: sending again (was {control.was})")
        click.echo(_workers_line(app, slug))

    emit(as_json, control.as_dict(), human)


@campaigns_group.command("cancel")
@click.argument("slug")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@json_option
@pass_app
def cancel(app: App, slug: str, yes: bool, as_json: bool) -> None:
    """Cancel campaign SLUG: every delivery not yet sent is cancelled, on every worker, for good.

    Messages already on a connection when a worker notices (within a second) finish and are
    recorded as sent; nothing else goes out. A cancelled campaign cannot be sent again.
    """
    if not yes:
        if not sys.stdin.isatty():
            raise DeliveryError(
                "not cancelling without confirmation", hint="add --yes to cancel without a terminal"
            )
        click.confirm(f"Cancel every unsent message of {slug}? This cannot be undone.", abort=True)
    control = delivery.cancel_campaign(app.db, slug)

    def human() -> None:
        click.echo(f"{slug}: cancelled (was {control.was}); {control.changed} unsent deliveries cancelled")

    emit(as_json, control.as_dict(), human)
