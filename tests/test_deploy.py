"""What deploy/ gives an operator works: the systemd units pass ``systemd-analyze verify``, and a
real Postfix configured with deploy/postfix/ relays a campaign from mailer to the Internet (an
aiosmtpd sink here) and brings a bounce and a mailed unsubscribe back into ``mailer inbound
deliver``, which changes the members' state.

The Postfix test starts a private instance (tests/support/postfix.py: its own configuration, queue
and port) as root; where Postfix cannot start it is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from support.postfix import PIPE_USER, PostfixInstance, mailer_command, unavailable
from support.sending import add_campaign, add_members, parse, prepare_and_enqueue, send
from support.smtp_server import SmtpTestServer

from mailer.audience import addresses
from mailer.audience.shape import load_shape, sync
from mailer.db import open_database
from mailer.models import Member, NetworkLeave, Suppression
from mailer.settings import load
from mailer.workspace import init_workspace

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "deploy" / "systemd"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _cannot(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


# --- the systemd units --------------------------------------------------------------------------


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    """Each unit, its mailer path pointed at the mailer installed here, passes ``systemd-analyze
    verify`` with nothing to say (an unknown key or a bad value is only a warning to systemd, so
    any output fails the test)."""
    if not Path(SYSTEMD_ANALYZE).exists():
        _cannot("systemd-analyze is not installed")
    mailer = shutil.which("mailer", path=str(Path(sys.executable).parent)) or "/bin/true"
    names = []
    for unit in sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer")):
        text = unit.read_text().replace("/opt/mailer/venv/bin/mailer", mailer)
        name = unit.name.replace("@.", "@1.")  # a template is verified as an instance
        (tmp_path / name).write_text(text)
        names.append(name)
    assert {"mailer-web.service", "mailer-worker@1.service", "mailer-inbound.timer"} <= set(names)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", "--recursive-errors=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("unit", ["mailer-web.service", "mailer-worker@.service", "mailer-inbound.service"])
def test_the_units_are_hardened(unit: str) -> None:
    text = (UNITS / unit).read_text()
    for line in (
        "User=mailer",
        "ProtectSystem=strict",
        "ReadWritePaths=/srv/mailer",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "EnvironmentFile=/etc/mailer/mailer.env",
    ):
        assert re.search(f"^{re.escape(line)}$", text, re.MULTILINE), f"{unit} lacks {line}"


def test_the_web_unit_runs_the_web_app_beside_the_workers() -> None:
    web = (UNITS / "mailer-web.service").read_text()
    assert "mailer serve --proxy --no-worker --processes 2 --host 127.0.0.1" in web
    assert "mailer worker --id %H-%i" in (UNITS / "mailer-worker@.service").read_text()


# --- a real Postfix ------------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the pipe's unprivileged user can reach (a test's tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="mailer-postfix-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _give(path: Path, user: str) -> None:
    for p in [path, *path.rglob("*")]:
        shutil.chown(p, user, user if user != "nobody" else "nogroup")


def _until(what: str, check: Callable[[], object], postfix: PostfixInstance, seconds: float = 20) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"{what} within {seconds} s; Postfix's log:\n{postfix.tail()}")


@pytest.mark.slow
def test_a_campaign_goes_out_through_postfix_and_bounces_and_unsubscribes_come_back(
    shared_dir: Path, tmp_path: Path
) -> None:
    why = unavailable()
    if why:
        _cannot(why)
    workspace = shared_dir / "ws"
    init_workspace(workspace)
    settings = load(workspace, env={})
    db = open_database(settings)
    shape = load_shape(workspace / "lists")
    with db.session() as session:
        sync(session, shape)
    add_campaign(workspace)
    add_members(db, shape, tmp_path, 30)
    prepare_and_enqueue(db, settings, shape)
    _give(workspace, PIPE_USER)  # the pipe runs mailer as this user: the workspace is its

    command, env = mailer_command()
    with SmtpTestServer() as sink:
        with db.session() as session:
            members = sorted(session.scalars(select(Member.email)))
        gone = next(m for m in members if m.lower().endswith("@example.org"))
        sink.reject(re.escape(gone.lower()))
        postfix = PostfixInstance(
            shared_dir / "postfix",
            list_domain=settings.list_domain,
            next_hop_port=sink.port,
            pipe_argv=[*command, "--workspace", str(workspace), "inbound", "deliver"],
            pipe_env=env,
        )
        try:
            postfix.start()
        except RuntimeError as exc:
            _cannot(str(exc))
        try:
            summary = send(db, settings, f"smtp://127.0.0.1:{postfix.port}")
            audience = summary.sent
            assert audience >= 5 and summary.failed == 0  # Postfix took every message

            # mailer -> Postfix -> the sink: everyone but the rejected address, VERP sender kept.
            _until("the campaign at the sink", lambda: len(sink.messages) == audience - 1, postfix)
            for got in sink.messages:
                assert got.mail_from.startswith("bounces+") and got.mail_from.endswith(settings.list_domain)
                assert "mx.postfix-test.invalid" in parse(got.data)["Received"]

            # The sink's 550 5.1.1 becomes Postfix's DSN to the VERP address: piped into mailer.
            def suppressed() -> bool:
                with db.session() as session:
                    return session.get(Suppression, addresses.hash_of(session, gone)) is not None

            _until("the bounce suppressing the rejected member", suppressed, postfix)

            # A member mails the List-Unsubscribe mailto address, through Postfix as the list's MX.
            first = parse(sink.messages[0].data)
            mailto = re.search(r"<mailto:([^>?]+)", str(first["List-Unsubscribe"]))
            assert mailto and mailto.group(1).startswith("unsubscribe+")
            leaving = sink.messages[0].rcpt_tos[0]
            note = EmailMessage()
            note["From"], note["To"], note["Subject"] = leaving, mailto.group(1), "unsubscribe"
            note.set_content("Please take me off the list.")
            with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as smtp:
                smtp.send_message(note, from_addr=leaving, to_addrs=[mailto.group(1)])

            def left() -> bool:
                with db.session() as session:
                    member_id = session.scalar(select(Member.id).where(Member.email == leaving))
                    hash_ = addresses.hash_of(session, leaving)
                    return (
                        session.get(Suppression, hash_) is not None
                        or session.scalar(select(NetworkLeave).where(NetworkLeave.member_id == member_id))
                        is not None
                    )

            _until("the mailed unsubscribe", left, postfix)
            processed = workspace / "inbound" / ".processed" / "cur"

            def both_kept() -> bool:  # the DSN and the unsubscribe, each kept after processing
                return processed.is_dir() and len(list(processed.iterdir())) == 2

            _until("both mails kept in the Maildir", both_kept, postfix)
            delivered = re.compile(
                r"relay=mailer-inbound, .* status=sent \(delivered via mailer-inbound service"
            )
            _until(
                "Postfix's log of both", lambda: len(delivered.findall(postfix.log.read_text())) == 2, postfix
            )
        finally:
            postfix.stop()
            db.dispose()
