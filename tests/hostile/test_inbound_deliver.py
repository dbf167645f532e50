"""Hostile input on the standard input of ``mailer inbound deliver``, the command Postfix's pipe
runs for every mail to the list domain (deploy/postfix/master.cf), run as Postfix runs it: a
process of its own, one mail on stdin, its exit status read as sysexits.h says.

Whatever arrives, the mail is never lost and never bounced: poison MIME, nothing at all, binary
bytes and a mail over the size mailer reads exit 0 with the mail kept whole in the Maildir
(``.quarantine`` or ``.processed``); a forged bounce changes nobody; and when mailer cannot do its
work (the database down, the settings broken, the Maildir unwritable) it exits 75 (EX_TEMPFAIL),
so that Postfix keeps the mail and tries again, leaving no copy behind and no password in what it
says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from support.hostile import HOSTILE, PASSWORD

from mailer.db import Database
from mailer.inbound.parse import MAX_MESSAGE_BYTES
from mailer.models import Suppression

EX_TEMPFAIL = 75
MAIL = HOSTILE / "mail"


@dataclass(frozen=True)
class Delivered:
    returncode: int
    stdout: bytes
    stderr: bytes


def _deliver(env: dict[str, str], data: bytes, *args: str, process: bool = False) -> Delivered:
    """``mailer inbound deliver`` given ``data`` on stdin: in a process of its own as Postfix runs
    it (``process``), else in this one (the same command, without the second of start-up)."""
    if process:
        done = subprocess.run(
            [sys.executable, "-m", "mailer", "inbound", "deliver", *args],
            input=data,
            env=env,
            capture_output=True,
            timeout=60,
        )
        return Delivered(done.returncode, done.stdout, done.stderr)
    from mailer.cli import cli

    overrides = {k: v for k, v in env.items() if k.startswith("MAILER_")}
    overrides.update({k: None for k in os.environ if k.startswith("MAILER_") and k not in env})
    result = CliRunner().invoke(cli, ["inbound", "deliver", *args], input=data, env=overrides)
    return Delivered(result.exit_code, result.stdout_bytes, result.stderr_bytes)


def _kept(workspace: Path) -> dict[str, list[bytes]]:
    """The mails in each folder of the workspace's inbound Maildir."""
    root = workspace / "inbound"
    folders = {"new": root / "new", "tmp": root / "tmp", "processed": root / ".processed" / "cur"}
    folders["quarantine"] = root / ".quarantine" / "cur"
    return {
        name: [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []
        for name, folder in folders.items()
    }


POISON = {
    "broken MIME": (MAIL / "broken-boundary.eml").read_bytes(),
    "multiparts nested past the limit": (MAIL / "nested-multiparts.eml").read_bytes(),
    "an unknown charset": (MAIL / "unknown-charset.eml").read_bytes(),
    "nothing at all": b"",
    "binary bytes and NULs": bytes(range(256)) * 64,
    "no headers, one endless line": b"x" * 2_000_000,
}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("case", sorted(POISON))
def test_poison_is_kept_whole_and_acknowledged(
    case: str, db: Database, env: dict[str, str], workspace: Path
) -> None:
    data = POISON[case]
    done = _deliver(env, data, process=case == "broken MIME")
    assert done.returncode == 0, done.stderr.decode()
    kept = _kept(workspace)
    assert kept["processed"] + kept["quarantine"] == [data]  # byte for byte
    assert kept["new"] == kept["tmp"] == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_mail_larger_than_mailer_reads_is_quarantined_and_kept_whole(
    db: Database, env: dict[str, str], workspace: Path
) -> None:
    data = b"From: someone@example.net\r\nSubject: huge\r\n\r\n" + b"a" * (MAX_MESSAGE_BYTES + 1000)
    done = _deliver(env, data)
    assert done.returncode == 0, done.stderr.decode()
    assert b"quarantined" in done.stdout
    quarantine = workspace / "inbound" / ".quarantine" / "cur"
    (only,) = list(quarantine.iterdir())
    assert only.stat().st_size == len(data)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_forged_bounce_changes_nobody(db: Database, env: dict[str, str], workspace: Path) -> None:
    data = (
        (MAIL / "forged-dsn-wrong-mac.eml")
        .read_bytes()
        .replace(b"{{DELIVERY}}", b"1")
        .replace(b"{{N}}", b"1")
    )
    done = _deliver(env, data)
    assert done.returncode == 0, done.stderr.decode()
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
    assert _kept(workspace)["processed"] == [data]


def test_no_database_means_try_again_later_and_no_copy_left(workspace: Path, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        MAILER_WORKSPACE=str(workspace),
        MAILER_DATABASE_URL=f"postgresql+psycopg://mailer:{PASSWORD}@127.0.0.1:1/mailer",
    )
    done = _deliver(env, b"From: a@example.net\r\nSubject: x\r\n\r\nbody\r\n", process=True)
    assert done.returncode == EX_TEMPFAIL
    said = done.stderr.decode()
    assert "try again later" in said and PASSWORD not in said and "Traceback" not in said
    assert _kept(workspace) == {"new": [], "tmp": [], "processed": [], "quarantine": []}


def test_broken_settings_mean_try_again_later(workspace: Path) -> None:
    (workspace / "mailer.toml").write_text("this is = = not toml\n")
    done = _deliver(dict(os.environ, MAILER_WORKSPACE=str(workspace)), b"Subject: x\r\n\r\nbody\r\n")
    assert done.returncode == EX_TEMPFAIL
    assert "mailer.toml" in done.stderr.decode()


def test_an_unwritable_maildir_means_try_again_later(workspace: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    env = dict(os.environ, MAILER_WORKSPACE=str(workspace))
    done = _deliver(env, b"Subject: x\r\n\r\nbody\r\n", "--maildir", str(blocked))
    assert done.returncode == EX_TEMPFAIL
    assert blocked.read_text() == "not a folder"
