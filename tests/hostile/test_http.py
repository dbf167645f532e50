"""The web app against hostile requests: every route of ``app.routes``, on SQLite and PostgreSQL.

The cases live in ``http/`` (see its README): path values (tampered, expired, truncated and foreign
tokens, NUL, CR LF, traversal, huge values), form values, bodies (JSON to form routes, broken
multipart, bytes that are not UTF-8), Host headers, other headers and whole paths. Each is sent
through httpx to the real ASGI app (Starlette's TestClient, with server errors returned as 500s
rather than raised), with a real SMTP server behind it, and every answer must be a page below 500.
Besides that: a bad token is never echoed back, no redirect leaves our host, and nobody the
requests could not prove to be is changed.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Route
from support.hashes import address_hash

from mailer import events, tokens
from mailer.audience.addresses import normalise
from mailer.audience.consent import SignupData
from mailer.audience.shape import Shape
from mailer.audience.suppression import is_suppressed
from mailer.compose import compose
from mailer.db import Database
from mailer.issue import load_issue
from mailer.issue.calendar_text import event_uid
from mailer.models import Campaign, Interest, Member, Region, Variant
from mailer.render import Renderer
from mailer.settings import Settings
from mailer.web import confirmation, create_app
from mailer.web.context import Limits

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HERE = Path(__file__).resolve().parent / "http"
REPO = HERE.parent.parent.parent
SLUG = "2025-11-kent-network"
SEED = REPO / "campaigns" / SLUG / "issue.yaml"
BASE = "http://127.0.0.1:8000"
ADMIN_PASSWORD = "fuzz-admin-password-5Qx"
OTHER_KEY = "Ot9hErKeyZq3Wv7Lp2Xn4Bm8Rc6Jd1Hs5Fy0Ga_-eTuIoPkLjHgFdSaZxCvB"
WRONG_METHODS = ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW")


# ---------------------------------------------------------------------------------------------
# The cases


@dataclass(frozen=True)
class Case:
    file: str
    attacks: str
    value: Any

    def __str__(self) -> str:
        return f"{self.file}: {self.attacks}"


def expand(value: Any) -> Any:
    """``{"prefix", "repeat", "times", "suffix"}`` as the string it stands for, everywhere in
    ``value``."""
    if isinstance(value, dict):
        if "repeat" in value:
            return value.get("prefix", "") + value["repeat"] * value["times"] + value.get("suffix", "")
        return {k: expand(v) for k, v in value.items()}
    return value


def load_cases(name: str) -> list[Case]:
    cases: list[Case] = []
    attacks, times = "", 1
    for number, line in enumerate((HERE / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith("# attacks:"):
                attacks = line.removeprefix("# attacks:").strip()
            elif line.startswith("# times:"):
                times = int(line.removeprefix("# times:"))
            continue
        assert attacks, f"{name}:{number}: a case needs an '# attacks:' line before its value"
        value = expand(json.loads(line))
        if isinstance(value, str):
            value *= times
        cases.append(Case(name, attacks, value))
        attacks, times = "", 1
    assert cases, f"{name} holds no cases"
    return cases


def test_every_case_file_names_what_it_attacks() -> None:
    names = sorted(p.name for p in HERE.glob("*.txt"))
    assert names == [
        "bodies.txt",
        "form-values.txt",
        "headers.txt",
        "hosts.txt",
        "path-values.txt",
        "paths.txt",
        "rsvp-emails.txt",
    ]
    for name in names:
        for case in load_cases(name):
            assert len(case.attacks) > 8, case


# ---------------------------------------------------------------------------------------------
# The site: members, a sent campaign with a variant and an image, the app


@dataclass
class Site:
    app: Starlette
    settings: Settings
    db: Database
    members: dict[str, int]
    variant_key: str
    uid: str
    signup: SignupData
    smtp: Any


def add_member(db: Database, address: str, name: str) -> int:
    with db.session() as s:
        normal = normalise(address)
        member = Member(
            email=normal,
            address_hash=address_hash(normal),
            name=name,
            region_id=s.scalar(select(Region.id).where(Region.slug == "kent")),
            interests=list(s.scalars(select(Interest).where(Interest.slug == "refugees"))),
        )
        s.add(member)
        s.flush()
        return member.id


@pytest.fixture
def site(settings: Settings, db: Database, shape: Shape, smtp_server: Any) -> Site:
    configured = replace(settings, relay=smtp_server.url, admin_password=ADMIN_PASSWORD)
    members = {
        role: add_member(db, f"{role}@example.org", f"{role.title()} Example")
        for role in ("unsubscribe", "preferences", "leave", "renew", "bystander")
    }
    loaded = load_issue(SEED, shape)
    variant = compose(loaded.issue, shape, "canterbury", frozenset({"refugees"}))
    html = Renderer(configured).render(variant, loaded).html
    with db.session() as s:
        campaign = Campaign(
            slug=SLUG,
            kind="newsletter",
            title="Kent Network Newsletter: November 2025",
            subject="Kent Network newsletter: November 2025",
            audience="region:kent",
            issue_date="2025-11-17",
            source=SEED.read_text(encoding="utf-8"),
            status="sent",
            started_at=datetime(2025, 11, 17, 8, 0, tzinfo=UTC),
            finished_at=datetime(2025, 11, 17, 8, 30, tzinfo=UTC),
        )
        s.add(campaign)
        s.flush()
        s.add(Variant(campaign_id=campaign.id, key=variant.key, label="x", subject="s", text="t", html=html))
    folder = configured.path("campaigns", SLUG)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (folder / "issue.yaml").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    with db.session() as s:  # the events answered on /rsvp/ and /events/ (docs/events.md)
        events.sync_events(s, loaded.issue, SLUG, datetime.now(UTC), settings=configured)
    first_entry = next(iter(variant.calendar), None)
    uid = event_uid(SLUG, first_entry.key, configured.list_domain).split("@")[0] if first_entry else "x"
    limits = Limits(signups_per_client=1_000_000, mails_per_address=3, preference_mails_per_member=3)
    app = create_app(configured, shape=shape, database=db, limits=limits)
    signup = SignupData("newcomer@example.org", "", "kent", "", ("refugees",), "wording", datetime.now(UTC))
    return Site(app, configured, db, members, variant.key, uid, signup, smtp_server)


# ---------------------------------------------------------------------------------------------
# Tokens made to order


def purpose_of(route_path: str) -> str | None:
    for prefix, purpose in (("/u/", "unsubscribe"), ("/p/", "preferences"), ("/confirm/", "confirm")):
        if route_path.startswith(prefix):
            return purpose
    if route_path.startswith("/rsvp/"):
        return "rsvp"
    if route_path.startswith("/events/"):
        return "rsvp-confirm"
    return None


def member_of(route_path: str) -> str:
    if route_path.endswith("/leave"):
        return "leave"
    if route_path.endswith("/renew"):
        return "renew"
    return "preferences" if route_path.startswith("/p/") else "unsubscribe"


def tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("a" if token[middle] != "a" else "b") + token[middle + 1 :]


def recipe(site: Site, route_path: str, name: str) -> str:
    """The token ``name`` ({valid}, {expired}, …) for the route's purpose and member."""
    keys = site.settings.secrets
    now = datetime.now(UTC)
    purpose = purpose_of(route_path) or "unsubscribe"
    if purpose == "confirm":
        data = site.signup
        made = {
            "valid": lambda: confirmation.seal(data, keys=keys),
            "expired": lambda: confirmation.seal(replace(data, issued_at=now - timedelta(days=8)), keys=keys),
            "other-key": lambda: confirmation.seal(data, keys=[OTHER_KEY]),
            "future": lambda: confirmation.seal(replace(data, issued_at=now + timedelta(days=1)), keys=keys),
            "other-purpose": lambda: tokens.sign("unsubscribe", 1, keys=keys),
            "huge-member": lambda: confirmation.seal(
                replace(data, email="x" * 300 + "@example.org"), keys=keys
            ),
            "erased": lambda: confirmation.seal(
                replace(data, region="atlantis", interests=("nope",)), keys=keys
            ),
        }
    else:
        member = site.members[member_of(route_path)]
        other = "preferences" if purpose == "unsubscribe" else "unsubscribe"
        # (an RSVP confirmation's "member" is the answer's row and its "campaign" the answer: none
        # of these rows exist, so a valid one reaches the page and the refusal of a used link)
        made = {
            "valid": lambda: tokens.sign(purpose, member, keys=keys, campaign=1),
            "expired": lambda: tokens.sign(purpose, member, keys=keys, now=now - timedelta(days=400)),
            "other-key": lambda: tokens.sign(purpose, member, keys=[OTHER_KEY]),
            "future": lambda: tokens.sign(purpose, member, keys=keys, now=now + timedelta(days=1)),
            "other-purpose": lambda: tokens.sign(other, member, keys=keys),
            "huge-member": lambda: tokens.sign(purpose, tokens.MAX_ID, keys=keys, campaign=tokens.MAX_ID),
            "erased": lambda: tokens.sign(purpose, 987_654_321, keys=keys),
        }
    if name in made:
        return made[name]()
    good = made["valid"]()
    return {
        "tampered": lambda: tampered(good),
        "truncated": lambda: good[:-4],
        "extended": lambda: good + "a",
        "upper": lambda: good.upper(),
    }[name]()


def valid_param(site: Site, route_path: str, param: str) -> str:
    if param == "token":
        # The renew form is on the page of an expired link, and posts back to it.
        return recipe(site, route_path, "expired" if route_path.endswith("/renew") else "valid")
    if param == "slug":
        return SLUG
    if param == "key":
        return site.variant_key
    if param == "uid":
        return site.uid
    if param == "name":
        return "image.png" if route_path.startswith("/files/") else "kent"
    if param == "kind":  # the desk's contribution forms: event or item
        return "event"
    if param == "id":  # a contribution in the desk's inbox (none exists: the pages answer 403 or 404)
        return "1"
    raise AssertionError(f"no valid value for {{{param}}} of {route_path}: add one here")


def fill(route_path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: quote(values[m.group(1)], safe=""), route_path)


# ---------------------------------------------------------------------------------------------
# Sending and judging


class AsgiClient:
    """Requests to the ASGI app on one event loop of this thread, through httpx's ASGI transport
    (server errors come back as 500s, as from a server). Starlette's TestClient does the same but
    hops to a portal thread several times per request, which is most of the cost of thousands."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url=BASE, follow_redirects=False)
        self.lifespan = app.router.lifespan_context(app)

    def __enter__(self) -> AsgiClient:
        self.runner.run(self.lifespan.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.runner.run(self.client.aclose())
            self.runner.run(self.lifespan.__aexit__(None, None, None))
        finally:
            self.runner.close()

    def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return self.runner.run(self.client.request(method, url, **kwargs))

    def get(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)


@dataclass
class Fuzzer:
    site: Site
    client: AsgiClient
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    csrf_cache: dict[str, str] = field(default_factory=dict)

    def send(
        self,
        method: str,
        path: str | httpx.URL,
        case: Case | str,
        *,
        must_not_echo: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        self.sent += 1
        url = httpx.URL(BASE + path) if isinstance(path, str) else path
        response = self.client.request(method, url, **kwargs)
        self.statuses[response.status_code] += 1
        shown = str(url.raw_path.decode("ascii", "replace"))
        where = f"{method} {shown[:100]}{'…' if len(shown) > 100 else ''} [{case}]"
        if response.status_code >= 500:
            self.failures.append(f"{response.status_code} {where}")
        location = response.headers.get("location", "")
        if location and urlsplit(location).hostname not in (None, "127.0.0.1", "localhost"):
            self.failures.append(f"redirect to {location[:80]} from {where}")
        echoed = must_not_echo and (must_not_echo in response.text or quote(must_not_echo) in response.text)
        if echoed and response.status_code == 400 and len(must_not_echo or "") >= 8:
            self.failures.append(f"a bad token echoed back by {where}")
        return response

    def csrf(self, route_path: str, path: str) -> str:
        """A CSRF value for the form that posts to ``path`` (from the page that shows it)."""
        page = re.sub(r"/(leave|renew|preferences)$", "", path) if route_path != "/subscribe" else path
        if page not in self.csrf_cache:
            found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(BASE + page).text)
            self.csrf_cache[page] = found.group(1) if found else ""
        return self.csrf_cache[page]


def form_of(site: Site, route_path: str, csrf: str) -> dict[str, str]:
    """A valid form for each POST route, so that one hostile field reaches the deepest code."""
    forms = {
        "/subscribe": {
            "csrf": csrf,
            "name": "Quinn Example",
            "email": "quinn@example.org",
            "region": "",
            "postcode": "ME14 1HH",
            "interests": "refugees",
            "consent": "yes",
            "website": "",
        },
        "/u/{token}": {"csrf": csrf, "List-Unsubscribe": ""},
        "/p/{token}": {"csrf": csrf, "name": "Pat Example", "region": "kent", "interests": "refugees"},
    }
    return dict(forms.get(route_path, {"csrf": csrf}))


def routes_of(app: Starlette) -> list[Route]:
    found = [r for r in app.routes if isinstance(r, Route)]
    assert len(found) >= 20, "the app's routes are all plain Routes"
    return found


@pytest.fixture
def fuzzer(site: Site) -> Iterator[Fuzzer]:
    with AsgiClient(site.app) as client:
        yield Fuzzer(site, client)


def report(fuzz: Fuzzer) -> None:
    shown = "\n  ".join(fuzz.failures[:40])
    more = f"\n  … and {len(fuzz.failures) - 40} more" if len(fuzz.failures) > 40 else ""
    assert not fuzz.failures, f"{len(fuzz.failures)} of {fuzz.sent} requests went wrong:\n  {shown}{more}"


# ---------------------------------------------------------------------------------------------
# The fuzz test


@pytest.mark.slow
def test_every_route_answers_hostile_requests_below_500(site: Site, fuzzer: Fuzzer) -> None:
    """Every route, every case: 0 answers of 500 or more. And the bystander, whose tokens no
    request carried, is untouched; the preferences member was never unsubscribed."""
    bystander = member_row(site.db, site.members["bystander"])
    routes = routes_of(site.app)
    recipes = {"{valid}", "{expired}", "{tampered}", "{truncated}", "{extended}", "{upper}"} | {
        "{other-purpose}",
        "{other-key}",
        "{huge-member}",
        "{erased}",
        "{future}",
    }
    path_values = load_cases("path-values.txt")
    assert {c.value for c in path_values if c.value.startswith("{")} == recipes

    def valid_path(route: Route) -> tuple[str, dict[str, str]]:
        params = {p: valid_param(site, route.path, p) for p in route.param_convertors}
        return fill(route.path, params), params

    # 1. Every parameter of every route, by the route's own methods, with each path value.
    for route in routes:
        methods = sorted(route.methods or {"GET"})
        for param in route.param_convertors:
            for case in path_values:
                value = case.value
                if value in recipes:
                    value = recipe(site, route.path, value.strip("{}"))
                params = {p: valid_param(site, route.path, p) for p in route.param_convertors}
                params[param] = value
                bad = (
                    value
                    if param == "token" and case.value not in ("{valid}", "{upper}", "{expired}")
                    else None
                )
                for method in methods:
                    data = {"List-Unsubscribe": "One-Click"} if method == "POST" else None
                    fuzzer.send(method, fill(route.path, params), case, must_not_echo=bad, data=data)

    # 2. Wrong methods on every route.
    for route in routes:
        path, _ = valid_path(route)
        for method in WRONG_METHODS:
            if method not in (route.methods or ()):
                fuzzer.send(method, path, f"wrong method {method}")

    # 3. Form values: in each field of each POST route (the rest valid), then in all at once.
    form_values = load_cases("form-values.txt")
    posts = [r for r in routes if "POST" in (r.methods or ())]
    for route in posts:
        path, _ = valid_path(route)
        csrf = fuzzer.csrf(route.path, path)
        base = form_of(site, route.path, csrf)
        for case in form_values:
            for name in base:
                fuzzer.send("POST", path, f"{case} in {name}", data={**base, name: case.value})
            everything = dict.fromkeys(base, case.value)
            fuzzer.send("POST", path, f"{case} in every field", data=everything)
            fuzzer.send("POST", path, f"{case} without CSRF", data={**base, "csrf": ""})

    # 4. Bodies of every kind to every POST route.
    for route in posts:
        path, _ = valid_path(route)
        for case in load_cases("bodies.txt"):
            spec = case.value
            body = spec["body_latin1"].encode("latin-1") if "body_latin1" in spec else spec["body"].encode()
            headers = {"Content-Type": spec["content_type"]} if spec["content_type"] else {}
            fuzzer.send("POST", path, case, content=body, headers=headers)

    # 5. Host headers and 6. other headers, to every route.
    for route in routes:
        path, _ = valid_path(route)
        method = "POST" if "POST" in (route.methods or ()) else "GET"
        for case in load_cases("hosts.txt"):
            host = case.value.encode("utf-8")
            response = fuzzer.send(method, path, case, headers={"Host": host})
            ours = case.value.rsplit(":", 1)[0] in ("127.0.0.1", "localhost")  # an odd port only
            if response.status_code != 400 and not ours:
                fuzzer.failures.append(
                    f"{response.status_code} for a foreign Host: {method} {path[:60]} [{case}]"
                )
        for case in load_cases("headers.txt"):
            spec = case.value
            raw = spec["value_latin1"].encode("latin-1") if "value_latin1" in spec else spec["value"].encode()
            fuzzer.send(method, path, case, headers={spec["name"]: raw})

    # 7. Whole paths.
    for case in load_cases("paths.txt"):
        for method in ("GET", "POST"):
            fuzzer.send(method, httpx.URL(BASE + case.value), case)

    report(fuzzer)
    assert fuzzer.sent > 2000
    # The requests got deep: pages served, forms refused and accepted, tokens judged, mail sent.
    for status in (200, 400, 401, 403, 404, 405):
        assert fuzzer.statuses[status] >= 10, (status, fuzzer.statuses)
    assert fuzzer.statuses[410] >= 3, "expired preferences links reached their page"
    assert len(site.smtp.messages) >= 3
    assert member_row(site.db, site.members["bystander"]) == bystander
    with site.db.session() as s:
        assert not is_suppressed(s, "bystander@example.org")
        assert not is_suppressed(s, "preferences@example.org"), "only its own leave form may do that"


def member_row(db: Database, member_id: int) -> tuple[Any, ...]:
    with db.session() as s:
        member = s.get(Member, member_id)
        assert member is not None
        return (member.name, member.email, member.region_id, tuple(i.slug for i in member.interests))


def test_wrong_host_gets_no_redirect(site: Site) -> None:
    """The report that started this: ``Host: evil.example`` on /admin got a 307 to evil.example."""
    with TestClient(site.app, base_url="http://evil.example", follow_redirects=False) as evil:
        response = evil.get("/admin")
    assert response.status_code == 400 and "location" not in response.headers


def test_no_route_is_left_out(site: Site) -> None:
    """Every route has a valid value for each of its parameters (so the fuzz test reaches it)."""
    for route in routes_of(site.app):
        for param in route.param_convertors:
            assert valid_param(site, route.path, param)
