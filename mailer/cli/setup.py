"""``mailer init`` and ``mailer demo``: making workspaces."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mailer.cli import cli

ASKED = (
    ("name", "--name", "Your network's name, as members will see it"),
    ("from_address", "--from", "The address your mail comes From"),
    ("base_url", "--base-url", "The public address of the web app (unsubscribe and preference links)"),
    ("list_domain", "--list-domain", "The list domain (List-Id, bounces and mailed unsubscribes)"),
    ("postal_address", "--postal-address", "Your postal address, for every mail's footer (PECR)"),
    (
        "privacy_url",
        "--privacy-url",
        "The https address of your privacy notice, linked from every mail and page",
    ),
)
OPTIONAL = ("list_domain", "privacy_url")
"""Asked at a terminal but not needed by --no-input: a default, or `mailer doctor` names it."""


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--name",
    "--organisation",
    "name",
    metavar="NAME",
    help="Your network's name, as members see it in From, footers and web pages "
    '(e.g. "Central England Network").',
)
@click.option(
    "--from",
    "from_address",
    metavar="ADDRESS",
    help="The address your mail comes From (e.g. news@cen.org.uk).",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="The public https address of the web app, in every unsubscribe and preferences link "
    "(e.g. https://news.cen.org.uk).",
)
@click.option(
    "--list-domain",
    metavar="DOMAIN",
    help="The domain of List-Id, bounce addresses and mailed unsubscribes (its MX must reach mailer). "
    "Default: lists. and the From address's domain.",
)
@click.option(
    "--postal-address",
    metavar="TEXT",
    help="The postal address every mail's footer carries, as UK marketing mail must (PECR).",
)
@click.option(
    "--privacy-url",
    metavar="URL",
    help="Your privacy notice (https://…, or a path on the web app such as /privacy), linked from "
    "every mail's footer, the sign-up form and every page. Required before mail goes to members.",
)
@click.option("--example", is_flag=True, help="Start from the demo's region tree, interests and segments.")
@click.option(
    "--no-input",
    is_flag=True,
    help="Never ask: every value comes from the flags (for scripts); fails naming any missing.",
)
def init(directory: Path, example: bool, no_input: bool, **given: str | None) -> None:
    """Make a new workspace in DIRECTORY for one network.

    \b
      mailer init central --name "Central England Network" --from news@cen.org.uk \\
        --base-url https://news.cen.org.uk --postal-address "5 Example Row, Birmingham B1 1AA" \\
        --privacy-url https://cen.org.uk/privacy

    At a terminal it asks for what the flags do not give; with --no-input it fails naming the
    missing flags. It writes mailer.toml (every setting, with its help), lists/networks.toml (who
    your mail speaks as), an empty region tree, interests and segments to fill in (the demo's with
    --example), templates/ (your overrides of the packaged templates), campaigns/, .mailer-secret
    (the key for signed links, mode 600; rotate it with `mailer secret new`) and the DKIM keys
    (RSA-2048 and Ed25519, mode 600). Then `mailer doctor` says what is left before the first real
    send, and `mailer dns` the DNS records to publish. Existing files are left alone.
    """
    from mailer.settings import SECRET_FILE
    from mailer.workspace import NewNetwork, default_list_domain, init_workspace

    missing = [flag for key, flag, _ in ASKED if given[key] is None and key not in OPTIONAL]
    if no_input and missing:
        raise click.UsageError(f"--no-input needs {', '.join(missing)}")
    if not no_input and sys.stdin.isatty():
        for key, _flag, question in ASKED:
            if given[key] is None:
                default = default_list_domain(given["from_address"] or "") if key == "list_domain" else None
                given[key] = click.prompt(question, default=default or None)
    network = NewNetwork(**{k: v for k, v in given.items() if v is not None})
    placeholders = [flag for key, flag, _ in ASKED if given[key] is None and key != "list_domain"]
    written = init_workspace(directory, network=network, example=example)
    for path in written:
        click.echo(f"  wrote {path}")
    if directory / SECRET_FILE in written:
        click.echo(f"The key for signed links is in {directory / SECRET_FILE} (mode 600): keep it private.")
    _dkim_keys(directory)
    if placeholders:
        click.echo(
            f"Note: not given, so left as placeholders: {', '.join(placeholders)}. Set them in "
            f"{directory / 'mailer.toml'} and {directory / 'lists' / 'networks.toml'} (or run init again "
            "in a new folder with the flags); `mailer doctor` names each until it is set."
        )
    click.echo(f"Workspace ready in {directory}. Next: fill in lists/regions.toml, then")
    click.echo(f"  mailer -w {directory} lists sync")
    click.echo(f"  mailer -w {directory} doctor")


def _dkim_keys(directory: Path) -> None:
    """Make the workspace's DKIM keys (``mailer dkim keys``) and say what to publish."""
    from mailer.workspace import write_dkim_keys

    for path in write_dkim_keys(directory):
        click.echo(f"  wrote {path} (DKIM key, mode 600)")
    click.echo(f"Every message is DKIM-signed: publish the records of `mailer -w {directory} dns`.")


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
