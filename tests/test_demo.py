"""`mailer demo`: the whole story on the embedded defaults (SQLite, a Maildir outbox).

The demo runs once for this module (``first_demo``); each test gets a copy of its folder (the
workspace's paths are relative), so what one test does to it the other does not see."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dkim
import pytest
from starlette.testclient import TestClient
from support.cli_runner import MailerCli
from support.signatures import parse_zone, verified

from mailer.settings import load
from mailer.web import create_app


def run_demo(folder: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    out = subprocess.run(
        [sys.executable, "-m", "mailer", "demo", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder after a first ``mailer demo``, and what that printed (copy it before changing it)."""
    folder = tmp_path_factory.mktemp("first-demo") / "demo"
    return folder, run_demo(folder)


def copy_of(first_demo: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "demo"
    shutil.copytree(first_demo[0], folder)
    return folder, first_demo[1]


@pytest.mark.slow
def test_demo_sends_once_to_the_outbox_and_prints_a_working_unsubscribe_link(
    first_demo: tuple[Path, str], tmp_path: Path
) -> None:
    folder, first = copy_of(first_demo, tmp_path)
    outbox = sorted((folder / "outbox" / "new").iterdir())
    sent = {
        slug: re.search(slug + r": sent \(sent (\d+)\)", first)
        for slug in ("2025-11-kent-network", "2025-11-echr-alert", "2025-12-central-england")
    }
    counts = {slug: int(m.group(1)) for slug, m in sent.items() if m}
    assert len(counts) == 3 and min(counts.values()) > 0, first
    assert len(outbox) == sum(counts.values()) > 100
    # Each network's mail speaks as that network.
    senders = {
        str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["List-Id"]) for p in outbox
    }
    assert senders == {
        "Kent Network <kent-network.lists.example.org>",
        "Central England Network <central-england.lists.example.org>",
    }
    message = email.message_from_bytes(outbox[0].read_bytes(), policy=email.policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "serve" in first
    link = re.search(r"Unsubscribe link of one member: (\S+)", first)
    assert link

    # The link works in the members' web app: the page changes nothing, the one-click POST unsubscribes.
    settings = load(folder, env={})
    path = link.group(1).removeprefix(settings.base_url)
    client = TestClient(create_app(settings), base_url=settings.base_url)  # the hosts the app answers to
    assert client.get(path).status_code == 200
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    second = run_demo(folder)  # nothing is sent twice
    assert len(list((folder / "outbox" / "new").iterdir())) == len(outbox)
    assert "sending" not in second


@pytest.mark.slow
def test_the_demo_signs_every_message_and_test_sends_are_new_messages(
    first_demo: tuple[Path, str], tmp_path: Path
) -> None:
    """Every message of the demo carries an RSA-2048 and an Ed25519 DKIM signature that verify
    against the records `mailer dkim dns` prints; two test sends have two Message-IDs."""
    folder, _ = copy_of(first_demo, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    cli = MailerCli({**env, "MAILER_WORKSPACE": str(folder)})
    records = parse_zone(cli("dkim", "dns", check=True).stdout)
    assert len(records) == 2

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    outbox = folder / "outbox" / "new"
    sent = sorted(outbox.iterdir())
    assert len(sent) > 100
    for path in sent:
        raw = path.read_bytes()
        assert raw.count(b"\nDKIM-Signature: ") == 2
        assert verified(raw, dnsfunc) == [True, True], path.name
    assert dkim.verify(sent[0].read_bytes(), dnsfunc=dnsfunc)

    for _ in range(2):
        cli("campaigns", "send", "2025-11-kent-network", "--test", "editor@example.org", check=True)
    tests = [p.read_bytes() for p in sorted(set(outbox.iterdir()) - set(sent))]
    assert len(tests) == 2
    ids = [email.message_from_bytes(t, policy=email.policy.default)["Message-ID"] for t in tests]
    assert ids[0] != ids[1], ids
    assert all(verified(t, dnsfunc) == [True, True] for t in tests)
