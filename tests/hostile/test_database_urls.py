"""The hostile database URLs of ``databases/urls.txt``, replayed through the real CLI (in-process,
``mailer_cli``) as ``MAILER_DATABASE_URL`` and as ``database_url`` in mailer.toml.

Each must end in one clear ConfigError (exit 2) that names the setting, shows the URL with ``***`` for
its password and says which forms mailer takes, before anything is written: the workspace is left as
it was. ``postgresql://`` without a driver is accepted and means psycopg 3.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import TEST_SECRET
from support.cli_runner import MailerCli
from support.hostile import PASSWORD, Case, assert_handled, block_cases

from mailer.setting_values import DATABASE_URL_FORMS
from mailer.settings import load

HERE = Path(__file__).resolve().parent


def database_url_cases() -> list[Case]:
    return block_cases(HERE / "databases" / "urls.txt")


def files(root: Path) -> dict[str, float]:
    """Every file under ``root`` and when it last changed."""
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


@pytest.mark.parametrize("case", database_url_cases(), ids=str)
def test_hostile_database_urls(case: Case, mailer_cli: MailerCli, workspace: Path) -> None:
    before = files(workspace)
    result = mailer_cli("lists", "sync", env={"MAILER_DATABASE_URL": case.body.decode()})
    assert_handled(result, case, max_lines=1)
    assert result.stderr.startswith("Error: ")
    assert "MAILER_DATABASE_URL" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert files(workspace) == before
    assert not Path("/nonexistent").exists()
    if case.body.startswith(b"sqlite:////"):
        assert not Path(case.body.decode().removeprefix("sqlite:///").partition("?")[0]).exists()


def test_a_database_url_in_mailer_toml_is_named_with_its_file(mailer_cli: MailerCli, workspace: Path) -> None:
    toml = workspace / "mailer.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(
        re.sub(r"(?m)^database_url = .*$", f'database_url = "mysql://u:{PASSWORD}@db/news"', text),
        encoding="utf-8",
    )
    env = {k: v for k, v in mailer_cli.env.items() if k != "MAILER_DATABASE_URL"}
    result = MailerCli(env)("lists", "sync")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"Error: {toml}: database_url: mailer runs on SQLite or PostgreSQL")
    assert "mysql://u:***@db/news" in result.stderr and PASSWORD not in result.stderr
    assert DATABASE_URL_FORMS in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///mailer.db",
        "sqlite+pysqlite:////var/lib/mailer/mailer.db",
        "sqlite://",
        "postgresql+psycopg://mailer:p%40ss@db.example.org:5432/news",
        "postgresql+psycopg://mailer@[::1]:5432/news?sslmode=require",
        "postgresql+psycopg:///news",
    ],
)
def test_good_database_urls_pass(url: str, workspace: Path) -> None:
    settings = load(workspace, env={"MAILER_DATABASE_URL": url, "MAILER_SECRET": TEST_SECRET})
    assert settings.database_url == url


def test_postgresql_without_a_driver_means_psycopg(workspace: Path) -> None:
    settings = load(
        workspace, env={"MAILER_DATABASE_URL": "postgresql://u@db/news", "MAILER_SECRET": TEST_SECRET}
    )
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@db/news"


@pytest.mark.parametrize("command", [("db", "status"), ("db", "upgrade"), ("lists", "sync")], ids=" ".join)
def test_a_database_that_refuses_the_connection_is_one_line_and_exit_1(
    command: tuple[str, ...], mailer_cli: MailerCli, workspace: Path
) -> None:
    """A well-formed URL to a server that is not there: every command, ``db`` ones included, says it
    could not open the database, in one line with the password hidden, and exits 1 (not 70)."""
    from socket import socket

    with socket() as probe:  # a port on this machine that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://mailer:{PASSWORD}@127.0.0.1:{port}/news?connect_timeout=5"
    before = files(workspace)
    result = mailer_cli(*command, env={"MAILER_DATABASE_URL": url})
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith("Error: cannot open the database:"), result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert files(workspace) == before
