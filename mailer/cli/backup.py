"""``mailer backup FILE`` and ``mailer restore FILE``: the database in one file, and back."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.cli import App, cli, emit, json_option, pass_app


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--overwrite", is_flag=True, help="Replace FILE if it exists (atomically, once the new one is whole)."
)
@json_option
@pass_app
def backup_command(app: App, file: Path, overwrite: bool, as_json: bool) -> None:
    """Write the workspace's database to FILE (a tar archive, readable only by you), consistent
    while workers send and the web app writes.

    SQLite is copied with its online backup API; PostgreSQL is dumped by pg_dump (-Fc), which must
    be installed and no older than the server. FILE records what it is (SQLite or PostgreSQL,
    the schema revision, the time), so `mailer restore` refuses a mismatched one.

    The token key and the DKIM keys are NOT in it: keep copies of .mailer-secret (or MAILER_SECRET)
    and the .mailer-dkim*.pem files apart.

    \b
    Examples:
      mailer backup /var/backups/mailer/$(date +%F).tar
      mailer backup --json nightly.tar
    """
    from mailer.backup import NOT_INCLUDED, backup

    done = backup(app.settings, file, overwrite=overwrite)

    def human() -> None:
        m = done.manifest
        size = f"{m.bytes / 1e6:.1f} MB" if m.bytes >= 100_000 else f"{m.bytes:,} bytes"
        click.echo(f"Backed up the {m.kind} database (schema {m.revision}, {size}) to {done.path}")
        click.secho(NOT_INCLUDED, fg="yellow", err=True)

    emit(as_json, done.as_dict(), human)


@cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def restore_command(app: App, file: Path, as_json: bool) -> None:
    """Restore a backup made by `mailer backup` into the workspace's database, which must be
    empty: a new SQLite file, or a PostgreSQL database just made with createdb.

    FILE is checked whole (its checksum, that it is of the same kind of database as database_url,
    and of a schema this mailer knows) before anything is written. A backup made by an older mailer
    is migrated to this one's schema after it is restored. Restore never writes over a database
    that has tables: move that one aside, or point database_url at a new one.

    Campaigns that were being sent go on where the backup left them once a worker (or `mailer
    campaigns send SLUG`) runs; mail sent after the backup was made is not in it, so those members
    may get that mail again.

    \b
    Examples:
      MAILER_DATABASE_URL=sqlite:///restored.db mailer restore 2026-12-01.tar
      createdb mailer && mailer restore --json 2026-12-01.tar
    """
    from mailer.backup import restore

    done = restore(app.settings, file)

    def human() -> None:
        m = done.manifest
        click.echo(
            f"Restored {done.path} (a {m.kind} backup of {m.made_at}, schema {m.revision}) "
            f"into {done.database}: {done.members:,} members, {done.deliveries:,} deliveries."
        )
        if done.migrated:
            click.echo(f"  migrated to this mailer's schema: {done.revision}")
        click.echo("  The token key and the DKIM keys are not in a backup: put your copies in the workspace.")

    emit(as_json, done.as_dict(), human)
