"""The audience: regions (a tree), interests, members with their interests, free-form fields and
the choices they made, an append-only consent log, suppressions keyed by a hash of the normalised
address, and the networks members left. Suppression is separate from membership: no import and no
admin action removes one silently."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.models.base import Base, UTCDateTime, utcnow


class Region(Base):
    """A node of the region tree. ``path`` is ``/south-east/kent/`` so that a prefix finds descendants."""

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    path: Mapped[str] = mapped_column(String(1000), index=True)


class Interest(Base):
    """A topic or team members opt into (refugees, MP advocacy, schools, …)."""

    __tablename__ = "interests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")


class Member(Base):
    """A person on the list. ``email`` is the normalised address; ``address_hash`` keys suppressions."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(16), default="")
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The name to greet them by ("" when not known: they are greeted "Hello,").
    first_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    # Whether they may be mailed (mailer.audience.mailable): subscribed, not-opted-in, unsubscribed,
    # cleaned; where that came from ("import:FILE:COLUMN=VALUE", "signup", "preferences", …) and when.
    status: Mapped[str] = mapped_column(String(16), default="subscribed", server_default="subscribed")
    status_source: Mapped[str] = mapped_column(Text, default="", server_default="")
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)

    region: Mapped[Region | None] = relationship(lazy="joined")
    interests: Mapped[list[Interest]] = relationship(secondary="member_interests", order_by="Interest.slug")
    fields: Mapped[list[MemberField]] = relationship(
        cascade="all, delete-orphan", order_by="MemberField.name"
    )


class MemberInterest(Base):
    __tablename__ = "member_interests"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    interest_id: Mapped[int] = mapped_column(
        ForeignKey("interests.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class MemberField(Base):
    """A free-form field from an extra CSV column (``student = yes``); segments can test it."""

    __tablename__ = "member_fields"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(1000), default="")

    __table_args__ = (Index("ix_member_fields_name_value", "name", "value"),)


class MemberChoice(Base):
    """A field a member set themselves (preferences page, sign-up, unsubscribe): ``name``,
    ``region``, ``interests`` or ``status``. An import never overwrites such a field (their choice
    is newer than any CRM row); see docs/import.md, "Members' own choices"."""

    __tablename__ = "member_choices"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    field: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # preferences, signup, one-click, link, mailto
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentEvent(Base):
    """One line of the consent log: appended to, never rewritten.

    ``address_hash`` outlives the member: erasing a member nulls ``member_id`` and keeps the rest,
    which holds no personal data.
    """

    __tablename__ = "consent_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))  # subscribe, confirm, unsubscribe, preferences, erase
    source: Mapped[str] = mapped_column(String(32))  # import, signup, one-click, link, mailto, bounce, admin
    wording: Mapped[str] = mapped_column(Text, default="")
    campaign: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # A sign-up's provenance (docs/decisions.md, Privacy and consent): the network it was to, the
    # form it came from (page or embed, :<network> for a network's own), the wording's version.
    network: Mapped[str | None] = mapped_column(String(64))
    form: Mapped[str | None] = mapped_column(String(80))
    wording_version: Mapped[str | None] = mapped_column(String(16))


class Suppression(Base):
    """An address that must never be mailed again, by the hash of its normalised form."""

    __tablename__ = "suppressions"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))  # unsubscribe, hard-bounce, complaint, erasure, admin
    source: Mapped[str] = mapped_column(String(32))  # one-click, link, mailto, bounce, admin, import
    campaign: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NetworkLeave(Base):
    """A member who left one network's mail (docs/decisions.md, Networks): that network's campaigns skip
    them; other networks' mail is unchanged. Leaving all mail is a suppression, not rows here."""

    __tablename__ = "network_leaves"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # one-click, link, mailto, admin; signup: not chosen
    campaign: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_network_leaves_network", "network", "member_id"),)
