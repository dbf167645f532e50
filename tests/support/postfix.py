"""A private Postfix for tests: its own ``config_directory``, queue and log under a folder of the
test's, its own SMTP port on 127.0.0.1, started with ``postfix -c DIR start`` (as root) and stopped
at the end. The system's Postfix, if any, is not touched.

It is configured as deploy/postfix/ tells an operator to configure theirs: it relays outbound mail
from 127.0.0.1 (where mailer's workers send), and it is the MX of the list domain, whose every
address (the VERP return paths, the mailto unsubscribe addresses) goes through a ``pipe`` transport
into ``mailer inbound deliver``, one recipient at a time. Here every other domain is sent on to one
SMTP server (``transport_maps``: ``* smtp:[127.0.0.1]:PORT``), a test's aiosmtpd sink standing in
for the Internet.

The pipe runs its command as an unprivileged user (Postfix refuses root), which must be able to run
mailer: ``mailer_command`` finds an interpreter that user can run (the tests' own, else the
system's ``python3`` of the same version given the tests' packages on PYTHONPATH).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
DAEMONS = "/usr/lib/postfix/sbin"
PIPE_USER = "nobody"
REPO = Path(__file__).resolve().parents[2]

#: The services a relay and MX needs, none chrooted (the queue is in a test's folder).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
{pipe}
"""


def unavailable() -> str | None:
    """Why a private Postfix cannot start here, or None."""
    if os.geteuid() != 0:
        return "starting Postfix needs root"
    if not Path(POSTFIX).exists() or not Path(DAEMONS, "master").exists():
        return "Postfix is not installed (apt-get install postfix)"
    try:
        pwd.getpwnam(PIPE_USER)
    except KeyError:
        return f"there is no user {PIPE_USER!r} for Postfix's pipe to run as"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mailer_command(user: str = PIPE_USER) -> tuple[list[str], dict[str, str]]:
    """How ``user`` runs mailer: the command (before mailer's own arguments) and the environment
    it needs."""
    own = [sys.executable, "-m", "mailer"]
    if _runs_as(user, [*own, "--version"], {}):
        return own, {}
    site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    env = {"PYTHONPATH": f"{REPO}:{site}"}
    if system and _runs_as(user, [system, "-m", "mailer", "--version"], env):
        return [system, "-m", "mailer"], env
    raise RuntimeError(f"user {user} can run no Python with mailer's packages ({sys.executable} is private)")


def _runs_as(user: str, argv: list[str], env: dict[str, str]) -> bool:
    entry = pwd.getpwnam(user)

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setgroups([])
        os.setuid(entry.pw_uid)

    try:
        done = subprocess.run(
            argv,
            env={"PATH": "/usr/bin:/bin", **env},
            cwd="/",
            preexec_fn=demote,
            capture_output=True,
            timeout=30,
        )
    except OSError:
        return False
    return done.returncode == 0


class PostfixInstance:
    """A Postfix of its own under ``root``: relay for 127.0.0.1, MX of ``list_domain`` (piped into
    ``pipe_argv``), sending everything else to 127.0.0.1:``next_hop_port``."""

    def __init__(
        self,
        root: Path,
        *,
        list_domain: str,
        next_hop_port: int,
        pipe_argv: list[str],
        pipe_env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.config = root / "etc"
        self.queue = root / "queue"
        self.log = root / "maillog"
        self.port = free_port()
        self.list_domain = list_domain
        self.next_hop_port = next_hop_port
        self.pipe_argv = pipe_argv
        self.pipe_env = pipe_env or {}

    def _main_cf(self) -> str:
        exported = " ".join(["TZ", "LANG", *(f"{k}={v}" for k, v in self.pipe_env.items())])
        return f"""\
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.root / "data"}
meta_directory = /etc/postfix
daemon_directory = {DAEMONS}
command_directory = /usr/sbin
mail_owner = postfix
setgid_group = postdrop
maillog_file = {self.log}
maillog_file_prefixes = {self.root}
myhostname = mx.postfix-test.invalid
mydomain = postfix-test.invalid
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtpd_banner = $myhostname ESMTP
biff = no
export_environment = {exported}
{_deploy_main_cf(self.config).replace("lists.example.org", self.list_domain)}
"""

    def start(self) -> PostfixInstance:
        self.config.mkdir(parents=True)
        self.queue.mkdir()
        data = self.root / "data"
        data.mkdir()
        shutil.chown(data, "postfix")
        # deploy/postfix/'s maps, their example list domain made the test's, and every other domain
        # sent on to the sink.
        deploy = REPO / "deploy" / "postfix"
        example = "lists.example.org"
        transport = (deploy / "mailer_transport").read_text().replace(example, self.list_domain)
        transport += f"* smtp:[127.0.0.1]:{self.next_hop_port}\n"
        (self.config / "mailer_transport").write_text(transport)
        recipients = (deploy / "mailer_recipients").read_text()
        recipients = recipients.replace(example.replace(".", r"\."), self.list_domain.replace(".", r"\."))
        (self.config / "mailer_recipients").write_text(recipients)
        (self.config / "main.cf").write_text(self._main_cf())
        pipe = _deploy_master_cf(self.pipe_argv)
        (self.config / "master.cf").write_text(MASTER_CF.format(port=self.port, pipe=pipe))
        done = subprocess.run(
            ["script", "-qec", f"{POSTFIX} -c {self.config} start", "/dev/null"],
            capture_output=True,
            text=True,
            timeout=60,
        )  # a terminal, so that postfix says why it does not start
        if done.returncode != 0:
            raise RuntimeError(f"postfix did not start: {done.stdout.strip()} {self.tail()}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"postfix is not listening on {self.port}: {self.tail()}")

    def flush(self) -> None:
        """Try every deferred mail now."""
        subprocess.run([POSTFIX, "-c", str(self.config), "flush"], capture_output=True, timeout=30)

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.config), "abort"], capture_output=True, timeout=60)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> PostfixInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _section(path: Path, marker: str) -> str:
    """The lines of deploy/postfix/``path`` between ``# >>> marker`` and ``# <<< marker``."""
    text = path.read_text()
    start = text.index(f"# >>> {marker}\n") + len(f"# >>> {marker}\n")
    return text[start : text.index(f"# <<< {marker}")]


def _deploy_main_cf(config: Path) -> str:
    """deploy/postfix/main.cf's mailer settings, its /etc/postfix paths pointed at ``config``."""
    return _section(REPO / "deploy" / "postfix" / "main.cf", "mailer").replace("/etc/postfix/", f"{config}/")


def _deploy_master_cf(argv: list[str]) -> str:
    """deploy/postfix/master.cf's pipe service, running ``argv`` as the pipe user instead of the
    installed mailer."""
    service = _section(REPO / "deploy" / "postfix" / "master.cf", "mailer")
    lines = service.splitlines()
    out = []
    for line in lines:
        if "argv=" in line:
            head = line[: line.index("user=")]
            line = f"{head}user={PIPE_USER} argv={' '.join(argv)}"
        out.append(line)
    return "\n".join(out) + "\n"
