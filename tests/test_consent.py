"""Consent rules through the library (``mailer.audience.consent``): who may be resubscribed, and the
consent-log line each change writes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from support import hashes

from mailer.audience import consent, members
from mailer.audience.consent import Preferences, SignupData, StaleConfirmation
from mailer.audience.importer import Options, import_csv
from mailer.audience.shape import Shape
from mailer.audience.suppression import is_suppressed
from mailer.db import Database
from mailer.models import Campaign, ConsentEvent, Member, utcnow

CSV = "email,name,region,interests\nann@example.org,Ann,kent,refugees\nbob@example.org,Bob,kent,\n"
SLUG = "2025-11-newsletter"


@pytest.fixture
def people(db: Database, shape: Shape, tmp_path: Path) -> Database:
    path = tmp_path / "people.csv"
    path.write_text(CSV, encoding="utf-8")
    with db.session() as session:
        import_csv(session, path, shape, options=Options(consent="test members agreed"))
        session.add(
            Campaign(
                slug=SLUG,
                kind="newsletter",
                title="November",
                subject="News",
                audience="all",
                issue_date="2025-11-01",
            )
        )
    return db


def _id(session: Session, email: str) -> int:
    member_id = session.scalar(select(Member.id).where(Member.email == email))
    assert member_id is not None
    return member_id


def _log(session: Session, email: str) -> list[tuple[str, str, str | None]]:
    digest = hashes.hash_of(email)
    rows = session.scalars(
        select(ConsentEvent).where(ConsentEvent.address_hash == digest).order_by(ConsentEvent.id)
    )
    return [(e.action, e.source, e.campaign) for e in rows]


def _signup(email: str, *, issued_at_offset: timedelta) -> SignupData:
    return SignupData(email, "Ann Again", "kent", "", ("schools",), "I agree", utcnow() + issued_at_offset)


def test_an_unsubscribe_then_an_import_does_not_resubscribe(
    people: Database, shape: Shape, tmp_path: Path
) -> None:
    with people.session() as session:
        done = consent.unsubscribe_member(
            session, _id(session, "ann@example.org"), source="one-click", campaign_id=None
        )
        assert done is not None and done.newly and done.campaign is None
    path = tmp_path / "again.csv"
    path.write_text(CSV, encoding="utf-8")
    with people.session() as session:
        report = import_csv(session, path, shape, options=Options(consent="test members agreed"))
        assert report.suppressed == 1 and is_suppressed(session, "ann@example.org")
        assert _log(session, "ann@example.org") == [
            ("subscribe", "import", None),
            ("unsubscribe", "one-click", None),
        ]


def test_only_a_confirmed_signup_issued_after_the_suppression_lifts_it(people: Database) -> None:
    with people.session() as session:
        ann = _id(session, "ann@example.org")
        assert consent.unsubscribe(session, hashes.hash_of("ann@example.org"), source="admin")
    with people.session() as session:
        # Saving preferences neither changes nor resubscribes an unsubscribed member.
        assert (
            consent.save_preferences(session, ann, Preferences("Ann", "kent", frozenset()), campaign_id=None)
            is None
        )
        assert consent.already_subscribed(session, hashes.hash_of("ann@example.org")) is None
        with pytest.raises(StaleConfirmation, match="issued before the address unsubscribed"):
            consent.confirm_signup(session, _signup("ann@example.org", issued_at_offset=-timedelta(hours=1)))
        assert is_suppressed(session, "ann@example.org")
    with people.session() as session:
        done = consent.confirm_signup(
            session, _signup("ann@example.org", issued_at_offset=timedelta(seconds=2))
        )
        assert (done.member_id, done.created, done.resubscribed) == (ann, False, True)
        assert not is_suppressed(session, "ann@example.org")
        assert consent.already_subscribed(session, hashes.hash_of("ann@example.org")) == ann
        assert members.show(session, "ann@example.org").interests == ["schools"]
        assert _log(session, "ann@example.org") == [
            ("subscribe", "import", None),
            ("unsubscribe", "admin", None),
            ("resubscribe", "signup", None),
            ("subscribe", "signup", None),
        ]


def test_a_new_signup_creates_the_member_and_logs_the_wording(people: Database) -> None:
    with people.session() as session:
        assert consent.already_subscribed(session, hashes.hash_of("new@example.org")) is None
        done = consent.confirm_signup(session, _signup("new@example.org", issued_at_offset=timedelta()))
        assert done.created and not done.resubscribed
        event = session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == done.member_id)).one()
        assert (event.action, event.source, event.wording) == ("subscribe", "signup", "I agree")
        assert "double opt-in" in event.detail and "interests schools" in event.detail


@pytest.mark.parametrize("source", ["one-click", "link", "mailto", "admin"])
def test_each_unsubscribe_logs_its_source_and_campaign(people: Database, source: str) -> None:
    with people.session() as session:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == SLUG))
        bob = _id(session, "bob@example.org")
        first = consent.unsubscribe_member(session, bob, source=source, campaign_id=campaign_id)
        again = consent.unsubscribe_member(session, bob, source=source, campaign_id=9999)
        assert first is not None and first.newly and first.campaign == SLUG
        assert again is not None and not again.newly and again.campaign == "#9999"
        assert _log(session, "bob@example.org")[1:] == [
            ("unsubscribe", source, SLUG),
            ("unsubscribe", source, "#9999"),
        ]


def test_a_bounce_logs_its_reason_and_campaign(people: Database) -> None:
    with people.session() as session:
        digest = hashes.hash_of("bob@example.org")
        assert consent.unsubscribe(
            session, digest, source="bounce", reason="hard-bounce", campaign=SLUG, detail="5.1.1"
        )
        assert _log(session, "bob@example.org")[-1] == ("bounce", "bounce", SLUG)


def test_preferences_log_what_changed_and_nothing_when_unchanged(people: Database) -> None:
    with people.session() as session:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == SLUG))
        ann = _id(session, "ann@example.org")
        same = Preferences("Ann", "kent", frozenset({"refugees"}))
        assert consent.save_preferences(session, ann, same, campaign_id=None) == []
        changed = Preferences("Ann B", "kent", frozenset({"schools"}))
        assert consent.save_preferences(session, ann, changed, campaign_id=campaign_id) == [
            "name changed",
            "joined interest schools",
            "left interest refugees",
        ]
        event = session.scalars(select(ConsentEvent).where(ConsentEvent.action == "preferences")).one()
        assert (event.source, event.campaign) == ("link", SLUG)
        assert event.detail == "name changed; joined interest schools; left interest refugees"
        view = consent.preferences_of(session, ann)
        assert view is not None and view.interests == frozenset({"schools"}) and not view.suppressed


def test_an_erased_member_cannot_be_unsubscribed_or_read(people: Database) -> None:
    with people.session() as session:
        bob = _id(session, "bob@example.org")
        members.forget(session, "bob@example.org")
        assert consent.unsubscribe_member(session, bob, source="link", campaign_id=None) is None
        assert consent.preferences_of(session, bob) is None
        assert (
            consent.save_preferences(session, bob, Preferences("", None, frozenset()), campaign_id=None)
            is None
        )
        rows = session.scalars(
            select(ConsentEvent).where(ConsentEvent.address_hash == hashes.hash_of("bob@example.org"))
        )
        assert {(e.action, e.member_id) for e in rows} == {("subscribe", None), ("erase", None)}
