"""``mailer init`` and ``mailer demo``: making workspaces."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.cli import cli
from mailer.workspace import init_workspace


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--organisation", help="Your network's name, as members will see it in From and footers.")
def init(directory: Path, organisation: str | None) -> None:
    """Make a new workspace in DIRECTORY.

    It holds mailer.toml (every setting, with its help), lists/ (a starting region tree and
    interests to edit), templates/ (your overrides of the packaged templates) and campaigns/.
    Existing files are left alone.
    """
    written = init_workspace(directory, organisation=organisation)
    for path in written:
        click.echo(f"  wrote {path}")
    click.echo(f"Workspace ready in {directory}. Next: edit lists/regions.toml, then")
    click.echo(f"  mailer -w {directory} lists sync")
