"""A first real send that looks real: the SMTP greeting names the sending host, the Feedback-ID says
newsletter or alert, and DKIM over-signs the headers a forger would add a second copy of. Sent
through the real command line to the test SMTP server and parsed with ``email``."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from pathlib import Path

from dkim.util import parse_tag_value
from support.cli_runner import MailerCli
from support.smtp_server import SmtpTestServer

REPO = Path(__file__).resolve().parent.parent
ALERT = "2025-11-alert-first"
NEWSLETTER = "2025-11-newsletter-first"


def set_settings(workspace: Path, **values: str) -> None:
    """Replace settings in the workspace's mailer.toml (``mailer init`` writes every one)."""
    toml = workspace / "mailer.toml"
    text = toml.read_text(encoding="utf-8")
    for name, value in values.items():
        text, count = re.subn(rf"(?m)^{name} = .*$", f'{name} = "{value}"', text)
        assert count == 1, name
    toml.write_text(text, encoding="utf-8")


def test_a_test_send_greets_as_the_list_domain_and_labels_its_kind(
    mailer_cli: MailerCli, workspace: Path, smtp_server: SmtpTestServer
) -> None:
    shutil.copytree(REPO / "campaigns" / "2025-11-echr-alert", workspace / "campaigns" / ALERT)
    shutil.copytree(REPO / "campaigns" / "2025-11-kent-network", workspace / "campaigns" / NEWSLETTER)
    set_settings(workspace, list_domain="lists.cen-network.org.uk", from_address="news@cen-network.org.uk")
    mailer_cli("lists", "sync", check=True)
    mailer_cli("dkim", "keys", check=True)
    relay = {"MAILER_RELAY": smtp_server.url}
    for slug in (ALERT, NEWSLETTER):
        mailer_cli("campaigns", "send", slug, "--test", "editor@example.org", env=relay, check=True)
    assert set(smtp_server.ehlo_names) == {"lists.cen-network.org.uk"}

    set_settings(workspace, ehlo_hostname="mail.cen-network.org.uk")
    mailer_cli("campaigns", "send", ALERT, "--test", "editor@example.org", env=relay, check=True)
    assert smtp_server.ehlo_names[-1] == "mail.cen-network.org.uk"

    feedback = []
    for received in smtp_server.messages:
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        feedback.append(str(message["Feedback-ID"]).strip())  # a long one has a line of its own
        signatures = message.get_all("DKIM-Signature") or []
        assert len(signatures) == 2  # `mailer dkim keys` makes an RSA and an Ed25519 key
        for signature in signatures:
            signed = [h.strip().lower() for h in parse_tag_value(str(signature).encode())[b"h"].split(b":")]
            for name in (b"date", b"message-id", b"mime-version", b"content-type"):
                assert signed.count(name) == 2, name
            assert signed.count(b"sender") == 1 and signed.count(b"cc") == 1
    assert feedback == [
        f"{ALERT}:alert:kent-network:cen-network.org.uk",
        f"{NEWSLETTER}:newsletter:kent-network:cen-network.org.uk",
        f"{ALERT}:alert:kent-network:cen-network.org.uk",
    ]
