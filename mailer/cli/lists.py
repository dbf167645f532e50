"""``mailer lists``: the audience's shape and members in bulk."""

from __future__ import annotations

import click

from mailer.audience.shape import sync
from mailer.cli import App, cli, emit, json_option, pass_app


@cli.group("lists")
def lists_group() -> None:
    """Regions, interests, segments and members in bulk."""


@lists_group.command("sync")
@json_option
@pass_app
def sync_command(app: App, as_json: bool) -> None:
    """Load lists/regions.toml and lists/interests.toml into the database.

    Idempotent: running it twice changes nothing. A region or interest that members still use
    is never removed silently.
    """
    with app.db.session() as session:
        report = sync(session, app.shape)
    data = vars(report)

    def human() -> None:
        if not report.changed:
            click.echo("lists already in sync")
        else:
            click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items() if v))

    emit(as_json, data, human)
