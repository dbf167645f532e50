"""The members' forms against posts of the wrong shape, on SQLite and PostgreSQL.

The sign-up (``/subscribe``) and preferences (``/p/{token}``) forms are read by their models
(``consent.SignupForm``, ``consent.PreferencesForm``) from what ``mailer.web.forms.posted`` makes of
the post: a field given many times, a checkbox field given a hundred values, fields missing, a
field of another form. ``http/form-values.txt`` attacks the values of one field at a time; these
attack the shape. What must happen: a page below 500; a refused post answered 400 with a message
by field, nothing mailed and nothing changed; the one well-formed post taken.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from support.hashes import address_hash

from mailer import tokens
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import ConsentEvent, Member, Region
from mailer.settings import Settings
from mailer.web import create_app

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

Fields = list[tuple[str, str]]

SIGNUP: Fields = [
    ("name", "Quinn Example"),
    ("email", "quinn@example.org"),
    ("postcode", "ME14 1HH"),
    ("interests", "refugees"),
    ("consent", "yes"),
    ("website", ""),
]

# (what it attacks, the fields posted besides the CSRF value, the fields a 400 must name)
SIGNUP_CASES: list[tuple[str, Fields, set[str]]] = [
    ("nothing posted", [], {"email", "region", "consent"}),
    (
        "every field twice, the last one wrong",
        [*SIGNUP, ("email", "nope"), ("consent", "no")],
        {"email", "consent"},
    ),
    ("ninety interests, all unknown", [*SIGNUP, *[("interests", f"i{n}") for n in range(90)]], {"interests"}),
    ("the consent box ticked as a list", [*SIGNUP[:4], ("consent", "no"), ("consent", "")], {"consent"}),
    (
        "a region of nowhere",
        [*SIGNUP[:2], ("region", "../kent"), ("consent", "yes")],
        {"region"},
    ),
    (
        "the preferences form's fields",
        [("networks_shown", "1"), ("networks", "kent")],
        {"email", "region", "consent"},
    ),
]

PREFERENCES_CASES: list[tuple[str, Fields, set[str]]] = [
    ("the name twice, the last one over the limit", [("name", "Pat"), ("name", "P" * 300)], {"name"}),
    (
        "ninety interests, one unknown",
        [*[("interests", "refugees")] * 89, ("interests", "x/../y")],
        {"interests"},
    ),
    ("the region as a list", [("region", "kent"), ("region", "atlantis")], {"region"}),
    (
        "networks without their fieldset",
        [("networks", "kent"), ("networks", "\x00")],
        set(),
    ),
    ("the sign-up form's fields", [("email", "x@example.org"), ("consent", "yes")], set()),
]


# How a page shows each field's message: beside the field, or (interests) in the fieldset.
SHOWN = {
    "email": 'id="email-error"',
    "name": 'id="name-error"',
    "region": 'id="region-error"',
    "consent": 'id="consent-error"',
    "interests": "Choose interests from the list.",
}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


@pytest.fixture
def sent() -> list[EmailMessage]:
    return []


@pytest.fixture
def client(settings: Settings, db: Database, shape: Shape, sent: list[EmailMessage]) -> Iterator[TestClient]:
    async def send_mail(message: EmailMessage) -> None:
        sent.append(message)

    app = create_app(settings, shape=shape, database=db, send_mail=send_mail)
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, path: str, fields: Fields) -> Any:
    """POST ``fields`` urlencoded, in order, repeated names included."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    return client.post(path, content=urlencode(fields), headers=headers)


def log_lines(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(ConsentEvent)) or 0)


def test_sign_up_posts_of_the_wrong_shape(client: TestClient, sent: list[EmailMessage]) -> None:
    csrf = csrf_of(client.get("/subscribe").text)
    for what, fields, named in SIGNUP_CASES:
        response = post(client, "/subscribe", [("csrf", csrf), *fields])
        assert response.status_code == 400, what
        assert {name for name, marker in SHOWN.items() if marker in response.text} == named, what
    assert sent == []
    taken = post(client, "/subscribe", [("csrf", csrf), *SIGNUP])
    assert taken.status_code == 200 and [m["To"] for m in sent] == ["quinn@example.org"]


def test_preferences_posts_of_the_wrong_shape(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        region = s.scalar(select(Region.id).where(Region.slug == "kent"))
        member = Member(
            email="pat@example.org", address_hash=address_hash("pat@example.org"), region_id=region
        )
        s.add(member)
        s.flush()
        member_id = member.id
    path = f"/p/{tokens.sign('preferences', member_id, keys=settings.secrets)}"
    csrf = csrf_of(client.get(path).text)
    for what, fields, named in PREFERENCES_CASES:
        before = log_lines(db)
        response = post(client, path, [("csrf", csrf), *fields])
        assert response.status_code == (400 if named else 200), what
        assert {name for name, marker in SHOWN.items() if marker in response.text} == named, what
        if named:
            assert log_lines(db) == before, what
    with db.session() as s:
        row = s.get(Member, member_id)
        assert row is not None and row.name == "" and row.region_id is None  # the last two posts cleared them
