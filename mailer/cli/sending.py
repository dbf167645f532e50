"""``mailer campaigns send``, ``status``, ``retry``, ``pause``, ``resume`` and ``cancel``: sending
from the command line (the library is :mod:`mailer.sending`; these commands parse, confirm and print).

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

yes_option = click.option(
    "--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
)
in_process_option = click.option(
    "--in-process",
    is_flag=True,
    help="On PostgreSQL, send from this process (alongside any workers) instead of leaving it to workers.",
)

if TYPE_CHECKING:
    from mailer.sending import (
        Queued,
        RetryPlan,
        Scheduled,
        SendPlan,
        Sent,
        StageInfo,
        StagePlan,
        Summary,
        TestsSent,
    )


@campaigns_group.command("send")
@click.argument("slug")
@click.option(
    "--to-segment",
    "segment",
    metavar="EXPR",
    help="This stage: only members of the issue's audience who also match EXPR.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="This stage adds at most N members (those on the list longest first); "
    "send again for the next N or the rest.",
)
@click.option(
    "--new-members",
    is_flag=True,
    help="This stage adds only members who joined after the campaign's previous stage "
    "(say, after a `lists import`).",
)
@click.option(
    "--top-up",
    is_flag=True,
    help="Add a stage although messages of earlier stages are still to send (pending or deferred); "
    "without it, or a stage option, sending such a campaign only resumes it.",
)
@click.option(
    "--allow-changed",
    is_flag=True,
    help="Add a stage although the issue file changed since the campaign was first sent: variants "
    "sent before go out as they were sent, variants new to this stage from the file as it is now.",
)
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
@click.option(
    "--at",
    "at",
    metavar="WHEN",
    help='Schedule instead of sending now: "2025-11-17 08:00", wall-clock in the timezone setting; '
    "a running `mailer worker` starts it then.",
)
@in_process_option
@yes_option
@json_option
@pass_app
def send(app: App, /, slug: str, yes: bool, as_json: bool, **options: Any) -> None:
    """Send campaign SLUG: each member of its audience gets the variant meant for them, once.

    Everything is validated and rendered first; then it shows how many members of which regions
    and variants will get it, and asks. Ctrl-C finishes the messages in flight, records them, and
    stops; running it again resumes: nobody is skipped, nobody already recorded as sent gets it
    twice.

    In stages. A campaign can go out in stages, and nobody ever gets it twice, whatever the order.
    The first send is stage 1; sending the campaign again (once the earlier stage's messages are
    done) adds stage 2: everyone in the issue's audience who has not had it yet, members who joined
    since included. Narrow a stage with --to-segment, cap it with --limit, or take only the members
    who joined since the previous stage with --new-members (--limit caps the members a stage adds,
    not a run: it is kept with the stage, so it works for the workers and with --at too). A stage
    that finds nobody to add says so and does nothing. Suppressed members, and members who left
    the campaign's network, are never added. `mailer campaigns status SLUG` lists the stages.
    While messages of an earlier stage are still to send (stopped, or deferred by the relay), a
    plain send only resumes them; a stage option or --top-up adds a stage as well. A stage of an
    issue whose file changed since stage 1 is refused unless --allow-changed (what was sent is kept
    with the campaign).

    A relay's temporary refusal (4xx) or a lost connection defers a message: it is tried again
    later (after 5 minutes, then longer waits, for up to 3 days: the retry_* settings). When only
    deferred messages not yet due are left, it says when the next is due and stops; run it again
    then (or keep a `mailer worker` running). A message with no reply after it was sent whole may
    have been delivered: it is recorded as unknown, not resent (see `mailer campaigns retry`).

    On PostgreSQL the `mailer worker` processes send it (start as many as you like, on any
    machine); add --in-process to send from this process. On SQLite it sends from this process.

    \b
    Examples:
      mailer campaigns send 2025-11-kent-network --test me@example.org
      mailer campaigns send 2025-11-kent-network --dry-run
      mailer campaigns send 2025-11-kent-network --at "2025-11-17 08:00" --yes
    Stages:
      mailer campaigns send 2025-11-kent-network --to-segment region:canterbury --yes  # stage 1
      mailer campaigns send 2025-11-kent-network --limit 500 --yes    # stage 2: 500 more
      mailer campaigns send 2025-11-kent-network --yes                # stage 3: the rest
      mailer lists import new-members.csv
      mailer campaigns send 2025-11-kent-network --new-members --yes  # those just imported
    """
    from mailer import sending

    plan = sending.plan_send(app.db, app.settings, app.shape, slug, **options)
    if plan.mode != "test" and not plan.nothing_to_add:
        _warn_unsigned(app)
    if plan.mode not in ("test", "dry_run"):
        _confirm(plan, yes, as_json)
    progress = _progress if sys.stderr.isatty() and not as_json else None
    result = sending.send(plan, progress=progress, stop_on_signals=True)
    if isinstance(result, sending.TestsSent):
        emit(as_json, result.as_dict()["tests"], lambda: _show_tests(result))
        if not result.ok:
            sys.exit(1)
    elif isinstance(result, sending.Sent):
        _finish_sent(app, result, bool(progress), as_json)
    elif isinstance(result, sending.DryRun):
        emit(as_json, result.as_dict(), lambda: _show_plan(plan, dry_run=True))
    elif isinstance(result, sending.NothingToSend):
        emit(as_json, result.as_dict(), lambda: click.echo(result.message))
    else:
        emit(as_json, result.as_dict(), lambda: _show_queued(app, plan, result))


def _warn_unsigned(app: App) -> None:
    """Loudly, on stderr: a send to members that would go without a DKIM signature (unless the
    relay signs: relay_signs_dkim), or with one that DMARC will not count."""
    from mailer.message import dkim_status

    status = dkim_status(app.settings)
    if status.warning:
        click.secho(f"WARNING: {status.warning}", err=True, fg="red", bold=True)
    elif not status.signed:
        click.echo(status.summary, err=True)


def _confirm(plan: SendPlan, yes: bool, as_json: bool) -> None:
    if plan.resuming:
        if not as_json and plan.when is None:
            click.echo(f"resuming {plan.slug} (was {plan.was}): {plan.unfinished} message(s) still to send")
            if plan.not_yet:
                click.echo(
                    f"  {plan.not_yet} member(s) of the audience have not had it: they are added by "
                    f"`mailer campaigns send {plan.slug}` once these are done, or now with --top-up"
                )
        return
    if plan.nothing_to_add:
        return  # send() says so; there is nothing to confirm
    if not as_json:
        _show_plan(plan)
    if not yes and not sys.stdin.isatty():
        raise DeliveryError("not sending without confirmation", hint="add --yes to send without a terminal")
    if not yes:
        _show_warnings(plan)
        what = f"Schedule for {plan.at} ({plan.settings.timezone})" if plan.at else "Send"
        if plan.stage is not None and plan.stage.number > 1:
            what += f" stage {plan.stage.number}"
        click.confirm(f"{what} to {plan.members} member(s)?", abort=True)


def _show_warnings(plan: SendPlan) -> None:
    """Before a person confirms a send: what ``campaigns check`` warns about (an audience that reaches
    other networks' members, members who cannot be mailed, an item nobody would see...). With --yes
    nobody is asked, and scripts run ``campaigns check`` themselves."""
    from mailer.issue import check_campaign

    result = check_campaign(plan.settings.workspace, plan.slug, plan.shape, plan.db, plan.settings)
    for problem in result.warnings:
        click.secho(str(problem), fg="yellow", err=True)


def _show_plan(plan: SendPlan, dry_run: bool = False) -> None:
    prepared = plan.prepared
    click.echo(f"{prepared.slug}: {prepared.loaded.issue.subject!r}")
    click.echo(f"audience: {prepared.audience}")
    click.echo(f"{prepared.plan.total} member(s) in {len(prepared.plan.variants)} variant(s):")
    for _key, label, n in prepared.by_variant():
        click.echo(f"  {n:>7}  {label}")
    click.echo("by home region:")
    for label, n in prepared.by_region():
        click.echo(f"  {n:>7}  {label}")
    stage = plan.stage
    if stage is not None and (stage.number > 1 or stage.members != prepared.plan.total):
        click.echo(_stage_line(stage))
    if plan.unfinished and stage is not None:
        click.echo(f"and {plan.unfinished} message(s) of earlier stages still to send")
    if dry_run:
        added = f"would add {plan.deliveries_added} deliver{'y' if plan.deliveries_added == 1 else 'ies'}"
        if plan.unfinished:
            added += f" (and go on with {plan.unfinished} still to send)"
        click.echo(f"dry run: {added}; nothing sent, nothing recorded")


def _stage_line(stage: StagePlan) -> str:
    """``stage 2 (new members, at most 50): adds 50 of 120 member(s) who have not had it``."""
    from mailer.sending import StageInfo

    info = StageInfo(stage.number, stage.request.segment, stage.request.limit, stage.request.new_members, 0)
    line = f"stage {stage.number} ({info.describe()}): adds {stage.members}"
    if stage.members != stage.eligible:
        line += f" of {stage.eligible}"
    line += " member(s) who have not had it"
    if stage.since is not None:
        line += f", joined since {stage.since:%Y-%m-%d %H:%M} UTC"
    return line


def _show_tests(result: TestsSent) -> None:
    for r in result.results:
        click.echo(f"test to {r.recipient}: {'sent' if r.ok else r.text}")


def _progress(s: Summary, total: int) -> None:
    """A progress line on stderr with sent, failed, rate and ETA (only on a terminal)."""
    done = s.sent + s.failed + s.skipped + s.suppressed + s.deferred + s.unknown
    eta = max(total - done, 0) / s.rate if s.rate else 0.0
    filled = min(int(30 * done / total), 30) if total else 30
    bar = "#" * filled + "-" * (30 - filled)
    line = (
        f"[{bar}] {done}/{total} sent {s.sent} deferred {s.deferred} failed {s.failed} "
        f"{s.rate:,.0f}/s ETA {eta:,.0f}s   "
    )
    click.echo("\r" + line, nl=False, err=True)


def _finish_sent(app: App, result: Sent, progressed: bool, as_json: bool) -> None:
    if progressed:
        click.echo(err=True)
    emit(as_json, result.as_dict(), lambda: _show_sent(app, result))
    if result.paused:
        sys.exit(3)


def _added(stage: StageInfo | None) -> None:
    if stage is not None:
        added = f"{stage.recipients} member(s) added" if stage.recipients else "nobody to add"
        click.echo(f"stage {stage.number} ({stage.describe()}): {added}")


def _show_sent(app: App, result: Sent) -> None:
    summary, status, slug = result.summary, result.status, result.summary.campaign
    _added(result.stage)
    click.echo(
        f"{slug}: sent {summary.sent}, deferred {summary.deferred}, unknown {summary.unknown}, "
        f"failed {summary.failed}, suppressed {summary.suppressed}, skipped {summary.skipped} "
        f"in {summary.seconds:.1f}s ({summary.rate:,.0f}/s)"
    )
    for email, code, text in summary.failures[:10]:
        click.echo(f"  failed: {email}: {code or ''} {text}".rstrip())
    if len(summary.failures) > 10:
        click.echo(f"  … and {len(summary.failures) - 10} more (mailer campaigns status {slug})")
    for email, text in summary.unknowns[:10]:
        click.echo(f"  unknown: {email}: {text}")
    if len(summary.unknowns) > 10:
        click.echo(f"  … and {len(summary.unknowns) - 10} more (mailer campaigns status {slug})")
    click.echo(f"campaign is {status.status}" + (f": {status.reason}" if status.reason else ""))
    for step in status.next_steps(app.settings.zone):
        click.echo(f"  {step}")
    if status.status not in ("sent", "sending"):
        click.echo(f"run `mailer campaigns send {slug}` again to continue")


def _show_queued(app: App, plan: SendPlan, result: Queued | Scheduled) -> None:
    tz = plan.settings.timezone
    when = f"scheduled for {plan.at} ({tz})" if result.scheduled_at else "queued for the workers"
    _added(result.stage)
    click.echo(f"{plan.slug}: {result.pending} deliveries {when}")
    click.echo(_workers_line(app, plan.slug, result.workers_alive))


def _workers_line(app: App, slug: str, alive: list[str]) -> str:
    from mailer.sending.orchestrate import on_postgresql

    if alive:
        return (
            f"{len(alive)} worker(s) alive will send it; "
            f"watch with `mailer workers` and `mailer campaigns status {slug}`"
        )
    from mailer.sending.health import NO_WORKER_CLI

    if on_postgresql(app.db):
        return f"{NO_WORKER_CLI}; or send from here with `mailer campaigns send {slug} --in-process`"
    return f"{NO_WORKER_CLI}; or send now from here with `mailer campaigns send {slug}`"


@campaigns_group.command("status")
@click.argument("slug")
@json_option
@pass_app
def status(app: App, slug: str, as_json: bool) -> None:
    """Show a campaign's deliveries by state, overall and by region, its stages (when each was
    sent, to whom, how many members it added), and what to do about any deliveries left.

    \b
    pending, sending   not yet tried, or being sent now
    deferred           refused for now (4xx) or the connection was lost: tried again when due
    sent               accepted by the relay
    failed             refused for good (5xx), or temporary failures for longer than 3 days
    unknown            sent whole, but no reply came: the relay may have delivered it
    suppressed, skipped, cancelled
    """
    from mailer.sending import STATES, campaign_stages, campaign_status
    from mailer.sending.health import waiting_for_worker

    report = campaign_status(app.db, app.shape, slug)
    stages = campaign_stages(app.db, slug)
    no_worker = (
        _workers_line(app, slug, []) if waiting_for_worker(app.db, app.settings, report.status) else ""
    )

    def human() -> None:
        if no_worker:
            click.echo(f"warning: {no_worker}")
        click.echo(f"{slug}: {report.status}" + (f" ({report.reason})" if report.reason else ""))
        click.echo("  " + "  ".join(f"{s} {report.counts.get(s, 0)}" for s in STATES))
        for label, counts in report.by_region:
            click.echo(f"  {label}: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
        for stage in stages:
            click.echo(f"  {stage.line(app.settings.zone)}")
        for step in report.next_steps(app.settings.zone):
            click.echo(f"  {step}")

    emit(
        as_json, {**report.as_dict(), "stages": [s.as_dict() for s in stages], "no_worker": no_worker}, human
    )


@campaigns_group.command("retry")
@click.argument("slug")
@click.option(
    "--unknown",
    "include_unknown",
    is_flag=True,
    help="Also send again the messages whose outcome is unknown (sent whole, no reply came). The relay "
    "may have delivered them already: those members may get the message twice.",
)
@in_process_option
@yes_option
@json_option
@pass_app
def retry(app: App, slug: str, include_unknown: bool, in_process: bool, yes: bool, as_json: bool) -> None:
    """Send campaign SLUG now to those whose message a relay deferred or refused for now.

    That is, messages a relay deferred (4xx, or a connection lost before the message went out)
    that wait for their next attempt: they become due now, keeping their attempts; and messages
    refused for now until the queue lifetime ran out (3 days by default: "gave up after 3 days of
    temporary failures"), or that an earlier version recorded as failed after a 4xx: they go back in
    the queue, due now and with a fresh lifetime. All are sent as `mailer campaigns send` would (on
    PostgreSQL by the workers, unless --in-process). It says how many first. Messages refused for
    good (5xx: no such user, policy) stay failed.

    With --unknown, also the messages whose outcome is unknown: the whole message went out but no
    reply came (a timeout, a dropped connection, a garbled reply), so the relay may have delivered
    it (RFC 5321, 4.1.1.4). They are never resent by themselves; resending may give those members
    the message twice.

    \b
    Examples:
      mailer campaigns retry 2025-11-kent-network
      mailer campaigns retry 2025-11-kent-network --unknown --yes
    """
    from mailer import sending

    plan = sending.plan_retry(
        app.db, app.settings, app.shape, slug, unknown=include_unknown, in_process=in_process
    )
    _confirm_retry(plan, yes, as_json)
    progress = _progress if sys.stderr.isatty() and not as_json else None
    result = sending.retry(plan, progress=progress, stop_on_signals=True)
    if isinstance(result, sending.Sent):
        _finish_sent(app, result, bool(progress), as_json)
    else:
        emit(as_json, result.as_dict(), lambda: _show_requeued(app, plan, result))


def _confirm_retry(plan: RetryPlan, yes: bool, as_json: bool) -> None:
    what = (
        f"{plan.deferred} deferred message(s), made due now, and "
        f"{plan.failed} that failed for temporary reasons"
    )
    if plan.include_unknown:
        what += f" and {plan.unknown} whose outcome is unknown (the relay may have delivered them)"
    if not as_json:
        click.echo(f"{plan.slug}: {what}")
        if plan.unknown and not plan.include_unknown:
            click.echo(
                f"  ({plan.unknown} with an unknown outcome stay as they are; add --unknown to resend them)"
            )
    if not yes and not sys.stdin.isatty():
        raise DeliveryError("not retrying without confirmation", hint="add --yes to retry without a terminal")
    if not yes:
        click.confirm(f"Send those {plan.count} message(s) again now?", abort=True)


def _show_requeued(app: App, plan: RetryPlan, result: Queued) -> None:
    click.echo(f"{plan.slug}: {result.control.changed} deliveries due now, for the workers to send")
    click.echo(_workers_line(app, plan.slug, result.workers_alive))


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
@yes_option
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
