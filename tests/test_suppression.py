"""The never-mail-again list: suppress, check, and filter members in SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from support import hashes

from mailer.audience import addresses
from mailer.audience.suppression import (
    is_suppressed,
    suppress,
    suppress_hash,
    suppressed_clause,
    suppression_of,
)
from mailer.db import Database
from mailer.errors import InvalidInput, MailerError
from mailer.models import ConsentEvent, Member, Suppression


def add_member(db: Database, email: str) -> int:
    with db.session() as session:
        member = Member(email=addresses.normalise(email), address_hash=hashes.hash_of(email))
        session.add(member)
        session.flush()
        return member.id


def test_suppress_once_log_every_time(db: Database) -> None:
    member_id = add_member(db, "ann@example.org")
    with db.session() as session:
        assert suppress(session, "Ann@Example.org", reason="unsubscribe", source="one-click", campaign="nov")
    with db.session() as session:
        assert not suppress(session, "ann@example.org", reason="complaint", source="mailto")
    with db.session() as session:
        held = suppression_of(session, hashes.hash_of("ann@example.org"))
        assert held is not None and (held.reason, held.source, held.campaign) == (
            "unsubscribe",
            "one-click",
            "nov",
        )
        events = session.execute(
            select(ConsentEvent.member_id, ConsentEvent.action, ConsentEvent.source).order_by(ConsentEvent.id)
        ).all()
        assert [tuple(e) for e in events] == [
            (member_id, "unsubscribe", "one-click"),
            (member_id, "complaint", "mailto"),
        ]
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1


def test_any_spelling_of_an_address_is_suppressed(db: Database) -> None:
    with db.session() as session:
        suppress(
            session, "  BOB@example.ORG ", reason="hard-bounce", source="bounce", detail="5.1.1 no such user"
        )
    with db.session() as session:
        assert is_suppressed(session, "bob@example.org")
        assert is_suppressed(session, "Bob@EXAMPLE.org")
        assert not is_suppressed(session, "bob2@example.org")
        event = session.scalars(select(ConsentEvent)).one()
        assert event.member_id is None and event.action == "bounce" and event.detail == "5.1.1 no such user"


def test_suppress_by_hash_for_callers_without_the_address(db: Database) -> None:
    address_hash = hashes.hash_of("cat@example.org")
    with db.session() as session:
        assert suppress_hash(session, address_hash, reason="erasure", source="admin")
        assert not suppress_hash(session, address_hash, reason="erasure", source="admin")
    with db.session() as session:
        assert is_suppressed(session, "cat@example.org")


def test_suppressed_clause_filters_members_in_sql(db: Database) -> None:
    for name in ("a", "b", "c", "d"):
        add_member(db, f"{name}@example.org")
    with db.session() as session:
        suppress(session, "b@example.org", reason="unsubscribe", source="link")
        suppress(session, "d@example.org", reason="admin", source="admin")
        suppress(session, "stranger@example.org", reason="complaint", source="mailto")
    with db.session() as session:
        reachable = session.scalars(select(Member.email).where(suppressed_clause()).order_by(Member.email))
        assert list(reachable) == ["a@example.org", "c@example.org"]
        suppressed = session.scalar(select(func.count()).select_from(Member).where(~suppressed_clause()))
        assert suppressed == 2


def test_bad_reasons_sources_and_addresses_are_refused(db: Database) -> None:
    with db.session() as session:
        with pytest.raises(MailerError, match="unknown suppression reason 'bored'"):
            suppress(session, "a@example.org", reason="bored", source="admin")
        with pytest.raises(MailerError, match="unknown suppression source 'carrier-pigeon'"):
            suppress(session, "a@example.org", reason="unsubscribe", source="carrier-pigeon")
        with pytest.raises(InvalidInput):
            suppress(session, "not an address", reason="unsubscribe", source="admin")
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
