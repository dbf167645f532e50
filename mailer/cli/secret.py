"""``mailer secret new``: make or rotate the key for signed links (.mailer-secret, mode 600);
``mailer secret rotate-address-key``: the suppression hash's (.mailer-address-key)."""

from __future__ import annotations

import os

import click

from mailer.cli import App, cli, emit, json_option, pass_app


@cli.group("secret")
def secret() -> None:
    """The key that signs every link in mail (unsubscribe, preferences, confirmation).

    It lives in MAILER_SECRET or in .mailer-secret (readable only by you), and must be at least 32
    characters of random material: mailer refuses a weak one.
    """


@secret.command("new")
@click.option(
    "--drop-old",
    is_flag=True,
    help="Drop the earlier keys: links mailed before today stop working. Without it they are kept "
    "after the new key, so those links still verify.",
)
@json_option
@pass_app
def new(app: App, drop_old: bool, as_json: bool) -> None:
    """Write a new random key first in .mailer-secret (mode 600), keeping the earlier ones for
    verifying links already sent (rotation). Earlier keys too weak to trust are dropped.

    New links are signed with the new key from the next start of `mailer serve` and the next send.
    The key is never printed.
    """
    from pathlib import Path

    from mailer.errors import ConfigError
    from mailer.workspace import rotate_secret

    workspace = (app.workspace_arg or Path(".")).resolve()
    if not workspace.is_dir():
        raise ConfigError(
            "the workspace folder does not exist", path=workspace, hint="create one with `mailer init DIR`"
        )
    done = rotate_secret(workspace, drop_old=drop_old, env=os.environ)

    def human() -> None:
        click.echo(f"Wrote a new key to {done.path} (mode 600): {done.keys} key(s), the new one first.")
        if done.kept:
            click.echo(f"  kept {done.kept} earlier key(s), so links already mailed still work")
        if done.dropped_weak:
            click.echo(f"  dropped {done.dropped_weak} weak key(s): links signed with them no longer work")
        if done.dropped_old:
            click.echo(f"  dropped {done.dropped_old} earlier key(s) (--drop-old)")
        if done.environment_overrides:
            click.secho(
                "  MAILER_SECRET is set and overrides this file: unset it to use the file, or set it to "
                "the file's keys, comma-separated, in the same order.",
                fg="yellow",
            )

    emit(as_json, done.as_dict(), human)


@secret.command("rotate-address-key")
@json_option
@pass_app
def rotate_address_key(app: App, as_json: bool) -> None:
    """Write a new key of the suppression hash first in .mailer-address-key (mode 600) and make
    every member's hash again under it. The earlier keys are kept: the suppressions of people
    erased under them can only be matched with them (docs/data.md, The suppression hash).

    Without .mailer-address-key (a workspace from before keyed hashes) this writes the first key;
    the old unkeyed hashes of members are made again under it, and those of people erased before
    stay checked. The key is never printed.
    """
    from mailer.db import open_database
    from mailer.settings import load
    from mailer.workspace import rotate_address_key as rotate

    workspace = app.settings.workspace  # refused before anything is written if it is not one
    done = rotate(workspace, env=os.environ)
    db = open_database(load(workspace))
    try:
        from mailer.audience import rehash
        from mailer.audience.addresses import keys_of

        with db.session() as session:
            keys_of(session)  # makes the members' hashes again under the new key
            state = rehash.state(session)
    finally:
        db.dispose()
    data = {**done.as_dict(), "members_rehashed": state}

    def human() -> None:
        click.echo(f"Wrote a new key to {done.path} (mode 600): {done.keys} key(s), the new one first.")
        click.echo(f"  {state} member hash(es) made again under it")
        if done.environment_overrides:
            click.secho(
                "  MAILER_ADDRESS_KEY is set and overrides this file: set it to the file's keys, "
                "comma-separated, in the same order.",
                fg="yellow",
            )

    emit(as_json, data, human)
