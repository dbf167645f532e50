"""``mailer campaigns report`` and ``mailer lists history``: what an issue did, how the list grows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.cli import App, emit, json_option, pass_app
from mailer.cli.campaigns import campaigns_group
from mailer.cli.lists import lists_group

if TYPE_CHECKING:
    from mailer import reports as report_lib


def _table(first: str, rows: list[tuple[str, report_lib.Figures]]) -> None:
    from mailer import reports as report_lib

    names = report_lib.Figures.names()
    short = {
        "deliveries": "Deliv.",
        "sent": "Sent",
        "failed": "Failed",
        "deferred": "Defer.",
        "unknown": "Unkn.",
        "hard_bounces": "Hard",
        "soft_bounces": "Soft",
        "policy": "Policy",
        "complaints": "Compl.",
        "unsubscribes": "Unsub.",
    }
    width = max([len(first), *(len(label) for label, _ in rows)]) + 2
    click.echo(f"{first:<{width}}" + "".join(f"{short[n]:>8}" for n in names))
    for label, figures in rows:
        click.echo(f"{label:<{width}}" + "".join(f"{getattr(figures, n):>8}" for n in names))


def show_report(r: report_lib.CampaignReport) -> None:
    from mailer import reports as report_lib

    click.echo(f"{r.slug}: {r.title} ({r.status})")
    for name in report_lib.Figures.names():
        click.echo(f"  {report_lib.LABELS[name]:<20}{getattr(r.total, name):>8}")
    click.echo("")
    _table("Region", [(row.label, row.figures) for row in r.by_region])
    click.echo("")
    _table("Variant", [(row.label, row.figures) for row in r.by_variant])
    if r.stages:
        click.echo("\nStages:" + "".join(f"\n  {stage.line()}" for stage in r.stages))
    for step in r.next_steps:
        click.echo(f"\n{step}")


@campaigns_group.command("report")
@click.argument("slug")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the report, with charts (SVG, no JavaScript), to this HTML file.",
)
@json_option
@pass_app
def report_command(app: App, slug: str, html_file: Path | None, as_json: bool) -> None:
    """What campaign SLUG did: sent, failed, bounced (hard/soft), blocked by policy, complaints and
    unsubscribes, overall, by region and by variant.

    Bounces and complaints come from `mailer inbound process`; unsubscribes from the consent log.
    """
    from mailer import reports as report_lib

    with app.db.session() as session:
        result = report_lib.campaign_report(session, app.shape, slug)
        page = (
            report_lib.page_data(session, app.shape, app.settings.organisation, slug) if html_file else None
        )
    if html_file is not None and page is not None:
        html_file.write_text(report_lib.render_page(app.settings, page), encoding="utf-8")
        click.echo(f"wrote {html_file}", err=True)
    emit(as_json, result.as_dict(), lambda: show_report(result))


def show_history(h: report_lib.History) -> None:
    groups = list(h.groups)
    width = max([8, *(len(g) for g in groups)])
    click.echo(
        f"{'Month':<10}{'Joined':>8}{'Left':>8}{'Members':>9}  " + "  ".join(f"{g:>{len(g)}}" for g in groups)
    )
    for i, month in enumerate(h.months):
        cells = "  ".join(f"{h.members[g][i]:>{len(g)}}" for g in groups)
        click.echo(f"{month:<10}{h.joined[i]:>8}{h.left_total[i]:>8}{h.reachable[i]:>9}  {cells}")
    reasons = [r for r in h.left if any(h.left[r])]
    if reasons:
        click.echo("")
        click.echo(f"{'Left by':<10}" + "".join(f"{r:>{max(len(r), width) + 2}}" for r in reasons))
        click.echo(
            f"{'reason':<10}" + "".join(f"{sum(h.left[r]):>{max(len(r), width) + 2}}" for r in reasons)
        )


@lists_group.command("history")
@click.option("--months", type=click.IntRange(1, 600), default=24, show_default=True, help="How many months.")
@json_option
@pass_app
def history_command(app: App, months: int, as_json: bool) -> None:
    """Growth and losses month by month: members joined, members lost (by reason: unsubscribe,
    hard-bounce, complaint, erasure, admin), and members on the list at each month's end by region."""
    from mailer import reports as report_lib

    with app.db.session() as session:
        h = report_lib.history(session, app.shape, months=months)
    emit(as_json, h.as_dict(), lambda: show_history(h))
