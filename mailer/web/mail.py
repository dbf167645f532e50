"""The web app's system mails (the sign-up confirmation, "you are already subscribed", a fresh
preferences link): one message at a time, built with the ``email`` package from a template and sent
through the configured relay.

A mail template (``templates/web/mail/<name>``) starts with a ``Subject:`` line, then a blank line,
then the plain-text body.

The envelope sender is the workspace's untagged bounce address, ``bounces@<list domain>``
(``mailer.tokens.bounce_address``), not the From address: a bounce of a system mail comes back to
the mailbox ``mailer inbound process`` reads, not to the network's From mailbox. It names no
delivery, so such a bounce is recorded as unverified and changes no member.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from typing import TYPE_CHECKING, Any

from mailer import tokens
from mailer.audience.networks import Network, default_network
from mailer.errors import RenderError, TransportError
from mailer.identity import Identity
from mailer.message.template import list_id
from mailer.settings import Settings
from mailer.tokens import bounce_address
from mailer.transport import data_payload, open_transport

if TYPE_CHECKING:
    from mailer.web.context import SendMail
    from mailer.web.pages import Pages


def system_mail(
    pages: Pages,
    settings: Settings,
    template: str,
    *,
    to: str,
    network: Network | None = None,
    unsubscribe_token: str | None = None,
    **context: Any,
) -> EmailMessage:
    """The message of ``web/mail/<template>`` for ``to``, From ``network`` (the workspace's default
    network when None), auto-generated. Every one ends with the network's identity and privacy
    notice (``web/mail/_footer.txt``).

    ``unsubscribe_token`` (a signed ``unsubscribe`` token of the member) marks a marketing mail,
    the welcome: it gets the network's List-Id and, like campaign mail, List-Unsubscribe (https and
    mailto) with List-Unsubscribe-Post (RFC 8058 one-click). Transactional mails (the sign-up
    confirmation, links asked for) have none: they go to whoever asked, member or not.

    Whatever a stranger typed into a form (a name) never goes into these mails: anyone can ask for
    one to any address, so they carry only the organisation's own words and the link.
    """
    network = network or default_network(settings)
    rendered = pages.text(f"mail/{template}", network=network, **context)
    head, sep, body = rendered.partition("\n\n")
    if not sep or not head.startswith("Subject:"):
        raise RenderError("a mail template starts with a Subject: line and a blank line", path=template)
    msg = EmailMessage()
    msg["Subject"] = " ".join(head.removeprefix("Subject:").split())
    msg["From"] = formataddr((network.sender_name, network.from_address))
    msg["To"] = to
    if network.reply_to:
        msg["Reply-To"] = network.reply_to
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=settings.list_domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    if unsubscribe_token is not None:
        _list_headers(msg, settings, network, unsubscribe_token)
    msg.set_content(body.strip("\n") + "\n")
    return msg


def _list_headers(msg: EmailMessage, settings: Settings, network: Network, token: str) -> None:
    """A marketing system mail's list headers, as campaign mail has them (``message/reference.py``)."""
    domain = settings.list_domain.strip()
    identity = Identity(network)
    url = tokens.link(settings.base_url, "unsubscribe", token)
    msg["List-Id"] = f"{identity.list_name} <{list_id(identity.list_name, identity.list_slug, domain)}>"
    msg["List-Unsubscribe"] = f"<{url}>, <mailto:{tokens.mailto_address(token, domain)}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"


def relay_sender(settings: Settings, *, timeout: float = 30.0) -> SendMail:
    """Send one message at a time through ``settings.relays`` (SMTP relays or a Maildir outbox),
    a connection per message: system mails are few. The envelope sender is ``bounce_address``
    (see the module docstring). Raises ``TransportError`` if it is refused."""
    sender = bounce_address(settings.list_domain.strip())

    async def send(message: EmailMessage) -> None:
        recipients = [addr for _name, addr in getaddresses(message.get_all("To", []))]
        payload = data_payload(message.as_bytes(policy=SMTP))
        async with open_transport(
            settings.relays, concurrency=1, timeout=timeout, env=os.environ, local_hostname=settings.ehlo_name
        ) as transport:
            for recipient in recipients:
                result = await transport.send(sender, recipient, payload)
                if not result.ok:
                    raise TransportError(
                        f"the relay did not take the mail to {recipient}: {result.text}",
                        code=result.code,
                        temporary=result.temporary,
                    )

    return send
