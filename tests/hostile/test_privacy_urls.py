"""Hostile privacy notices: ``privacy_url`` goes into the href of every mail's footer and every
page, so a value that is not an http(s) address or a path on the web app (javascript:, data:, a
quote that would close the attribute, a protocol-relative //host) is refused where it is read
(lists/networks.toml, with file, line and field), never rendered as a link (mailer.toml's), and an
http:// one is refused before a send to members outside a demo workspace."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mailer.audience.networks import default_network, load_networks, privacy_url
from mailer.audience.tree import RegionDef, Shape
from mailer.errors import Problem
from mailer.readiness import settings_findings
from mailer.settings import Settings
from mailer.web.csrf import Csrf
from mailer.web.pages import Pages

SECRET = "I6yzj8FjALhZrPdPg1f7_pOKb12CJvwzrGnlnmBobdwNX_-BVeirKbBQDJRlJsrz"
HOSTILE = {
    "javascript": "javascript:alert(document.cookie)",
    "javascript in capitals": "JavaScript:alert(1)",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "a quote closing the attribute": 'https://example.org/" onmouseover="alert(1)',
    "an angle bracket": "https://example.org/<script>",
    "a space": "https://example.org/privacy notice",
    "protocol-relative": "//evil.example/privacy",
    "no host": "https:///privacy",
    "a mailto": "mailto:dpo@example.org",
    "a CRLF": "https://example.org/\r\nBcc: x@example.net",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_networks_toml_refuses_a_privacy_url_that_is_not_a_link(case: str, tmp_path: Path) -> None:
    url = HOSTILE[case].replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
    path = tmp_path / "networks.toml"
    path.write_text(
        f'[[network]]\nslug = "kent"\nname = "Kent"\nregions = ["kent"]\n'
        f'from_address = "news@example.org"\nprivacy_url = "{url}"\n',
        encoding="utf-8",
    )
    problems: list[Problem] = []
    networks = load_networks(path, {"kent": RegionDef(slug="kent", name="Kent")}, problems)
    assert networks == {}
    assert {p.field for p in problems} == {"privacy_url"}, problems
    assert problems[0].path == path and problems[0].line == 1


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_mailer_toml_privacy_url_that_is_not_a_link_is_never_linked(case: str, tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path, secret=SECRET, privacy_url=HOSTILE[case], demo=True)
    network = default_network(settings)
    assert privacy_url(network, settings) == ""
    page = Pages(settings, Csrf(settings.secrets, secure=False)).text("check_inbox.html")
    assert "javascript:" not in page.lower() and "evil.example" not in page and "onmouseover" not in page
    # And doctor says so, as an error even in a demo.
    found = [f for f in settings_findings(settings, Shape()) if f.check == "privacy_url"]
    assert [(f.severity, "is not a link" in f.message) for f in found] == [("error", True)]


def test_an_http_privacy_notice_is_refused_outside_a_demo(tmp_path: Path) -> None:
    settings = Settings(
        workspace=tmp_path, secret=SECRET, privacy_url="http://example.org/privacy", demo=False
    )
    found = [f for f in settings_findings(settings, Shape()) if f.check == "privacy_url"]
    assert [(f.severity, "is not https" in f.message) for f in found] == [("error", True)]
    demo = [f for f in settings_findings(replace(settings, demo=True), Shape()) if f.check == "privacy_url"]
    assert [f.severity for f in demo] == ["warning"]
