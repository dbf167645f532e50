"""``mailer campaigns send``, ``status``, ``pause``, ``resume`` and ``cancel``: sending from the
command line (the library is :mod:`mailer.sending`; these commands parse, confirm and print).

On SQLite ``send`` sends from its own process. On PostgreSQL it enqueues the campaign for the
``mailer worker`` processes (``--in-process`` sends from this process anyway, alongside any workers);
``--at`` schedules it, and a running worker starts it on time.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from mailer.cli import App, emit, json_option, pass_app
from mailer.cli.campaigns import campaigns_group
from mailer.errors import DeliveryError

if TYPE_CHECKING:
    from mailer.sending import Prepared, Queued, Scheduled, SendPlan, Sent, Summary, TestsSent


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
    help='Schedule instead of sending now: "2025-11-17 08:00", wall-clock in the timezone setting; '
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
def send(app: App, /, slug: str, yes: bool, as_json: bool, **options: Any) -> None:
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
    from mailer import sending

    plan = sending.plan_send(app.db, app.settings, app.shape, slug, **options)
    if plan.mode not in ("test", "dry_run"):
        _confirm(plan, yes, as_json)
    progress = _progress if sys.stderr.isatty() and not as_json else None
    result = sending.send(plan, progress=progress, stop_on_signals=True)
    if isinstance(result, sending.TestsSent):
        emit(as_json, result.as_dict()["tests"], lambda: _show_tests(result))
        if not result.ok:
            sys.exit(1)
    elif isinstance(result, sending.Sent):
        if progress:
            click.echo(err=True)
        emit(as_json, result.as_dict(), lambda: _show_sent(result))
        if result.paused:
            sys.exit(3)
    elif isinstance(result, sending.DryRun):
        emit(as_json, result.as_dict(), lambda: _show_plan(plan.prepared, dry_run=True))
    else:
        emit(as_json, result.as_dict(), lambda: _show_queued(app, plan, result))


def _confirm(plan: SendPlan, yes: bool, as_json: bool) -> None:
    if plan.resuming:
        if not as_json and plan.when is None:
            click.echo(f"resuming {plan.slug} (was {plan.was})")
        return
    if not as_json:
        _show_plan(plan.prepared)
    if not yes and not sys.stdin.isatty():
        raise DeliveryError("not sending without confirmation", hint="add --yes to send without a terminal")
    if not yes:
        what = f"Schedule for {plan.at} ({plan.settings.timezone})" if plan.at else "Send"
        click.confirm(f"{what} to {plan.members} member(s)?", abort=True)


def _show_plan(prepared: Prepared, dry_run: bool = False) -> None:
    click.echo(f"{prepared.slug}: {prepared.loaded.issue.subject!r}")
    click.echo(f"audience: {prepared.audience}")
    click.echo(f"{prepared.plan.total} member(s) in {len(prepared.plan.variants)} variant(s):")
    for _key, label, n in prepared.by_variant():
        click.echo(f"  {n:>7}  {label}")
    click.echo("by home region:")
    for label, n in prepared.by_region():
        click.echo(f"  {n:>7}  {label}")
    if dry_run:
        click.echo("dry run: nothing sent, nothing recorded")


def _show_tests(result: TestsSent) -> None:
    for r in result.results:
        click.echo(f"test to {r.recipient}: {'sent' if r.ok else r.text}")


def _progress(s: Summary, total: int) -> None:
    """A progress line on stderr with sent, failed, rate and ETA (only on a terminal)."""
    done = s.sent + s.failed + s.skipped + s.suppressed
    eta = (total - done) / s.rate if s.rate else 0.0
    filled = int(30 * done / total) if total else 30
    bar = "#" * filled + "-" * (30 - filled)
    line = f"[{bar}] {done}/{total} sent {s.sent} failed {s.failed} {s.rate:,.0f}/s ETA {eta:,.0f}s   "
    click.echo("\r" + line, nl=False, err=True)


def _show_sent(result: Sent) -> None:
    summary, status, slug = result.summary, result.status, result.summary.campaign
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


def _show_queued(app: App, plan: SendPlan, result: Queued | Scheduled) -> None:
    tz = plan.settings.timezone
    when = f"scheduled for {plan.at} ({tz})" if result.scheduled_at else "queued for the workers"
    click.echo(f"{plan.slug}: {result.pending} deliveries {when}")
    click.echo(_workers_line(app, plan.slug, result.workers_alive))


def _workers_line(app: App, slug: str, alive: list[str]) -> str:
    from mailer.sending.orchestrate import on_postgresql

    if alive:
        return (
            f"{len(alive)} worker(s) alive will send it; "
            f"watch with `mailer workers` and `mailer campaigns status {slug}`"
        )
    if on_postgresql(app.db):
        return (
            "no worker is running: start one or more with `mailer worker` (on any machine that shares this "
            f"database), or send from here with `mailer campaigns send {slug} --in-process`"
        )
    return f"no worker is running: start `mailer worker`, or send now with `mailer campaigns send {slug}`"


@campaigns_group.command("status")
@click.argument("slug")
@json_option
@pass_app
def status(app: App, slug: str, as_json: bool) -> None:
    """Show a campaign's deliveries by state (pending, sent, failed, suppressed, skipped), by region."""
    from mailer.sending import STATES, campaign_status

    report = campaign_status(app.db, app.shape, slug)

    def human() -> None:
        click.echo(f"{slug}: {report.status}" + (f" ({report.reason})" if report.reason else ""))
        click.echo("  " + "  ".join(f"{s} {report.counts.get(s, 0)}" for s in STATES))
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
    from mailer.sending import pause_campaign

    control = pause_campaign(app.db, slug, reason="paused by `mailer campaigns pause`")

    def human() -> None:
        click.echo(f"{slug}: paused (was {control.was}); resume with `mailer campaigns resume {slug}`")

    emit(as_json, control.as_dict(), human)


@campaigns_group.command("resume")
@click.argument("slug")
@json_option
@pass_app
def resume(app: App, slug: str, as_json: bool) -> None:
    """Set paused campaign SLUG sending again, where it stopped; the workers take it up at once."""
    from mailer.sending import alive_workers, resume_campaign

    control = resume_campaign(app.db, slug)

    def human() -> None:
        click.echo(f"{slug}: sending again (was {control.was})")
        click.echo(_workers_line(app, slug, alive_workers(app.db, app.settings)))

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
    from mailer.sending import cancel_campaign

    if not yes:
        if not sys.stdin.isatty():
            raise DeliveryError(
                "not cancelling without confirmation", hint="add --yes to cancel without a terminal"
            )
        click.confirm(f"Cancel every unsent message of {slug}? This cannot be undone.", abort=True)
    control = cancel_campaign(app.db, slug)

    def human() -> None:
        click.echo(f"{slug}: cancelled (was {control.was}); {control.changed} unsent deliveries cancelled")

    emit(as_json, control.as_dict(), human)
