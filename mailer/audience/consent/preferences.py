"""Preferences: name, home region and interests, changed from the member's own page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience import suppression
from mailer.audience.choices import first_word, record_member_choice
from mailer.audience.consent.log import log_line
from mailer.audience.consent.networks import networks_left
from mailer.audience.consent.unsubscribe import campaign_label
from mailer.models import Interest, Member, Region, utcnow

# ---------------------------------------------------------------------------------------------
# Preferences


@dataclass(frozen=True)
class Preferences:
    """A member's choices: name, home region (a slug) and interests (slugs), already checked."""

    name: str
    region: str | None
    interests: frozenset[str]


@dataclass(frozen=True)
class MemberPreferences:
    """A member's current choices, and whether they have unsubscribed."""

    member_id: int
    name: str
    region: str | None
    interests: frozenset[str]
    suppressed: bool
    networks_left: frozenset[str] = frozenset()


def preferences_of(session: Session, member_id: int) -> MemberPreferences | None:
    """The member's current choices; None when the member no longer exists."""
    member = session.get(Member, member_id)
    if member is None:
        return None
    return MemberPreferences(
        member_id=member.id,
        name=member.name,
        region=member.region.slug if member.region is not None else None,
        interests=frozenset(i.slug for i in member.interests),
        suppressed=suppression.is_hash_suppressed(session, member.address_hash),
        networks_left=frozenset(networks_left(session, member.id)),
    )


def save_preferences(
    session: Session, member_id: int, choice: Preferences, *, campaign_id: int | None
) -> list[str] | None:
    """Apply ``choice`` to the member and log what changed; the changes in words, or None when the
    member is gone or has unsubscribed (nothing is changed then). An unchanged choice logs nothing."""
    member = session.get(Member, member_id)
    if member is None or suppression.is_hash_suppressed(session, member.address_hash):
        return None
    changes: list[str] = []
    chosen: list[str] = []
    if choice.name != member.name:
        member.name = choice.name
        member.first_name = first_word(choice.name)
        changes.append("name changed")
        chosen.append("name")
    current_region = member.region.slug if member.region is not None else None
    if choice.region != current_region:
        region = session.scalar(select(Region).where(Region.slug == choice.region)) if choice.region else None
        member.region_id = region.id if region is not None else None
        changes.append(f"region {current_region or '-'} -> {choice.region or '-'}")
        chosen.append("region")
    current = {i.slug for i in member.interests}
    joined = sorted(choice.interests - current)
    left = sorted(current - choice.interests)
    if joined or left:
        rows = session.scalars(select(Interest).where(Interest.slug.in_(sorted(choice.interests)))).all()
        member.interests = sorted(rows, key=lambda i: i.slug)
        changes.extend(f"joined interest {s}" for s in joined)
        changes.extend(f"left interest {s}" for s in left)
        chosen.append("interests")
    if changes:
        record_member_choice(session, member.id, chosen, source="preferences")
        member.updated_at = utcnow()
        campaign = campaign_label(session, campaign_id)
        log_line(
            session,
            member.id,
            member.address_hash,
            "preferences",
            "link",
            campaign=campaign,
            detail="; ".join(changes),
        )
    return changes
