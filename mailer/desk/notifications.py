"""Who the desk tells what, by mail: a sign-in link to the person who asked for one, and a declined
contribution's note to its contributor. Each is a ``Notice``: the mail template, the address and
the words and links it carries; the surface renders and sends it (the web app through its system
mail, after the page has gone, so how long it takes tells nobody anything)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailer.audience.networks import Network
from mailer.desk import sessions
from mailer.desk.inbox import Entry
from mailer.settings import Settings

LINK_MINUTES = int(sessions.LINK_LIFETIME.total_seconds() // 60)


@dataclass(frozen=True)
class Notice:
    """One mail to send: ``template`` (``web/mail/<template>``) for ``to``, from ``network`` (the
    workspace's default when None), with ``context`` for the template."""

    template: str
    to: str
    network: Network | None = None
    context: dict[str, Any] = field(default_factory=dict)


def sign_in_link(settings: Settings, address: str, token: str) -> Notice:
    """The link that signs ``address`` in (``sessions.mail_link`` made ``token``)."""
    url = f"{settings.base_url.rstrip('/')}/desk/sign-in/{token}"
    return Notice("desk_sign_in.txt", address, context={"sign_in_url": url, "minutes": LINK_MINUTES})


def contribution_declined(settings: Settings, network: Network, entry: Entry, note: str) -> Notice | None:
    """The editor's ``note`` on a declined contribution, for its contributor (None when the
    contributor is no longer known)."""
    if not entry.submitter:
        return None
    return Notice(
        "contribution_declined.txt",
        entry.submitter,
        network,
        {
            "kind": "event" if entry.kind == "event" else "news item",
            "title": entry.title,
            "note": note,
            "contribute_url": f"{settings.base_url.rstrip('/')}/desk/networks/{network.slug}/contribute",
        },
    )
