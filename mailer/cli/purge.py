"""``mailer purge``: delete what is past its retention (docs/data.md, Retention)."""

from __future__ import annotations

from datetime import datetime

import click

from mailer.cli import App, cli, emit, json_option, pass_app


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    from datetime import UTC

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date and time: write 2027-01-31 or 2027-01-31T09:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted, per kind; delete nothing.")
@click.option(
    "--now",
    "now_text",
    metavar="WHEN",
    help="Purge as if it were this time (ISO, UTC unless it says otherwise): to see what a later "
    "purge will take.",
)
@json_option
@pass_app
def purge(app: App, dry_run: bool, now_text: str | None, as_json: bool) -> None:
    """Delete every record past its retention: deliveries, inbound mail and bounce details,
    expired desk sessions and sign-in links, audit lines, the consent log of people no longer
    members, and old mail in the quarantine, processed and outbox Maildirs. How long each is kept
    is a setting (retain_*_days in mailer.toml). Suppressions, and the consent lines that prove
    them, are never deleted. The workers run this once a day by themselves.

    \\b
    Examples:
      mailer purge --dry-run        what would go now, per kind, with counts
      mailer purge                  delete it
      mailer purge --dry-run --now 2028-01-01 --json
    """
    from mailer.rights.retention import purge as run_purge

    report = run_purge(app.db, app.settings, now=_when(now_text), dry_run=dry_run)

    def human() -> None:
        verb = "would delete" if dry_run else "deleted"
        for kind in report.kinds:
            click.echo(
                f"{kind.kind:>14}: {verb} {kind.count} — {kind.what} from before "
                f"{kind.before:%Y-%m-%d} (kept {kind.days} days)"
            )
        click.echo(f"{'total':>14}: {verb} {report.total}")

    emit(as_json, report.as_dict(), human)
