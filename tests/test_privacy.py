"""Accountable with members' data: every mail and page names who sends it, their postal address,
and links their privacy notice; a sign-up agrees to one network's wording, recorded with its
version, the network and the form; a Kent-only sign-up is in Kent's mail only.

- The golden files (every rendered variant, both networks' footers, the welcome and confirmation
  mails) carry the privacy link, the network's name and postal address.
- Over real HTTP (uvicorn) in the demo workspace (Kent and Central England): the sign-up page, the
  organisation's sign-up page, the embeddable form, the confirmation mail, the confirm and
  confirmed pages, the welcome mail (with List-Unsubscribe and One-Click), the preferences page,
  the unsubscribe page and its done page, the archive and an issue's page, the calendars, the home
  page: each speaks as its network (or, for the organisation's pages, names every network).
- ``readiness``: no privacy notice, or one not https, stops a send outside a demo.

Regenerate the system mails' golden files with ``MAILER_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from dataclasses import replace
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support.browser import free_port, live_server
from support.networks import CE, KENT, Demo, app_for, demo, send_issue
from support.rendering import check_golden
from support.smtp_server import SmtpTestServer

from mailer.audience import consent
from mailer.audience.networks import Network, consent_text, privacy_url, wording_version
from mailer.audience.shape import Shape, load_shape
from mailer.errors import NotReady
from mailer.models import ConsentEvent, Member, NetworkLeave
from mailer.readiness import require_ready, settings_findings
from mailer.settings import Settings
from mailer.web.confirmation import seal
from mailer.web.csrf import Csrf
from mailer.web.mail import system_mail
from mailer.web.pages import Pages
from mailer.web.welcome import welcome_message

__all__ = ["demo"]  # the demo workspace fixture, shared
REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
DEMO_SHAPE = load_shape(REPO / "lists")
KENT_NET, CE_NET = DEMO_SHAPE.networks["kent"], DEMO_SHAPE.networks["central-england"]


def flat(text: str) -> str:
    """``text`` with HTML entities read and every run of white space one space (text wraps)."""
    return " ".join(html.unescape(text).split())


def speaks_as(text: str, network: Network, where: str) -> None:
    """``text`` (a page, a mail, a golden file) names ``network``, its postal address and links its
    privacy notice."""
    seen = flat(text)
    assert network.name in seen, f"{where}: no {network.name!r}"
    assert network.postal_address in seen, f"{where}: no postal address of {network.name}"
    assert network.privacy_url in seen, f"{where}: no privacy link {network.privacy_url!r}"


# ---------------------------------------------------------------------------------------------
# Golden files


def golden_settings(tmp_path: Path) -> Settings:
    root = tmp_path / "golden-ws"
    (root / "templates").mkdir(parents=True)
    return Settings(
        workspace=root,
        base_url="https://kent.example.org",
        list_domain="lists.example.org",
        secret="I6yzj8FjALhZrPdPg1f7_pOKb12CJvwzrGnlnmBobdwNX_-BVeirKbBQDJRlJsrz",
    )


def shown(msg: EmailMessage) -> str:
    """A system mail as its golden file keeps it: the headers a reader or provider acts on, then
    the body, with the signed tokens (which change with the time) as TOKEN."""
    head = "".join(
        f"{name}: {msg[name]}\n"
        for name in ("From", "Subject", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post")
        if msg[name] is not None
    )
    body = msg.get_body(("plain",))
    assert body is not None
    text = head + "\n" + body.get_content()
    return re.sub(r"(/u/|/p/|/confirm/|unsubscribe\+)[A-Za-z0-9_=.-]{20,}", r"\1TOKEN", text)


def system_mails(tmp_path: Path) -> dict[str, EmailMessage]:
    """The welcome (a Canterbury member: Kent) and the confirmation of a sign-up to Central England."""
    settings = golden_settings(tmp_path)
    pages = Pages(settings, Csrf(settings.secrets, secure=False), list(DEMO_SHAPE.networks.values()))
    welcome = welcome_message(
        pages,
        settings,
        DEMO_SHAPE,
        [],
        member_id=7,
        to="ann@example.net",
        region="canterbury",
        today=date(2025, 12, 1),
        first_name="Ann",
    )
    confirm = system_mail(
        pages,
        settings,
        "confirm.txt",
        to="bo@example.net",
        network=CE_NET,
        confirm_url=f"{settings.base_url}/confirm/{'x' * 40}",
        days=7,
        greeting="Hello,",
    )
    return {"kent-welcome": welcome, "central-england-confirm": confirm}


def test_system_mails_golden_and_marketing_headers(tmp_path: Path) -> None:
    mails = system_mails(tmp_path)
    for name, msg in mails.items():
        check_golden(GOLDEN / "system" / f"{name}.txt", shown(msg))
    welcome, confirm = mails["kent-welcome"], mails["central-england-confirm"]
    # The welcome is marketing mail: a List-Id and a way out as campaign mail has (RFC 2369, 8058).
    assert welcome["List-Id"] == "Kent Network <kent-network.lists.example.org>"
    https, mailto = [u.strip().strip("<>") for u in welcome["List-Unsubscribe"].split(",")]
    assert https.startswith("https://kent.example.org/u/") and mailto.startswith("mailto:unsubscribe+")
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The confirmation is transactional: identity and privacy notice, no list headers.
    assert confirm["List-Unsubscribe"] is None and confirm["List-Id"] is None


# The digest's golden copies are made in the tests' one-network workspace, which has no postal
# address to print (its footer is the newsletter's, `_footer.*.j2`, checked here through theirs).
GOLDEN_FILES = sorted(
    p
    for p in GOLDEN.rglob("*")
    if p.suffix in (".txt", ".html") and p.parent.name not in ("hostile", "digest")
)


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_golden_mail_carries_privacy_name_and_address(path: Path) -> None:
    network = CE_NET if "central-england" in path.name else KENT_NET
    speaks_as(path.read_text(encoding="utf-8"), network, str(path.relative_to(REPO)))


def test_the_golden_files_cover_every_kind_of_mail() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in GOLDEN_FILES}
    assert {"system/kent-welcome.txt", "system/central-england-confirm.txt"} <= names
    assert len([n for n in names if n.startswith("2025-11-kent-network/")]) == 6  # 3 variants, 2 parts
    assert len([n for n in names if n.startswith("networks/")]) == 4


# ---------------------------------------------------------------------------------------------
# Every page and mail of a sign-up, over real HTTP


def mails_to(smtp: SmtpTestServer, address: str) -> list[EmailMessage]:
    out = []
    for received in smtp.messages:
        if address in received.rcpt_tos:
            msg = email.message_from_bytes(received.data, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
    return out


def text_of(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def outbox_message(root: Path, address: str) -> EmailMessage:
    for path in sorted((root / "outbox").rglob("*")):
        if path.is_file():
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address in str(msg["To"]):
                assert isinstance(msg, EmailMessage)
                return msg
    raise AssertionError(f"no message to {address} in the outbox")


@pytest.mark.slow
def test_every_page_and_mail_of_a_sign_up_speaks_as_its_network(
    demo: Demo, smtp_server: SmtpTestServer
) -> None:
    send_issue(demo, KENT)
    send_issue(demo, CE)
    address = "kent.only@example.net"
    with (
        live_server(app_for(demo, smtp_server), free_port()) as base,
        httpx.Client(base_url=base, follow_redirects=False, timeout=30) as http,
    ):

        def page(path: str, *networks: Network, **kwargs: Any) -> str:
            method = "POST" if "data" in kwargs else "GET"
            response = http.request(method, path, **kwargs)
            assert response.status_code == 200, (path, response.status_code, response.text[:500])
            for network in networks:
                speaks_as(response.text, network, f"{method} {path}")
            return response.text

        # The organisation's pages name every network; a network's own speak as it.
        for path in ("/", "/subscribe", "/archive/", "/calendar/"):
            page(path, KENT_NET, CE_NET)
        page(f"/archive/{KENT}/", KENT_NET)
        page(f"/archive/{CE}/", CE_NET)
        page("/subscribe/embed?network=kent", KENT_NET)
        assert "Central England" not in flat(page("/subscribe/embed?network=kent"))
        form = page("/subscribe?network=kent", KENT_NET)
        wording = consent_text(KENT_NET, demo.settings)
        assert KENT_NET.charity in wording and html.escape(wording, quote=False) in form

        # The sign-up, its confirmation mail (transactional: no list headers) and its pages.
        posted = {"email": address, "region": "canterbury", "consent": "yes", "csrf": csrf_of(form)}
        page("/subscribe?network=kent", KENT_NET, data=posted | {"form": "page"})
        [confirmation] = mails_to(smtp_server, address)
        speaks_as(text_of(confirmation), KENT_NET, "the confirmation mail")
        assert confirmation["List-Unsubscribe"] is None
        link = re.search(r"https?://\S+/confirm/\S+", text_of(confirmation))
        assert link
        confirm = page(path_of(link.group(0)), KENT_NET)
        page(path_of(link.group(0)), KENT_NET, data={"csrf": csrf_of(confirm)})

        # The welcome: marketing mail, so identity, privacy notice and List-Unsubscribe (One-Click).
        welcome = mails_to(smtp_server, address)[1]
        speaks_as(text_of(welcome), KENT_NET, "the welcome mail")
        assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "/u/" in welcome["List-Unsubscribe"] and "mailto:unsubscribe+" in welcome["List-Unsubscribe"]

        # Their preferences page: Kent ticked, Central England not (they signed up to Kent only).
        prefs_url = re.search(r"https?://\S+/p/\S+", text_of(welcome))
        assert prefs_url
        prefs = page(path_of(prefs_url.group(0)), KENT_NET)
        assert ticked(prefs) == {"kent"}

        # A Kent member's campaign message, its unsubscribe page and the page after it.
        kent_mail = outbox_message(demo.root, "kent.one@example.org")
        speaks_as(text_of(kent_mail), KENT_NET, "the Kent newsletter")
        unsub = path_of(kent_mail["List-Unsubscribe"].split(",")[0].strip().strip("<>"))
        leave = page(unsub, KENT_NET)
        page(unsub, KENT_NET, data={"csrf": csrf_of(leave)})

        # The welcome's One-Click works like a campaign's (RFC 8058: no cookie, no second step).
        one_click = path_of(welcome["List-Unsubscribe"].split(",")[0].strip().strip("<>"))
        assert httpx.post(base + one_click, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    # The consent log: the wording (naming Kent and its charity), its version, network and form.
    with demo.db.session() as s:
        member = s.scalar(select(Member).where(Member.email == address))
        assert member is not None
        events = s.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member.id)).all()
    subscribe = next(e for e in events if e.action == "subscribe")
    assert subscribe.wording == wording
    assert f"network kent; form page:kent; wording {wording_version(wording)}" in subscribe.detail
    assert (subscribe.network, subscribe.form, subscribe.wording_version) == (
        "kent",
        "page:kent",
        wording_version(wording),
    )
    assert ("leave-network", "signup") in {(e.action, e.source) for e in events}
    assert events[-1].action == "unsubscribe" and events[-1].source == "one-click"


def ticked(page: str) -> set[str]:
    """The networks the preferences page shows ticked."""
    return set(re.findall(r'name="networks" value="([a-z-]+)" checked', page))


# ---------------------------------------------------------------------------------------------
# A Kent-only sign-up is in Kent's mail only (the cause: a sign-up recorded no network, and the
# page ticked every network the member had not left)


def test_a_kent_only_sign_up_is_not_in_central_englands_mail(demo: Demo) -> None:
    now = consent.SignupData("kent@example.net", "", "canterbury", "", (), "", _now())
    data = consent.for_network(now, KENT_NET, demo.settings)
    with demo.db.session() as s:
        done = consent.confirm_signup(s, data, network="kent", others=["kent", "central-england"])
    with demo.db.session() as s:
        rows = s.execute(select(NetworkLeave.network, NetworkLeave.source)).all()
        view = consent.preferences_of(s, done.member_id)
    assert [tuple(r) for r in rows] == [("central-england", "signup")]
    assert view is not None and view.networks_left == frozenset({"central-england"})
    # Ticking Central England on their page rejoins it: the choice is theirs.
    with demo.db.session() as s:
        changes = consent.save_networks(
            s, done.member_id, {"kent", "central-england"}, ["kent", "central-england"], campaign_id=None
        )
    assert changes == ["rejoined network central-england"]
    # A member already getting mail who confirms a sign-up keeps the networks they had.
    with demo.db.session() as s:
        consent.confirm_signup(s, data, network="kent", others=["central-england"])
        assert consent.networks_left(s, done.member_id) == []


def _now() -> Any:
    from mailer.models import utcnow

    return utcnow().replace(microsecond=0)


def test_a_sign_up_token_carries_its_network_and_form(tmp_path: Path) -> None:
    settings = golden_settings(tmp_path)
    data = consent.SignupData("a@example.net", "", "kent", "", (), "words", _now(), "kent", "embed:kent")
    from mailer.web.confirmation import unseal

    assert unseal(seal(data, keys=settings.secrets), keys=settings.secrets) == data
    assert consent.form_id("embed", KENT_NET) == "embed:kent"
    assert consent.form_id("<script>", None) == "page"


# ---------------------------------------------------------------------------------------------
# The privacy notice as a setting: readiness, doctor's checks


def checks(settings: Settings, shape: Shape) -> dict[str, str]:
    return {f.check: f.severity for f in settings_findings(settings, shape) if f.check == "privacy_url"}


def test_readiness_requires_an_https_privacy_notice_outside_a_demo(tmp_path: Path) -> None:
    base = replace(golden_settings(tmp_path), demo=False)
    empty = Shape()
    assert checks(base, empty) == {"privacy_url": "error"}
    with pytest.raises(NotReady) as refused:
        require_ready(base, empty)
    assert "has no privacy notice" in str(refused.value)
    assert checks(replace(base, privacy_url="http://kent.example.org/privacy"), empty) == {
        "privacy_url": "error"
    }
    assert checks(replace(base, privacy_url="https://kent.example.org/privacy"), empty) == {}
    assert checks(replace(base, privacy_url="/privacy"), empty) == {}  # on the https web app
    # A demo may go without, or with http: a warning there.
    assert checks(replace(base, demo=True), empty) == {"privacy_url": "warning"}
    local = replace(base, demo=True, base_url="http://127.0.0.1:8000", privacy_url="/privacy")
    assert checks(local, empty) == {"privacy_url": "warning"}
    # The network's own wins over mailer.toml's.
    shape = DEMO_SHAPE
    assert privacy_url(KENT_NET, base) == "https://kent.example.org/privacy/kent"
    assert checks(replace(base, privacy_url="javascript:alert(1)"), shape) == {}
