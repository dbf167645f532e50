"""Hostile ``?network=`` values: the archive, its feed, the sign-up form (GET and POST)
and the embed page answer a network that is not ours with a plain 404 (a control character: the
app's 400), never a 5xx, never echoing the value, and change nothing: on the demo workspace (two
networks) and on one with a single network, on SQLite and PostgreSQL.

(``http/paths.txt`` holds a few of these too, replayed by ``test_http.py`` with every other path.)
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import TEST_SECRET
from sqlalchemy import func, select

from mailer.audience.shape import load_shape, sync
from mailer.db import open_database
from mailer.models import ConsentEvent, Member
from mailer.settings import load
from mailer.web import create_app
from mailer.workspace import init_workspace

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROUTES = [
    ("GET", "/archive/"),
    ("GET", "/archive/feed.atom"),
    ("GET", "/subscribe"),
    ("POST", "/subscribe"),
    ("GET", "/subscribe/embed"),
]

# (what it attacks, the raw query value as sent)
HOSTILE = [
    ("a slug that is not ours", "wessex-not-ours"),
    ("a near miss of a real slug", "Kent"),
    ("a real slug with trailing space", "kent%20"),
    ("markup", "%3Cscript%3Ealert('net')%3C%2Fscript%3E"),
    ("SQL", "kent'%20OR%20'1'%3D'1"),
    ("traversal", "..%2F..%2Fmailer.toml"),
    ("a NUL byte", "kent%00"),
    ("CR LF header injection", "kent%0D%0ASet-Cookie:%20x%3D1"),
    ("non-UTF-8 escapes", "%ff%fe"),
    ("unicode look-alike", "k%D0%B5nt"),
    ("a huge value", "central-england-" * 200),
    ("the default network of a workspace that declares others", "kent-network"),
    ("repeated, the last one hostile", "kent&network=wessex-not-ours"),
]


@pytest.fixture(params=["demo", "single"])
def app(request: pytest.FixtureRequest, tmp_path: Path, database_url: str, smtp_server: Any) -> Any:
    root = tmp_path / "ws"
    init_workspace(root, demo=request.param == "demo")
    settings = load(root, env={"MAILER_DATABASE_URL": database_url, "MAILER_SECRET": TEST_SECRET})
    shape = load_shape(root / "lists")
    db = open_database(settings)
    with db.session() as session:
        sync(session, shape)
    yield create_app(replace(settings, relay=smtp_server.url), shape=shape, database=db), db, request.param
    db.dispose()


def test_hostile_network_values_get_a_plain_page(app: Any, smtp_server: Any) -> None:
    asgi, db, kind = app
    failures = []
    with TestClient(asgi, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as client:
        for what, value in HOSTILE:
            if kind == "single" and value == "kent-network":
                continue  # there, it is the one network's slug
            for method, path in ROUTES:
                form = {"email": "hostile@example.org", "region": "kent", "consent": "yes"}
                response = client.request(
                    method, f"{path}?network={value}", data=form if method == "POST" else None
                )
                expected = {400} if any(c in value for c in ("%00", "%0D")) else {404}
                if response.status_code not in expected:
                    failures.append(f"{method} {path} [{what}]: {response.status_code}")
                shown = value.split("&")[-1]
                if len(shown) > 4 and (shown in response.text or quote(shown) in response.text):
                    failures.append(f"{method} {path} [{what}]: the value is echoed back")
    assert not failures, "\n".join(failures)
    assert smtp_server.messages == []
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Member)) == 0
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
