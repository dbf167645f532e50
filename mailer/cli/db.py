"""``mailer db``: the database schema."""

from __future__ import annotations

import click

from mailer.cli import App, cli, emit, json_option, pass_app


@cli.group("db")
def db_group() -> None:
    """The database schema (migrations ship with mailer and also run on first use)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="The revision to upgrade to.")
@pass_app
def upgrade(app: App, revision: str) -> None:
    """Bring the database schema up to date."""
    from mailer import db as database

    engine = database.make_engine(app.settings.sqlalchemy_url)
    with database.reaching(engine):
        before = database.current_revision(engine)
        database.upgrade(engine, revision)
        after = database.current_revision(engine)
    engine.dispose()
    click.echo(f"database at {after} (was {before or 'empty'})")


@db_group.command("status")
@json_option
@pass_app
def status(app: App, as_json: bool) -> None:
    """Show the schema revision of the database and the newest one mailer knows."""
    from mailer import db as database

    engine = database.make_engine(app.settings.sqlalchemy_url)
    with database.reaching(engine):
        data = {
            "url": engine.url.render_as_string(hide_password=True),
            "current": database.current_revision(engine),
            "head": database.head_revision(),
        }
    engine.dispose()
    emit(as_json, data, lambda: click.echo(f"{data['url']}: at {data['current']}, newest {data['head']}"))
