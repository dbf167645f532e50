"""Unsubscribing: the suppression by address hash, the final word for "all mail"."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.audience import suppression
from mailer.models import Campaign, Member

# ---------------------------------------------------------------------------------------------
# Unsubscribing


@dataclass(frozen=True)
class Unsubscribed:
    """What ``unsubscribe_member`` did: the campaign recorded, and whether the suppression is new."""

    address_hash: str
    campaign: str | None
    newly: bool  # False when the address was suppressed already


def campaign_label(session: Session, campaign_id: int | None) -> str | None:
    """The campaign a token names, as recorded in the consent log: its slug (``#id`` if unknown)."""
    if campaign_id is None:
        return None
    slug = session.scalar(select(Campaign.slug).where(Campaign.id == campaign_id))
    return slug or f"#{campaign_id}"


def unsubscribe(
    session: Session,
    digest: str,
    *,
    source: str,
    campaign: str | None = None,
    reason: str = "unsubscribe",
    detail: str = "",
) -> bool:
    """Never mail the address with hash ``digest`` again; True if it was not suppressed before.

    ``source`` says how the request came (one-click, link, mailto, bounce, admin); ``reason`` is
    ``unsubscribe`` or, for bounces, complaints and erasure, ``hard-bounce``, ``complaint`` or
    ``erasure``; ``campaign`` names the campaign that prompted it. The suppression is added once;
    the consent log gets a line for every request.
    """
    return suppression.suppress_hash(
        session, digest, reason=reason, source=source, campaign=campaign, detail=detail
    )


def unsubscribe_member(
    session: Session, member_id: int, *, source: str, campaign_id: int | None, detail: str = ""
) -> Unsubscribed | None:
    """Unsubscribe the member a signed link names (``campaign_id``: the campaign of the link).

    None when the member has been erased since the mail went out: they have no row (and their
    suppression outlived them), so there is nothing to do.
    """
    digest = session.scalar(select(Member.address_hash).where(Member.id == member_id))
    if digest is None:
        return None
    campaign = campaign_label(session, campaign_id)
    newly = unsubscribe(session, digest, source=source, campaign=campaign, detail=detail)
    return Unsubscribed(digest, campaign, newly)
