"""The foundation: settings, workspaces, migrations and the lists' shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import MailerCli
from sqlalchemy import inspect, select, text

from mailer import db as database
from mailer.audience.shape import load_shape, sync
from mailer.errors import ConfigError, InvalidInput
from mailer.models import Interest, Region
from mailer.settings import load


def test_settings_environment_overrides_file(workspace: Path) -> None:
    (workspace / "mailer.toml").write_text('base_url = "https://file.example.org"\n')
    s = load(workspace, env={"MAILER_BASE_URL": "https://env.example.org", "MAILER_SECRET": "a,b"})
    assert s.base_url == "https://env.example.org"
    assert s.secrets == ["a", "b"]


def test_settings_defaults_are_inside_the_workspace(workspace: Path) -> None:
    s = load(workspace, env={})
    assert s.sqlalchemy_url == f"sqlite:///{workspace.resolve()}/mailer.db"
    assert s.relays == [f"maildir://{workspace.resolve()}/outbox"]


def test_secret_in_mailer_toml_is_refused(workspace: Path) -> None:
    (workspace / "mailer.toml").write_text('secret = "hunter2"\n')
    with pytest.raises(ConfigError) as err:
        load(workspace, env={})
    assert "mailer.toml" in str(err.value) and "MAILER_SECRET" in str(err.value)


def test_unknown_setting_and_bad_toml_name_the_file(workspace: Path) -> None:
    (workspace / "mailer.toml").write_text("colour = 'red'\n")
    with pytest.raises(ConfigError, match="colour: unknown setting"):
        load(workspace, env={})
    (workspace / "mailer.toml").write_text("base_url = \n")
    with pytest.raises(ConfigError, match=r"mailer.toml:1"):
        load(workspace, env={})


def test_secret_file_must_be_private(workspace: Path) -> None:
    secret = workspace / ".mailer-secret"
    secret.write_text("k\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load(workspace, env={})
    secret.chmod(0o600)
    assert load(workspace, env={}).secrets == ["k"]


def test_generated_mailer_toml_documents_every_setting(workspace: Path) -> None:
    text_ = (workspace / "mailer.toml").read_text()
    for name in ("organisation", "database_url", "base_url", "relay", "list_domain"):
        assert f"\n{name} = " in text_
    assert "MAILER_DATABASE_URL" in text_
    load(workspace, env={})  # and it loads


def test_migrations_upgrade_an_empty_database(empty_database_url: str) -> None:
    engine = database.make_engine(empty_database_url)
    assert database.current_revision(engine) is None
    database.upgrade(engine)
    assert database.current_revision(engine) == database.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"regions", "interests", "members", "consent_log", "suppressions"} <= tables
    engine.dispose()


def test_every_migration_upgrades_from_its_predecessor_and_back(empty_database_url: str) -> None:
    """Walk the chain one step at a time, with data present, then down to nothing and up again."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(database.MIGRATIONS))
    chain = list(reversed([rev.revision for rev in script.walk_revisions()]))
    engine = database.make_engine(empty_database_url)
    for rev in chain:
        database.upgrade(engine, rev)
        assert database.current_revision(engine) == rev
        with engine.begin() as conn:
            if rev == chain[0]:
                conn.execute(text("INSERT INTO regions (slug, name, path) VALUES ('x', 'X', '/x/')"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM regions WHERE slug = 'x'")).scalar() == "X"
    database.downgrade(engine, "base")
    assert database.current_revision(engine) is None
    database.upgrade(engine)
    assert database.current_revision(engine) == database.head_revision()
    engine.dispose()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    db = database.open_database(f"sqlite:///{tmp_path / 'wal.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()


def test_demo_shape_loads_with_both_networks() -> None:
    shape = load_shape(Path(__file__).resolve().parent.parent / "lists")
    assert shape.label("maidstone-medway-swale") == "South East › Kent › Maidstone, Medway & Swale"
    assert shape.label("malvern") == "Central England › West Midlands › Malvern"
    for slug in ("sussex", "surrey", "east-midlands", "south-midlands", "birmingham", "coventry", "derby"):
        assert slug in shape.regions
    for slug in ("refugees", "womens-rights", "palestine", "mp-advocacy", "schools", "write-for-rights"):
        assert slug in shape.interests
    assert shape.region_for_postcode("me14 1hh") == "maidstone-medway-swale"
    assert shape.region_for_postcode("B1 1AA") == "birmingham"
    assert set(shape.descendants("kent")) >= {"kent", "canterbury", "tunbridge-wells"}


def test_sync_is_idempotent(db, shape) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        again = sync(session, shape)
    assert not again.changed
    with db.session() as session:
        kent = session.scalars(select(Region).where(Region.slug == "kent")).one()
        assert kent.path == "/south-east/kent/"
        assert session.scalar(select(Interest.name).where(Interest.slug == "refugees")) == "Refugees"


def test_bad_shape_reports_every_problem_with_lines(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "regions.toml").write_text(
        '[[region]]\nslug = "a"\nname = "A"\n\n[[region]]\nslug = "Bad Slug"\nname = "B"\n\n'
        '[[region]]\nslug = "c"\nname = "C"\nparent = "nowhere"\n\n[[region]]\nslug = "a"\nname = "A2"\n'
    )
    with pytest.raises(InvalidInput) as err:
        load_shape(lists)
    msg = str(err.value)
    assert "regions.toml:5: slug: bad slug 'Bad Slug'" in msg
    assert "regions.toml:9: parent: region 'c' names unknown parent 'nowhere'" in msg
    assert "regions.toml:14: slug: duplicate region 'a'" in msg


def test_cli_init_and_sync(tmp_path: Path) -> None:
    ws = tmp_path / "net"
    run = ["-w", str(ws)]
    env = dict(os.environ, MAILER_SECRET="s")
    # The installed console script, once as its own process; the rest runs in-process.
    console_script = Path(sys.executable).with_name("mailer")
    subprocess.run([str(console_script), "init", str(ws)], check=True, env=env)
    mailer_cli = MailerCli(env)
    first = mailer_cli(*run, "lists", "sync", check=True)
    assert "regions added: 45" in first.stdout
    second = mailer_cli(*run, "lists", "sync", check=True)
    assert "already in sync" in second.stdout


def test_cli_error_names_the_file_and_exits_nonzero(tmp_path: Path) -> None:
    ws = tmp_path / "net"
    mailer_cli = MailerCli(os.environ)
    mailer_cli("init", str(ws), check=True)
    (ws / "lists" / "regions.toml").write_text('[[region]]\nslug = "x"\nparent = "y"\nname = "X"\n')
    out = mailer_cli("-w", str(ws), "lists", "sync")
    assert out.exit_code == 2
    assert "regions.toml:1: parent: region 'x' names unknown parent 'y'" in out.stderr
