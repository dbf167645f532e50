"""The foundation: settings, workspaces, migrations and the lists' shape."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TEST_SECRET
from sqlalchemy import inspect, select, text
from support.cli_runner import MailerCli
from support.smtp_server import SmtpTestServer

from mailer import db as database
from mailer import tokens
from mailer.audience.shape import load_shape, sync
from mailer.errors import ConfigError, InvalidInput
from mailer.models import Interest, Region
from mailer.secret_key import read_secret_file, secret_weakness
from mailer.settings import load

STRONG = TEST_SECRET
OTHER = "Wq3Zt9pLk2Xv7Bn4Mc8Rj6Hd1Fs5Gy0Ua_-eTiOoPlKjHgFdSaZxCvBnMq"


def test_settings_environment_overrides_file(workspace: Path) -> None:
    (workspace / "mailer.toml").write_text('base_url = "https://file.example.org"\n')
    keys = f"{STRONG}, {OTHER}"
    s = load(workspace, env={"MAILER_BASE_URL": "https://env.example.org", "MAILER_SECRET": keys})
    assert s.base_url == "https://env.example.org"
    assert s.secrets == [STRONG, OTHER]


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
    secret.write_text(f"{STRONG}\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load(workspace, env={})
    secret.chmod(0o600)
    assert load(workspace, env={}).secrets == [STRONG]


# --- the token key: strength, the secret file, `mailer init` and `mailer secret new`


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("short", "5 characters long"),
        ("a" * 40, "different characters"),
        ("ab" * 20, "different characters"),
        ("12345678901234567890123456789012", "different characters"),
        ("test-secret-key-not-for-production", "bits of randomness"),
        ("correct horse battery staple and more words", "reads like words"),
        ("CorrectHorseBatteryStapleIsMySecretKey!", "reads like words"),
    ],
)
def test_weak_secrets_are_refused_with_the_fix(workspace: Path, key: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(workspace, env={"MAILER_SECRET": key})
    message = str(err.value)
    assert why in message and "MAILER_SECRET" in message
    assert "mailer secret new" in message and "secrets.token_urlsafe(48)" in message
    assert key not in message, "the key itself is never shown"
    # One weak key among strong ones is refused too, and named by its place.
    with pytest.raises(ConfigError, match="key 2 of 2 for signed links is too weak"):
        load(workspace, env={"MAILER_SECRET": f"{STRONG},{key}"})


def test_random_secrets_pass() -> None:
    for _ in range(200):
        assert secret_weakness(secrets.token_urlsafe(48)) is None
        assert secret_weakness(secrets.token_hex(32)) is None
        assert secret_weakness(base64.b64encode(secrets.token_bytes(32)).decode()) is None
    assert secret_weakness(TEST_SECRET) is None


def test_weak_secret_file_is_refused(workspace: Path) -> None:
    secret = workspace / ".mailer-secret"
    secret.write_text("hunter2\n")
    with pytest.raises(ConfigError) as err:
        load(workspace, env={})
    assert str(secret) in str(err.value) and "mailer secret new" in str(err.value)


def test_short_secret_is_refused_by_the_cli(mailer_cli: MailerCli) -> None:
    out = mailer_cli("lists", "count", "all", env={"MAILER_SECRET": "short"})
    assert out.exit_code == 2
    assert "MAILER_SECRET: the key for signed links is too weak: it is 5 characters long" in out.stderr
    assert "mailer secret new" in out.stderr and "Traceback" not in out.output


def test_init_writes_a_private_secret(tmp_path: Path) -> None:
    ws = tmp_path / "net"
    out = MailerCli(os.environ)("init", str(ws), check=True)
    secret = ws / ".mailer-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert ".mailer-secret" in out.stdout
    keys = read_secret_file(secret)
    assert len(keys) == 1 and secret_weakness(keys[0]) is None
    assert load(ws, env={}).secrets == keys
    MailerCli(os.environ)("init", str(ws), check=True)
    assert read_secret_file(secret) == keys, "init never overwrites a key"


def test_secret_new_rotates_keeping_the_old_key(tmp_path: Path) -> None:
    ws = tmp_path / "net"
    env = {k: v for k, v in os.environ.items() if k != "MAILER_SECRET"}
    mailer_cli = MailerCli(env)
    mailer_cli("init", str(ws), check=True)
    first = read_secret_file(ws / ".mailer-secret")
    done = json.loads(mailer_cli("-w", str(ws), "secret", "new", "--json", check=True).stdout)
    assert done == {
        "path": str((ws / ".mailer-secret").resolve()),
        "keys": 2,
        "kept": 1,
        "dropped_weak": 0,
        "dropped_old": 0,
        "environment_overrides": False,
    }
    keys = read_secret_file(ws / ".mailer-secret")
    assert keys[1:] == first and keys[0] != first[0]
    assert stat.S_IMODE((ws / ".mailer-secret").stat().st_mode) == 0o600
    settings = load(ws, env={})
    # A link signed with the old key still verifies; new links are signed with the new one.
    old_link = tokens.sign("preferences", 7, keys=first)
    assert tokens.verify(old_link, "preferences", keys=settings.secrets).key_index == 1
    assert tokens.verify(tokens.sign("view", 7, keys=settings.secrets), "view", keys=[keys[0]])
    human = mailer_cli("-w", str(ws), "secret", "new", "--drop-old", check=True).stdout
    assert "dropped 2 earlier key(s)" in human
    assert len(read_secret_file(ws / ".mailer-secret")) == 1
    for key in keys:
        assert key not in human


def test_secret_new_replaces_a_weak_key_and_names_the_environment(tmp_path: Path) -> None:
    ws = tmp_path / "net"
    ws.mkdir()
    secret = ws / ".mailer-secret"
    secret.write_text("weak\n")
    secret.chmod(0o600)
    out = MailerCli({**os.environ, "MAILER_SECRET": "short"})("-w", str(ws), "secret", "new", check=True)
    assert "dropped 1 weak key(s)" in out.stdout and "MAILER_SECRET is set" in out.stdout
    assert len(read_secret_file(secret)) == 1
    assert load(ws, env={}).secrets == read_secret_file(secret)


def test_new_sqlite_database_is_private(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    db = database.open_database(f"sqlite:///{path}")
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        for name in ("private.db", "private.db-wal", "private.db-shm"):
            if (tmp_path / name).exists():
                assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert (tmp_path / "private.db-wal").exists()
    db.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


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
    env = {k: v for k, v in os.environ.items() if k != "MAILER_SECRET"}  # init writes .mailer-secret
    # The installed console script, once as its own process; the rest runs in-process.
    console_script = Path(sys.executable).with_name("mailer")
    subprocess.run([str(console_script), "init", str(ws), "--example"], check=True, env=env)
    mailer_cli = MailerCli(env)
    first = mailer_cli(*run, "lists", "sync", check=True)
    assert "regions added: 45" in first.stdout
    second = mailer_cli(*run, "lists", "sync", check=True)
    assert "already in sync" in second.stdout


def test_a_fresh_workspace_can_send_a_test_at_once(tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    """`mailer init`, then a test send with nothing else set up: init made the secret and DKIM keys."""
    ws = tmp_path / "net"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env["MAILER_RELAY"] = f"smtp://127.0.0.1:{smtp_server.port}"
    mailer_cli = MailerCli(env)
    mailer_cli("init", str(ws), "--example", check=True)
    shutil.copytree(
        REPO / "tests" / "fixtures" / "campaigns" / "2025-11-kent-network", ws / "campaigns" / "k"
    )
    mailer_cli("-w", str(ws), "lists", "sync", check=True)
    out = mailer_cli("-w", str(ws), "campaigns", "send", "k", "--test", "editor@example.org", check=True)
    assert "test to editor@example.org: sent" in out.stdout
    [got] = smtp_server.messages
    message = email.message_from_bytes(got.data, policy=email.policy.default)
    assert got.rcpt_tos == ["editor@example.org"] and message["Subject"].startswith("[TEST]")
    assert message["DKIM-Signature"] is not None


def test_cli_error_names_the_file_and_exits_nonzero(tmp_path: Path) -> None:
    ws = tmp_path / "net"
    mailer_cli = MailerCli(os.environ)
    mailer_cli("init", str(ws), check=True)
    (ws / "lists" / "regions.toml").write_text('[[region]]\nslug = "x"\nparent = "y"\nname = "X"\n')
    out = mailer_cli("-w", str(ws), "lists", "sync")
    assert out.exit_code == 2
    assert "regions.toml:1: parent: region 'x' names unknown parent 'y'" in out.stderr
