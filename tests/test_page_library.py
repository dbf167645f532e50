"""The library behind the members' pages, called without a web request: the limits and lock-outs
(``mailer.limits``), the archive's lookups (``mailer.archive``), member lookups by id
(``audience.members``), and the sign-up and preferences forms (``audience.consent``, read with
``mailer.forms``); the last also as the pages post them (``mailer.web.forms.posted``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.datastructures import FormData
from support.hashes import address_hash

from mailer.archive import sent_issue, sent_issues, started_campaign, variant_html
from mailer.audience import suppression
from mailer.audience.consent import (
    Preferences,
    PreferencesForm,
    SignupForm,
    check_preferences,
    check_signup,
    preferences_shown,
    signup_regions,
    signup_shown,
)
from mailer.audience.members import mail_address, members_added
from mailer.audience.shape import Shape, load_shape
from mailer.db import Database
from mailer.forms import FormRefused, read
from mailer.limits import Limit, Lockout, has_failures, hit, locked_for, record_failure, record_success
from mailer.models import Campaign, Member, Region, Variant
from mailer.web.forms import posted

REPO = Path(__file__).resolve().parent.parent
SLUG = "2025-11-kent-network"
SOURCE = (REPO / "campaigns" / SLUG / "issue.yaml").read_text(encoding="utf-8")
NOW = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def networked() -> Shape:
    """The repository's lists: two networks (Kent, Central England) and regions outside both."""
    return load_shape(REPO / "lists")


def add_member(db: Database, address: str, region: str | None = "kent") -> int:
    with db.session() as s:
        region_id = s.scalar(select(Region.id).where(Region.slug == region)) if region else None
        member = Member(email=address, address_hash=address_hash(address), name="Ann", region_id=region_id)
        s.add(member)
        s.flush()
        return member.id


def add_campaign(db: Database, slug: str, status: str) -> int:
    with db.session() as s:
        row = Campaign(
            slug=slug,
            kind="newsletter",
            title="Kent Network newsletter",
            subject="Kent Network newsletter",
            audience="region:kent",
            issue_date="2025-11-17",
            source=SOURCE,
            status=status,
            started_at=NOW if status != "draft" else None,
            finished_at=NOW if status == "sent" else None,
        )
        s.add(row)
        s.flush()
        return row.id


# ---------------------------------------------------------------------------------------------
# Limits and lock-outs


def test_a_limit_counts_each_key_within_its_window(db: Database) -> None:
    limit = Limit("test-scope", 2, timedelta(minutes=10))
    with db.session() as s:
        assert hit(s, limit, "a", NOW) is None
        assert hit(s, limit, "a", NOW + timedelta(minutes=1)) is None
        wait = hit(s, limit, "a", NOW + timedelta(minutes=2))
        assert wait == pytest.approx(8 * 60)  # until the first hit leaves the window
        assert hit(s, limit, "b", NOW + timedelta(minutes=2)) is None  # another key counts apart
    with db.session() as s:  # a refused hit was not recorded; an old one no longer counts
        assert hit(s, limit, "a", NOW + timedelta(minutes=10, seconds=1)) is None
        assert hit(s, Limit("test-scope", 0, timedelta(minutes=1)), "a", NOW) is None  # 0: no limit


def test_wrong_passwords_lock_a_key_out_longer_each_time(db: Database) -> None:
    lockout = Lockout(failures=2, longest=3.0)
    with db.session() as s:
        record_failure(s, "198.51.100.7", NOW, lockout)
        assert locked_for(s, "198.51.100.7", NOW) is None and has_failures(s, "198.51.100.7")
        record_failure(s, "198.51.100.7", NOW, lockout)
        assert locked_for(s, "198.51.100.7", NOW) == 1.0
        for _ in range(3):
            record_failure(s, "198.51.100.7", NOW, lockout)
        assert locked_for(s, "198.51.100.7", NOW) == 3.0  # doubled each time, up to the longest
        assert locked_for(s, "198.51.100.7", NOW + timedelta(seconds=3)) is None
        assert not has_failures(s, "203.0.113.1")
    with db.session() as s:  # a day later the count starts again
        record_failure(s, "198.51.100.7", NOW + timedelta(days=2), lockout)
        assert locked_for(s, "198.51.100.7", NOW + timedelta(days=2)) is None
        record_success(s, "198.51.100.7")
    with db.session() as s:
        assert not has_failures(s, "198.51.100.7")


# ---------------------------------------------------------------------------------------------
# The archive's lookups


def test_the_archive_reads_sent_issues_and_their_variants(db: Database) -> None:
    sent = add_campaign(db, SLUG, "sent")
    add_campaign(db, "2025-12-draft", "draft")
    with db.session() as s:
        s.add(
            Variant(
                campaign_id=sent, key="k1", label="x", subject="s", text="t", html="<p>[[mailer:name]]</p>"
            )
        )
    with db.session() as s:
        found = sent_issues(s, {})
        assert [i.slug for i in found] == [SLUG] and found[0].campaign_id == sent
        assert found[0].issue.date == date(2025, 11, 17) and found[0].sent_at == NOW
        assert sent_issue(s, {}, SLUG) is not None and sent_issue(s, {}, "2025-12-draft") is None
        assert started_campaign(s, SLUG) == sent and started_campaign(s, "2025-12-draft") is None
        assert variant_html(s, SLUG, "k1") == "<p>[[mailer:name]]</p>"
        assert variant_html(s, SLUG, "nope") is None and variant_html(s, "2025-12-draft", "k1") is None


# ---------------------------------------------------------------------------------------------
# Members by id


def test_a_preferences_link_is_mailed_only_to_a_member_still_subscribed(db: Database) -> None:
    kept, left = add_member(db, "kept@example.org"), add_member(db, "left@example.org", region=None)
    with db.session() as s:
        suppression.suppress(s, "left@example.org", reason="unsubscribe", source="link")
    with db.session() as s:
        assert mail_address(s, kept) == "kept@example.org"
        assert mail_address(s, left) is None and mail_address(s, 10**6) is None
        added = members_added(s, [left, kept, 10**6])
        assert [(m.id, m.email, m.region) for m in added] == [
            (kept, "kept@example.org", "kent"),
            (left, "left@example.org", None),
        ]


# ---------------------------------------------------------------------------------------------
# The sign-up form

SIGNUP = {
    "email": "Quinn@Example.org",
    "name": "Quinn\x00 Example",
    "postcode": "me14  1hh",
    "consent": "yes",
}


def test_a_sign_up_reads_into_the_data_its_link_carries(shape: Shape) -> None:
    data = check_signup({**SIGNUP, "interests": ["schools", "refugees"]}, shape, wording="w", now=NOW)
    assert (data.email, data.name, data.postcode) == ("quinn@example.org", "Quinn Example", "ME14 1HH")
    assert data.region == "maidstone-medway-swale"  # the postcode's
    assert data.interests == ("refugees", "schools") and (data.wording, data.issued_at) == ("w", NOW)
    chosen = check_signup({**SIGNUP, "region": "canterbury"}, shape, wording="w", now=NOW)
    assert chosen.region == "canterbury"  # a region chosen from the list wins over the postcode


def test_a_refused_sign_up_names_every_wrong_field_at_once(shape: Shape) -> None:
    posted_ = {"email": "nobody", "name": "x@y.org", "postcode": "ME14\x001HH", "interests": ["cats"]}
    with pytest.raises(FormRefused) as refused:
        check_signup(posted_, shape, wording="w", now=NOW)
    assert refused.value.errors == {
        "email": "Enter your email address, like name@example.org.",
        "name": "Your name cannot contain a web or email address.",
        "postcode": "Enter a postcode like ME14 1HH (letters, digits and a space), or leave it empty.",
        "interests": "Choose interests from the list.",
        "consent": "Tick the box to agree to receive our emails.",
    }  # no region message: the postcode's own says what to fix
    assert refused.value.values["email"] == "nobody"
    assert read(SignupForm, {**SIGNUP, "postcode": ""}, context={"shape": shape}).errors == {
        "region": "Choose your region, or give your postcode."
    }
    assert read(SignupForm, {**SIGNUP, "consent": "on"}, context={"shape": shape}).errors == {
        "consent": "Tick the box to agree to receive our emails."
    }  # only the word the form sends


def test_with_networks_only_their_regions_can_be_chosen(networked: Shape) -> None:
    regions = signup_regions(networked, None)
    assert regions is not None and "birmingham" in regions and "south-east" not in regions
    kent = signup_regions(networked, networked.networks["kent"])
    assert kent is not None and "canterbury" in kent and "birmingham" not in kent

    def errors(offered: list[str] | None = None, **given: str) -> dict[str, str]:
        return read(SignupForm, {**SIGNUP, **given}, context={"shape": networked, "offered": offered}).errors

    assert errors(region="south-east") == {"region": "Choose your region from the list."}
    assert errors(region="birmingham", offered=kent) == {"region": "Choose your region from the list."}
    assert errors(region="canterbury", offered=kent) == {}


def test_a_sign_up_form_shows_its_values_again_tidied(shape: Shape) -> None:
    shown = signup_shown({**SIGNUP, "region": "atlantis", "interests": ["cats", "schools"]}, shape)
    assert shown == {
        "email": "Quinn@Example.org",
        "name": "Quinn Example",
        "region": "atlantis",
        "postcode": "ME14 1HH",
        "interests": ["schools"],
        "consent": True,
        "form": "page",
    }
    assert signup_shown({"postcode": "ME14\x001HH"}, shape)["postcode"] == ""
    assert signup_shown({"form": "embed"}, shape)["form"] == "embed"
    assert signup_shown({"form": "https://evil.example/"}, shape)["form"] == "page"
    assert signup_shown({}, shape)["consent"] is False


# ---------------------------------------------------------------------------------------------
# The preferences form


def test_preferences_read_into_a_choice(shape: Shape) -> None:
    form = check_preferences({"name": " Ann\r\nExample ", "region": "", "interests": ["schools"]}, shape)
    assert form.choice() == Preferences("Ann Example", None, frozenset({"schools"}))
    assert form.kept_networks() is None  # one network: no Networks fieldset
    with pytest.raises(FormRefused) as refused:
        check_preferences({"name": "A" * 201, "region": "atlantis", "interests": ["cats"]}, shape)
    assert refused.value.errors == {
        "name": "Your name can be at most 200 characters long.",
        "region": "Choose your region from the list.",
        "interests": "Choose interests from the list.",
    }
    shown, kept = preferences_shown(refused.value.values, shape)
    assert shown == Preferences("A" * 200, None, frozenset()) and kept is None


def test_preferences_keep_the_networks_ticked(networked: Shape) -> None:
    ticked = {"networks_shown": "1", "networks": ["kent", "atlantis"]}
    form = read(PreferencesForm, ticked, context={"shape": networked}).checked()
    assert form.kept_networks() == frozenset({"kent"})  # a name that is no network is left out
    untouched = read(PreferencesForm, {"networks": ["kent"]}, context={"shape": networked}).checked()
    assert untouched.kept_networks() is None  # no fieldset: no network is left by omission
    _shown, kept = preferences_shown({**ticked, "region": "atlantis"}, networked)
    assert kept == frozenset({"kent"})


def test_a_post_becomes_what_the_form_reads() -> None:
    form = FormData(
        [
            *[("email", "a@example.org"), ("email", " b@example.org ")],
            *[("interests", "x"), ("interests", " x "), ("interests", "")],
            *[("name", "N" * 2000), ("website", "bot"), ("consent", "yes")],
        ]
    )
    assert posted(form, SignupForm) == {
        "email": "b@example.org",  # a repeated single field: its last value, stripped
        "name": "N" * 1000,  # cut to the limit
        "interests": ["x"],  # a list field: every value, stripped, once each, none empty
        "consent": "yes",
    }  # fields the form does not read (the honeypot) are left out, as are those not posted
