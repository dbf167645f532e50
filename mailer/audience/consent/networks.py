"""Networks (docs/decisions.md, Networks): leaving and rejoining one network's mail, and the scope of an
unsubscribe."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer.audience import suppression
from mailer.audience.consent.log import log_line
from mailer.audience.consent.unsubscribe import campaign_label, unsubscribe_member
from mailer.errors import MailerError
from mailer.models import Campaign, Member, NetworkLeave, utcnow

# ---------------------------------------------------------------------------------------------
# Networks: leaving one network's mail (docs/decisions.md, Networks)

#: How a member may leave a network (one-click, a page's button, mailto, an admin on request).
LEAVE_SOURCES: Final = ("one-click", "link", "mailto", "admin")
#: How a member may rejoin a network: only their own preferences page (never an import).
REJOIN_SOURCES: Final = ("link",)


@dataclass(frozen=True)
class Left:
    """What an unsubscribe did: ``network`` is the network left, or None for all mail (the
    suppression); the campaign recorded; whether it is new (False when it was so already)."""

    network: str | None
    campaign: str | None
    newly: bool


def _member_hash(session: Session, member_id: int) -> str | None:
    return session.scalar(select(Member.address_hash).where(Member.id == member_id))


def leave_network(
    session: Session,
    member_id: int,
    network_slug: str,
    *,
    source: str,
    campaign_id: int | None,
    detail: str = "",
) -> Left | None:
    """The member leaves ``network_slug``'s mail: that network's campaigns skip them from now on;
    other networks' mail is unchanged. The ``network_leaves`` row is added once; the consent log
    gets a ``leave-network`` line naming the network every time. ``source``: one of
    ``LEAVE_SOURCES``. None when the member no longer exists.
    """
    if source not in LEAVE_SOURCES or not network_slug:
        raise MailerError(
            f"cannot leave network {network_slug!r} with source {source!r}",
            hint="name a network, and a source of " + ", ".join(LEAVE_SOURCES),
        )
    digest = _member_hash(session, member_id)
    if digest is None:
        return None
    campaign = campaign_label(session, campaign_id)
    detail = f"network {network_slug}" + (f"; {detail}" if detail else "")
    log_line(session, member_id, digest, "leave-network", source, campaign=campaign, detail=detail)
    # INSERT … ON CONFLICT DO NOTHING: two requests at once both succeed; the row is added once.
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    row = dict(
        member_id=member_id, network=network_slug, source=source, campaign=campaign, created_at=utcnow()
    )
    stmt = insert_(NetworkLeave).values(row).on_conflict_do_nothing(index_elements=["member_id", "network"])
    newly = session.execute(stmt.returning(NetworkLeave.member_id)).first() is not None
    session.flush()
    return Left(network_slug, campaign, newly)


def rejoin_network(
    session: Session,
    member_id: int,
    network_slug: str,
    *,
    source: str,
    campaign_id: int | None,
    detail: str = "",
) -> bool | None:
    """The member gets ``network_slug``'s mail again: the row is removed and a ``join-network`` line
    logged. Only the member can do this, from their preferences page (``source`` "link"): never an
    import or an admin. True when they had left it; False when they had not (nothing is logged);
    None when the member is gone or has left all mail (a suppression: nothing is changed then).
    """
    if source not in REJOIN_SOURCES:
        raise MailerError(
            f"a network is rejoined only by the member, from their preferences page (not {source!r})",
            hint="the member ticks the network at their preferences link",
        )
    digest = _member_hash(session, member_id)
    if digest is None or suppression.is_hash_suppressed(session, digest):
        return None
    removed = session.execute(
        delete(NetworkLeave).where(NetworkLeave.member_id == member_id, NetworkLeave.network == network_slug)
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        return False
    campaign = campaign_label(session, campaign_id)
    detail = f"network {network_slug}" + (f"; {detail}" if detail else "")
    log_line(session, member_id, digest, "join-network", source, campaign=campaign, detail=detail)
    session.flush()
    return True


def has_left(session: Session, member_id: int, network_slug: str) -> bool:
    """Whether the member has left ``network_slug``'s mail (its campaigns skip them)."""
    where = (NetworkLeave.member_id == member_id) & (NetworkLeave.network == network_slug)
    return session.scalar(select(NetworkLeave.member_id).where(where)) is not None


def networks_left(session: Session, member_id: int) -> list[str]:
    """The slugs of the networks the member has left, sorted."""
    where = NetworkLeave.member_id == member_id
    return list(session.scalars(select(NetworkLeave.network).where(where).order_by(NetworkLeave.network)))


def network_of_campaign(session: Session, campaign_id: int | None) -> str | None:
    """The network (slug) the campaign ``campaign_id`` speaks as: "" for the workspace's default
    network; None when there is no such campaign."""
    if campaign_id is None:
        return None
    return session.scalar(select(Campaign.network).where(Campaign.id == campaign_id))


def unsubscribe_scope(session: Session, campaign_id: int | None, networks: Collection[str]) -> str | None:
    """The network an unsubscribe link of ``campaign_id`` leaves, or None when it leaves all mail.

    ``networks``: the slugs of the networks the workspace declares (``Shape.networks``). With fewer
    than two, leaving the only network is leaving all mail. A campaign of the default network
    (``Campaign.network`` ""), of a network no longer declared, or no campaign at all: all mail too,
    as before networks (an unsubscribe is never narrower than the member can be sure of).
    """
    if len(networks) < 2:
        return None
    network = network_of_campaign(session, campaign_id)
    return network if network and network in networks else None


def unsubscribe_scoped(
    session: Session,
    member_id: int,
    *,
    source: str,
    campaign_id: int | None,
    networks: Collection[str],
    detail: str = "",
) -> Left | None:
    """An unsubscribe from a link or mail (one-click, the page's button, mailto): leave the network
    of the campaign the signed token names (``unsubscribe_scope``), or all mail
    (``unsubscribe_member``) in a single-network workspace. The scope comes only from the token's
    campaign, never from anything else in the request. None when the member no longer exists.
    """
    network = unsubscribe_scope(session, campaign_id, networks)
    if network is None:
        done = unsubscribe_member(session, member_id, source=source, campaign_id=campaign_id, detail=detail)
        return None if done is None else Left(None, done.campaign, done.newly)
    return leave_network(session, member_id, network, source=source, campaign_id=campaign_id, detail=detail)


def save_networks(
    session: Session,
    member_id: int,
    keep: Collection[str],
    networks: Collection[str],
    *,
    campaign_id: int | None,
) -> list[str] | None:
    """The member's choice of networks from their preferences page: of the workspace's
    ``networks``, those in ``keep`` are rejoined (if they had left them) and the others left (if
    they had not), each change logged. The changes in words; None when the member is gone or has
    left all mail (nothing is changed then)."""
    digest = _member_hash(session, member_id)
    if digest is None or suppression.is_hash_suppressed(session, digest):
        return None
    left = set(networks_left(session, member_id))
    changes: list[str] = []
    for network in networks:
        if network in keep and network in left:
            if rejoin_network(session, member_id, network, source="link", campaign_id=campaign_id):
                changes.append(f"rejoined network {network}")
        elif network not in keep and network not in left:
            leave_network(
                session, member_id, network, source="link", campaign_id=campaign_id, detail="preferences page"
            )
            changes.append(f"left network {network}")
    return changes
