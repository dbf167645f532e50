"""Members' rights (docs/data.md): which key of the suppression hash the members' hashes are made
under, so that a new key makes them again once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, UTCDateTime, utcnow


class AddressKeyState(Base):
    """One row (``id`` 1): the fingerprint of the key the members' address hashes were last made
    under ("" before keys: the old unkeyed SHA-256), and when. See mailer/audience/addresses.py."""

    __tablename__ = "address_key_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    members: Mapped[int] = mapped_column(Integer, default=0)  # hashes made again at that change
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
