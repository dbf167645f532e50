"""Preferences: name, home region, interests and networks, changed from the member's own page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final

from pydantic import ValidationInfo, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience import suppression
from mailer.audience.addresses import clean_name
from mailer.audience.choices import first_word, record_member_choice
from mailer.audience.consent.log import log_line
from mailer.audience.consent.networks import networks_left
from mailer.audience.consent.unsubscribe import campaign_label
from mailer.forms import Form, read
from mailer.models import Interest, Member, Region, utcnow

if TYPE_CHECKING:
    from mailer.audience.shape import Shape

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


#: The longest name the preferences page takes.
NAME_LIMIT: Final = 200


class PreferencesForm(Form):
    """The preferences page's form, read with the context ``shape``: the name (cleaned), a region
    from the list or none, interests from the list and, in a workspace of several networks, the
    networks kept (``kept_networks``)."""

    messages: ClassVar[dict[str, str]] = {"interests": "Choose interests from the list."}

    name: str = ""
    region: str | None = None
    interests: tuple[str, ...] = ()
    networks_shown: bool = False
    """Whether the form had its Networks fieldset (only a workspace of several networks shows it)."""
    networks: tuple[str, ...] = ()
    """The networks ticked; names that are not the workspace's are left out."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        cleaned = clean_name(value)
        if len(cleaned) > NAME_LIMIT:
            raise ValueError(f"Your name can be at most {NAME_LIMIT} characters long.")
        return cleaned

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and value not in _shape(info).regions:
            raise ValueError("Choose your region from the list.")
        return value or None

    @field_validator("interests")
    @classmethod
    def _interests(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if any(i not in _shape(info).interests for i in value):
            raise ValueError("Choose interests from the list.")
        return value

    @field_validator("networks_shown", mode="before")
    @classmethod
    def _shown(cls, value: object, info: ValidationInfo) -> bool:
        return bool(value) and len(_shape(info).networks) > 1

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return tuple(n for n in value if n in _shape(info).networks)

    def choice(self) -> Preferences:
        return Preferences(self.name, self.region, frozenset(self.interests))

    def kept_networks(self) -> frozenset[str] | None:
        """The networks the member keeps, as ticked; None when the form had no Networks fieldset
        (one network, or a form from before), so that no network is left by omission."""
        return frozenset(self.networks) if self.networks_shown else None


def _shape(info: ValidationInfo) -> Shape:
    shape: Shape = (info.context or {})["shape"]
    return shape


def check_preferences(posted: Mapping[str, object], shape: Shape) -> PreferencesForm:
    """The choices ``posted`` (``PreferencesForm``, against ``shape``); ``FormRefused`` with a
    message by field and the values as posted when any field is wrong."""
    return read(PreferencesForm, posted, context={"shape": shape}).checked()


def preferences_shown(
    values: Mapping[str, object], shape: Shape
) -> tuple[Preferences, frozenset[str] | None]:
    """The choice and the networks kept (``PreferencesForm.kept_networks``) as a refused form shows
    them again: the name cleaned and cut to ``NAME_LIMIT``, what is not on the lists left out."""
    region = str(values.get("region", ""))
    choice = Preferences(
        clean_name(str(values.get("name", "")))[:NAME_LIMIT],
        region if region in shape.regions else None,
        frozenset(i for i in _listed(values, "interests") if i in shape.interests),
    )
    kept = None
    if values.get("networks_shown") and len(shape.networks) > 1:
        kept = frozenset(n for n in _listed(values, "networks") if n in shape.networks)
    return choice, kept


def _listed(values: Mapping[str, object], name: str) -> list[str]:
    found = values.get(name)
    return [str(v) for v in found] if isinstance(found, list | tuple) else []


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
