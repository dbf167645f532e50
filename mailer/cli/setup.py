"""``mailer init`` and ``mailer demo``: making workspaces."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click

from mailer.cli import cli

PLACEHOLDER_NAME = "Our Network"
PLACEHOLDER_FROM = "newsletter@example.org"


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--name",
    "--organisation",
    "name",
    metavar="NAME",
    help="Your network's name, as members see it in From, footers and web pages "
    '(e.g. "Central England Network"). Asked for when not given at a terminal.',
)
@click.option(
    "--from",
    "from_address",
    metavar="ADDRESS",
    help="The address your mail comes From (e.g. news@example.org). Asked for when not given at a terminal.",
)
def init(directory: Path, name: str | None, from_address: str | None) -> None:
    """Make a new workspace in DIRECTORY for one network.

    \b
      mailer init central --name "Central England Network" --from news@example.org

    It holds mailer.toml (every setting, with its help), lists/ (a starting region tree and
    interests to edit), templates/ (your overrides of the packaged templates), campaigns/ and
    .mailer-secret, the key for signed links (mode 600; rotate it with `mailer secret new`), and
    the DKIM keys (RSA-2048 and Ed25519, mode 600) that sign every message: publish their DNS
    records (`mailer dkim dns`) before the first send. Existing files are left alone.
    """
    from mailer.settings import SECRET_FILE
    from mailer.workspace import init_workspace

    interactive = sys.stdin.isatty()
    if name is None and interactive:
        name = click.prompt("Your network's name, as members will see it", default=PLACEHOLDER_NAME)
    if from_address is None and interactive:
        from_address = click.prompt("The address your mail comes From", default=PLACEHOLDER_FROM)
    if from_address is not None and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", from_address):
        raise click.BadParameter(f"{from_address!r} is not an email address", param_hint="--from")
    written = init_workspace(directory, organisation=name or PLACEHOLDER_NAME, from_address=from_address)
    for path in written:
        click.echo(f"  wrote {path}")
    if directory / SECRET_FILE in written:
        click.echo(f"The key for signed links is in {directory / SECRET_FILE} (mode 600): keep it private.")
    _dkim_keys(directory)
    if name is None or from_address is None:
        click.echo(
            f"Note: the network's name is {name or PLACEHOLDER_NAME!r} and mail comes from "
            f"{from_address or PLACEHOLDER_FROM}: set organisation and from_address in "
            f"{directory / 'mailer.toml'} (or run init with --name and --from)."
        )
    click.echo("More networks in one workspace: describe each in lists/networks.toml (see `mailer demo`).")
    click.echo(f"Workspace ready in {directory}. Next: edit lists/regions.toml, then")
    click.echo(f"  mailer -w {directory} lists sync")


def _dkim_keys(directory: Path) -> None:
    """Make the workspace's DKIM keys (``mailer dkim keys``) and say what to publish."""
    from mailer.workspace import write_dkim_keys

    for path in write_dkim_keys(directory):
        click.echo(f"  wrote {path} (DKIM key, mode 600)")
    click.echo(f"Every message is DKIM-signed: publish the records of `mailer -w {directory} dkim dns`.")


@cli.command("demo")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default="demo")
def demo(directory: Path) -> None:
    """Run the whole story in DIRECTORY (default: ./demo) on the embedded defaults.

    It makes a workspace with the Kent and Central England networks, imports the 500 demo
    members, and sends the Kent November newsletter, the ECHR alert and the Central England
    December newsletter, each as its own network, to a Maildir outbox (SQLite, no mail leaves the
    machine). Running it again sends nothing twice.
    """
    from mailer.demo import run_demo

    result = run_demo(directory, echo=click.echo)
    # Show the command as it was run (after `make demo` it is .venv/bin/mailer, not on the PATH).
    me = sys.argv[0] if os.sep in sys.argv[0] and sys.argv[0].endswith("mailer") else "mailer"
    for slug, status in result.sent.items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(status.counts.items()))
        click.echo(f"{slug}: {status.status} ({counts})")
    click.echo("")
    click.echo(f"Workspace:  {result.workspace}")
    click.echo(f"Outbox:     {result.outbox}/new  (one file per message; open one in a mail client)")
    click.echo(f"Preview:    {me} -w {result.workspace} campaigns preview 2025-11-kent-network --all --open")
    click.echo(f"Status:     {me} -w {result.workspace} campaigns status 2025-11-kent-network")
    click.echo(f"Web app:    {me} -w {result.workspace} serve   (then open the link below)")
    if result.unsubscribe_link:
        click.echo(f"Unsubscribe link of one member: {result.unsubscribe_link}")
