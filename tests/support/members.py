"""A small membership inserted row by row for the planning tests: ten members in Kent, its groups
and Brighton (outside ``region:kent``), with their interests, one of them suppressed."""

from __future__ import annotations

from sqlalchemy import select

from mailer.db import Database
from mailer.models import Interest, Member, MemberInterest, Region, Suppression
from support.hashes import address_hash

MEMBERS = [
    # email, region, interests
    ("kent1@example.org", "kent", []),
    ("kent2@example.org", "kent", ["fundraising"]),  # an interest no item names: same variant
    ("cant1@example.org", "canterbury", ["schools"]),
    ("cant2@example.org", "canterbury", ["schools", "events"]),
    ("medway1@example.org", "maidstone-medway-swale", ["refugees"]),
    ("medway2@example.org", "maidstone-medway-swale", ["refugees", "training"]),
    ("medway3@example.org", "maidstone-medway-swale", []),
    ("thanet@example.org", "thanet", []),
    ("sussex@example.org", "brighton-hove", ["refugees"]),  # outside region:kent
    ("gone@example.org", "kent", []),  # suppressed
]


def add_members(database: Database, members: list[tuple[str, str | None, list[str]]]) -> dict[str, int]:
    ids = {}
    with database.session() as session:
        regions = {r.slug: r.id for r in session.scalars(select(Region))}
        interests = {i.slug: i.id for i in session.scalars(select(Interest))}
        for email, region, chosen in members:
            m = Member(
                email=email,
                address_hash=address_hash(email),
                name=email.split("@")[0].title(),
                region_id=regions[region] if region else None,
            )
            session.add(m)
            session.flush()
            for slug in chosen:
                session.add(MemberInterest(member_id=m.id, interest_id=interests[slug]))
            ids[email] = m.id
        session.add(
            Suppression(address_hash=address_hash("gone@example.org"), reason="unsubscribe", source="link")
        )
    return ids
