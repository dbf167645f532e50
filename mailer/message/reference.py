"""The reference message: what a filled template stands for, built the ordinary way with the
``email`` package. For tests (a filled message must parse to the same thing) and as the benchmark's
baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

from mailer.audience.addresses import clean_name

#: The per-recipient markers a renderer may write, literally, in the text and HTML parts.
from mailer.message.encoding import normalise_text, with_preheader
from mailer.message.template import (
    MessageParts,
    Recipient,
    checked_settings,
    feedback_id,
    list_id,
    message_id,
)
from mailer.settings import Settings
from mailer.slots import fill_slots, greeting_for
from mailer.tokens import LINK_PATHS, mailto_address

# -- the reference ------------------------------------------------------------------------------------


def reference_message(
    parts: MessageParts,
    recipient: Recipient,
    *,
    settings: Settings,
    campaign_slug: str,
    kind: str,
    list_name: str,
    list_slug: str | None = None,
    default_name: str = "",
    date: datetime | None = None,
) -> EmailMessage:
    """The message ``MessageTemplate.build(...).fill(recipient)`` stands for, built the ordinary way
    with the ``email`` package (for tests and as the benchmark's baseline)."""
    domain, base_url, from_addr, reply_addr = checked_settings(settings)
    org = clean_name(settings.organisation)
    name = clean_name(recipient.name)
    unsubscribe = base_url + LINK_PATHS["unsubscribe"] + recipient.unsubscribe_token
    values = {
        "greeting": greeting_for(recipient.first_name, settings.greeting, settings.greeting_without_name),
        "name": name or clean_name(default_name),
        "email": recipient.email,
        "unsubscribe_url": unsubscribe,
        "preferences_url": base_url + LINK_PATHS["preferences"] + recipient.preferences_token,
        "rsvp_token": recipient.rsvp_token,
    }

    msg = EmailMessage()
    msg["From"] = Address(display_name=org, addr_spec=from_addr)
    msg["To"] = Address(display_name=name, addr_spec=recipient.email)
    msg["Reply-To"] = Address(display_name=org, addr_spec=reply_addr)
    msg["Subject"] = clean_name(parts.subject)
    msg["Date"] = (date or datetime.now(UTC)).astimezone(UTC)
    msg["Message-ID"] = message_id(recipient.delivery_id, campaign_slug, domain, keys=settings.secrets)
    msg["List-Id"] = f"{clean_name(list_name)} <{list_id(list_name, list_slug, domain)}>"
    msg["List-Unsubscribe"] = (
        f"<{unsubscribe}>, <mailto:{mailto_address(recipient.unsubscribe_token, domain)}>"
    )
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["List-Help"] = f"<{base_url}/>"
    msg["List-Archive"] = f"<{base_url}/archive/>"
    msg["Feedback-ID"] = feedback_id(campaign_slug, kind, list_name, list_slug, from_addr)
    msg.set_content(fill_slots(normalise_text(parts.text), values, html=False))
    msg.add_alternative(
        fill_slots(normalise_text(with_preheader(parts.html, parts.preheader)), values, html=True),
        subtype="html",
    )
    return msg
