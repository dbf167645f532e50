"""Answers to events against hostile requests (docs/events.md): a forged token or another member's,
a token for one campaign's event used on another's, a mail scanner's GET, odd addresses on the
public page (http/rsvp-emails.txt), a replayed confirmation link. Nothing is recorded that the
request could not prove; nothing answers with a 5xx."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from support.desk import BASE, TestClient
from support.events import GROUP_EVENT, SLUG, at_issue_time, deliver, sent_with_events

from mailer import tokens
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import Rsvp
from mailer.settings import Settings
from mailer.web import create_app

HERE = Path(__file__).resolve().parent / "http"
OTHER_KEY = "Ot9hErKeyZq3Wv7Lp2Xn4Bm8Rc6Jd1Hs5Fy0Ga_-eTuIoPkLjHgFdSaZxCvB"
SCANNER = {"User-Agent": "Mozilla/5.0 (compatible; SafeLinks link scanner)"}


def client_for(settings: Settings, db: Database, shape: Shape, smtp: Any) -> TestClient:
    from dataclasses import replace

    app = create_app(replace(settings, relay=smtp.url), shape=shape, database=db, clock=at_issue_time())
    return TestClient(app, base_url=BASE, raise_server_exceptions=False, follow_redirects=False)


def answers(db: Database) -> list[tuple[int | None, str | None, str]]:
    with db.session() as s:
        return [(r.member_id, r.email, r.answer) for r in s.scalars(select(Rsvp).order_by(Rsvp.id))]


def test_forged_foreign_and_misdirected_tokens_record_nothing(
    settings: Settings, db: Database, shape: Shape, workspace: Path, smtp_server: Any
) -> None:
    kent = sent_with_events(db, settings, shape, workspace)
    other = sent_with_events(db, settings, shape, workspace, slug="2025-11-kent-again")
    member = deliver(db, kent, "pat@example.org")
    stranger = deliver(db, other, "sam@example.org")  # sent the other campaign only
    keys = settings.secrets
    good = tokens.sign("rsvp", member, keys=keys, campaign=kent)
    cases = {
        "signed with a key not ours": tokens.sign("rsvp", member, keys=[OTHER_KEY], campaign=kent),
        "tampered": good[:10] + ("a" if good[10] != "a" else "b") + good[11:],
        "another purpose (the member's unsubscribe token)": tokens.sign(
            "unsubscribe", member, keys=keys, campaign=kent
        ),
        "a member this campaign was never sent to": tokens.sign("rsvp", stranger, keys=keys, campaign=kent),
        "no campaign in it": tokens.sign("rsvp", member, keys=keys),
        "a campaign that does not exist": tokens.sign("rsvp", member, keys=keys, campaign=999_999),
    }
    with client_for(settings, db, shape, smtp_server) as client:
        for why, token in cases.items():
            path = f"/rsvp/{GROUP_EVENT}/{token}"
            assert client.get(path).status_code == 400, why
            response = client.post(path, data={"answer": "yes"})
            assert response.status_code == 400, why
            assert token not in response.text, why
        # One campaign's token on the other campaign's event (same entry, another issue).
        assert (
            client.post(f"/rsvp/2025-11-kent-again-calendar-1/{good}", data={"answer": "yes"}).status_code
            == 400
        )
        assert client.post(f"/rsvp/{GROUP_EVENT}-nope/{good}", data={"answer": "yes"}).status_code == 400
        assert client.post(f"/rsvp/{GROUP_EVENT}/{good}", data={"answer": "maybe"}).status_code == 400
        assert answers(db) == []
        assert client.post(f"/rsvp/{GROUP_EVENT}/{good}", data={"answer": "yes"}).status_code == 200
    assert answers(db) == [(member, None, "yes")]


def test_a_scanners_get_and_head_record_nothing(
    settings: Settings, db: Database, shape: Shape, workspace: Path, smtp_server: Any
) -> None:
    kent = sent_with_events(db, settings, shape, workspace)
    member = deliver(db, kent, "pat@example.org")
    path = f"/rsvp/{GROUP_EVENT}/{tokens.sign('rsvp', member, keys=settings.secrets, campaign=kent)}"
    with client_for(settings, db, shape, smtp_server) as scanner:
        for _ in range(3):
            assert scanner.get(path, headers=SCANNER).status_code == 200
            assert scanner.head(path, headers=SCANNER).status_code == 200
            assert scanner.get(f"/events/{GROUP_EVENT}", headers=SCANNER).status_code == 200
        assert scanner.get(f"/rsvp/{GROUP_EVENT}/").status_code == 303  # the archive's link: to the page
    assert answers(db) == []


def odd_addresses() -> list[tuple[str, str]]:
    out, attacks = [], ""
    for line in (HERE / "rsvp-emails.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("# attacks:"):
            attacks = line.removeprefix("# attacks:").strip()
        elif line.strip() and not line.startswith("#"):
            value = json.loads(line)
            if isinstance(value, dict):
                value = value.get("prefix", "") + value["repeat"] * value["times"] + value.get("suffix", "")
            out.append((attacks, value))
    assert len(out) >= 8
    return out


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_odd_addresses_on_the_public_page_are_refused_and_mail_nobody(
    settings: Settings, db: Database, shape: Shape, workspace: Path, smtp_server: Any
) -> None:
    sent_with_events(db, settings, shape, workspace)
    page = f"/events/{GROUP_EVENT}"
    with client_for(settings, db, shape, smtp_server) as client:
        csrf = csrf_of(client.get(page).text)
        for attacks, address in odd_addresses():
            form = {"csrf": csrf, "name": "Pat", "email": address, "answer": "yes"}
            response = client.post(page, data=form)
            assert response.status_code == 400, attacks
            assert "<script>" not in response.text, attacks
        too_long_name = {"csrf": csrf, "name": "x" * 5000, "email": "pat@example.org", "answer": "yes"}
        assert client.post(page, data=too_long_name).status_code == 400
        link_in_name = {
            "csrf": csrf,
            "name": "Go to https://evil.example",
            "email": "p@example.org",
            "answer": "yes",
        }
        assert client.post(page, data=link_in_name).status_code == 400
        no_csrf = {"name": "Pat", "email": "pat@example.org", "answer": "yes"}
        assert client.post(page, data=no_csrf).status_code == 403
    assert smtp_server.messages == [] and answers(db) == []


def test_a_replayed_confirmation_link_changes_nothing(
    settings: Settings, db: Database, shape: Shape, workspace: Path, smtp_server: Any
) -> None:
    sent_with_events(db, settings, shape, workspace)
    page = f"/events/{GROUP_EVENT}"
    with client_for(settings, db, shape, smtp_server) as client:
        form = {"csrf": csrf_of(client.get(page).text), "name": "Guest", "email": "guest@example.net"}
        assert client.post(page, data={**form, "answer": "yes"}).status_code == 200
        assert answers(db) == [(None, "guest@example.net", "yes")]  # stored, not yet counted
        mail = smtp_server.messages[-1].data.decode("utf-8", "replace")
        link = re.search(r"(/events/[a-z0-9-]+/confirm/[a-z2-7]+)", mail.replace("=\r\n", ""))
        assert link, mail
        path = link.group(1)
        shown = client.get(path)
        assert shown.status_code == 200 and "Confirm" in shown.text
        confirm = {"csrf": csrf_of(shown.text)}
        assert client.post(path, data=confirm).status_code == 200
        replayed = client.post(path, data=confirm)
        assert replayed.status_code == 409 and "used already" in replayed.text
        # Another link for the same address: a later "no" wins; the first link replayed after it
        # does not turn it back.
        client.post(page, data={**form, "answer": "no"})
        later = re.findall(
            r"(/events/[a-z0-9-]+/confirm/[a-z2-7]+)",
            smtp_server.messages[-1].data.decode().replace("=\r\n", ""),
        )
        assert later and later[0] != path
        assert client.post(later[0], data={"csrf": csrf_of(client.get(later[0]).text)}).status_code == 200
        assert client.post(path, data=confirm).status_code == 409
        # A confirmation link from another key, or out of date: the plain bad-link page.
        forged = tokens.sign("rsvp-confirm", 1, keys=[OTHER_KEY], campaign=1)
        assert client.get(f"/events/{GROUP_EVENT}/confirm/{forged}").status_code == 400
        old = tokens.sign(
            "rsvp-confirm", 1, keys=settings.secrets, campaign=1, now=at_issue_time()() - timedelta(days=30)
        )
        assert client.get(f"/events/{GROUP_EVENT}/confirm/{old}").status_code in (400, 410)
    assert answers(db) == [(None, "guest@example.net", "no")]
    assert SLUG in GROUP_EVENT
