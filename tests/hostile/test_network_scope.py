"""Hostile requests against the unsubscribe scope, on SQLite and PostgreSQL.

What each case attacks, and what must happen instead:

- **Moving the scope with a form field**: a one-click POST (or the page's button) for a Kent message
  that also says ``network=central-england``, ``campaign=<the Central England campaign>``,
  ``scope=all``, in the body, the query string or a header. The scope comes only from the signed
  token's campaign: the member leaves Kent, nothing else.
- **Leaving all mail without the page**: ``POST /u/{token}/all`` with the one-click body and no
  CSRF value, or a value from another page. 403; nothing changes.
- **Tampered and foreign tokens**: a token for another campaign made with another key, a tampered
  one, a preferences token at ``/u/``. 400; nothing changes.
- **The preference form without CSRF** (a cross-site post unticking every network): 403; nothing.
- **Networks that do not exist** in the preference form, and a form without the Networks fieldset
  (one from before, or a forged one): unknown slugs are ignored; no network is left by omission.
- **An import that would rejoin**: a member who left Kent is imported again; they stay out of Kent.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.consent import (
    BASE,
    CE_ISSUE,
    KENT_ALERT,
    MEMBER,
    Demo,
    campaign_id,
    csrf_of,
    ensure_network,
    leaves,
    log,
    member_id,
    messages_to,
    open_demo,
    prefs_path,
    suppressed,
    unsub_path,
    unsubscribe_urls,
)
from support.smtp_server import SmtpTestServer

from mailer import tokens
from mailer.audience.importer import Options, import_csv
from mailer.models import ConsentEvent, NetworkLeave

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def demo(tmp_path: Path, database_url: str, smtp_server: SmtpTestServer) -> Iterator[Demo]:
    with open_demo(tmp_path, database_url, smtp_server) as made:
        yield made


@pytest.fixture
def client(demo: Demo) -> Iterator[TestClient]:
    with TestClient(demo.app, base_url=BASE) as c:
        yield c


OTHER_KEY = "Ot9hErKeyZq3Wv7Lp2Xn4Bm8Rc6Jd1Hs5Fy0Ga_-eTuIoPkLjHgFdSaZxCvB"


def both_sent(demo: Demo) -> tuple[int, int, str]:
    """The member got the Central England newsletter and the Kent alert: (ce id, kent id, the Kent
    message's unsubscribe path)."""
    ce = demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    kent = demo.send(KENT_ALERT, segment="region:birmingham")
    ensure_network(demo.db, KENT_ALERT, "kent")
    got = messages_to(demo.smtp, MEMBER)
    assert len(got) == 2
    paths = [unsubscribe_urls(m)[0] for m in got]
    [path] = [p for p in paths if token_campaign(demo, p) == kent]
    return ce, kent, path


def token_campaign(demo: Demo, path: str) -> int | None:
    return tokens.verify(path.removeprefix("/u/"), "unsubscribe", keys=demo.settings.secrets).campaign


def state(demo: Demo) -> tuple[object, ...]:
    with demo.db.session() as s:
        events = s.scalar(select(func.count()).select_from(ConsentEvent))
    return (leaves(demo.db), events, suppressed(demo.db) is not None)


def test_a_kent_token_cannot_leave_central_england(demo: Demo, client: TestClient) -> None:
    member = member_id(demo.db)
    ce, _kent, path = both_sent(demo)
    forged = {
        "List-Unsubscribe": "One-Click",
        "network": "central-england",
        "networks": "central-england",
        "campaign": str(ce),
        "scope": "all",
    }
    with TestClient(demo.app, base_url=BASE) as provider:
        response = provider.post(
            f"{path}?network=central-england&campaign={ce}&scope=all",
            data=forged,
            headers={"X-Network": "central-england", "List-Id": "central-england.lists.example.org"},
        )
    assert response.status_code == 200
    assert leaves(demo.db) == [(member, "kent", "one-click", KENT_ALERT)]
    assert suppressed(demo.db) is None
    # The page's button with the same forged fields: Kent again, nothing more.
    page = client.get(path)
    assert "Stop emails from Kent Network" in page.text
    client.post(path, data={**forged, "List-Unsubscribe": "", "csrf": csrf_of(page.text)})
    assert {row[1] for row in leaves(demo.db)} == {"kent"} and suppressed(demo.db) is None


def test_leaving_all_mail_needs_the_pages_csrf(demo: Demo, client: TestClient) -> None:
    _ce, _kent, path = both_sent(demo)
    other = unsub_path(demo.settings, member_id(demo.db, "soren.clarke.1@example.org"), None)
    before = state(demo)
    # The one-click body is no licence to leave all mail.
    with TestClient(demo.app, base_url=BASE) as provider:
        assert provider.post(f"{path}/all", data={"List-Unsubscribe": "One-Click"}).status_code == 403
    assert client.post(f"{path}/all", data={"csrf": "0" * 32}).status_code == 403
    other_page = client.get(other)
    assert client.post(f"{path}/all", data={"csrf": csrf_of(other_page.text)}).status_code == 403
    page = client.get(path)
    with TestClient(demo.app, base_url=BASE) as stranger:  # the value without its cookie
        assert stranger.post(f"{path}/all", data={"csrf": csrf_of(page.text)}).status_code == 403
    assert state(demo) == before


def test_tampered_and_foreign_tokens_change_nothing(demo: Demo, client: TestClient) -> None:
    member = member_id(demo.db)
    ce, _kent, path = both_sent(demo)
    token = path.removeprefix("/u/")
    middle = len(token) // 2
    bad = [
        tokens.sign("unsubscribe", member, keys=[OTHER_KEY], campaign=ce),  # another campaign, another key
        token[:middle] + ("a" if token[middle] != "a" else "b") + token[middle + 1 :],
        token[:-3],
        tokens.sign("preferences", member, keys=demo.settings.secrets, campaign=ce),
    ]
    before = state(demo)
    for value in bad:
        for suffix in ("", "/all"):
            response = client.post(f"/u/{value}{suffix}", data={"List-Unsubscribe": "One-Click"})
            assert response.status_code == 400, (value, suffix)
    assert state(demo) == before


def test_preference_post_without_csrf_changes_nothing(demo: Demo, client: TestClient) -> None:
    member = member_id(demo.db)
    ce = demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    prefs = prefs_path(demo.settings, member, ce)
    form = {"name": "Bo Both", "region": "birmingham", "interests": "mp-advocacy", "networks_shown": "1"}
    before = state(demo)
    assert client.post(prefs, data=form).status_code == 403  # every network unticked, cross-site
    assert client.post(prefs, data={**form, "csrf": "0" * 32}).status_code == 403
    page = client.get(prefs)
    with TestClient(demo.app, base_url=BASE) as stranger:
        assert stranger.post(prefs, data={**form, "csrf": csrf_of(page.text)}).status_code == 403
    assert state(demo) == before


def test_unknown_networks_and_a_missing_fieldset_leave_nothing(demo: Demo, client: TestClient) -> None:
    member = member_id(demo.db)
    ce = campaign_id_or_send(demo)
    prefs = prefs_path(demo.settings, member, ce)
    page = client.get(prefs)
    form = {
        "csrf": csrf_of(page.text),
        "name": "Bo Both",
        "region": "birmingham",
        "interests": ["mp-advocacy", "refugees"],
    }
    before = state(demo)
    # No Networks fieldset in the form (an old page, or a forged post): no network is left.
    assert client.post(prefs, data=form).status_code == 200
    assert client.post(prefs, data={**form, "networks": "kent"}).status_code == 200
    # Unknown networks are ignored; the known ones, both ticked, leave nothing.
    hostile = ["evil", "../kent", "kent\x00", "KENT", "x" * 300, "kent", "central-england"]
    response = client.post(prefs, data={**form, "networks_shown": "1", "networks": hostile})
    assert response.status_code == 200
    assert state(demo) == before
    with demo.db.session() as s:
        assert s.scalar(select(func.count()).select_from(NetworkLeave)) == 0


def campaign_id_or_send(demo: Demo) -> int:
    demo.send(CE_ISSUE, segment="interest:mp-advocacy")
    ensure_network(demo.db, CE_ISSUE, "central-england")
    return campaign_id(demo.db, CE_ISSUE)


def test_an_import_never_rejoins_a_network(demo: Demo, client: TestClient, tmp_path: Path) -> None:
    member = member_id(demo.db)
    _ce, _kent, path = both_sent(demo)
    client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert leaves(demo.db) == [(member, "kent", "one-click", KENT_ALERT)]
    again = tmp_path / "again.csv"
    again.write_text(
        "email,name,region,interests,consent_source\n"
        f"{MEMBER},Bo Both,birmingham,mp-advocacy;refugees,signup\n",
        encoding="utf-8",
    )
    with demo.db.session() as s:
        import_csv(s, again, demo.shape, options=Options(consent="test members agreed"))
    assert leaves(demo.db) == [(member, "kent", "one-click", KENT_ALERT)]
    assert "join-network" not in [e[0] for e in log(demo.db, member)]
