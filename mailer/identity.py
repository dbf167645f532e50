"""A mailing's identity as the renderer and the message use it.

Who a mailing speaks as is :mod:`mailer.audience.networks`' rule (the network an issue names or its
audience implies, and the local group it is wholly about); this module only turns that choice into
an :class:`Identity`: the footer (who sends it, the postal address and charity line, the privacy
notice), the sign-off
and the header band's colours for the renderer; ``identity.settings(settings)`` (From, Reply-To,
the DKIM domain) and ``list_name``/``list_slug`` (List-Id, Feedback-ID) for the message template.

A workspace without ``lists/networks.toml`` has one network made from ``mailer.toml``
(:func:`default_identity`): its List-Id, footer and colours are what they were before networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailer.audience import networks
from mailer.audience.networks import Network
from mailer.audience.shape import load_shape
from mailer.audience.tree import DEFAULT_BAND
from mailer.errors import ConfigError

if TYPE_CHECKING:
    from mailer.audience.tree import RegionDef, Shape
    from mailer.settings import Settings

BLACK = "#000000"
WHITE = "#ffffff"


@dataclass(frozen=True)
class Identity:
    """A network, and the local group a mailing is for alone (with its own sender), if any."""

    network: Network
    group: RegionDef | None = None

    @property
    def sender_name(self) -> str:
        """The name in From and Reply-To, and the footer's "Sent by"."""
        return networks.sender_name(self.network, self.group)

    @property
    def reply_to(self) -> str:
        return networks.reply_to(self.network, self.group)

    @property
    def list_name(self) -> str:
        """The List-Id's phrase: the network's name (a local group's mail is its network's list)."""
        return self.network.name

    @property
    def list_slug(self) -> str | None:
        """The List-Id's left part. None for the default network of a workspace without networks,
        whose List-Id is made from the organisation's name, as it was before networks."""
        if self.network.list_id or self.network.regions:
            return self.network.list_slug
        return None

    @property
    def sign_off(self) -> str:
        return self.network.sign_off.strip()

    def privacy_url(self, settings: Settings) -> str:
        """The privacy notice the footer links to (``networks.privacy_url``: the network's, else
        ``mailer.toml``'s; empty when neither is set)."""
        return networks.privacy_url(self.network, settings)

    def settings(self, settings: Settings) -> Settings:
        """``settings`` speaking as this identity: From, Reply-To, ``organisation`` and DKIM domain."""
        return networks.sender_settings(settings, self.network, self.group)

    def as_dict(self) -> dict[str, str]:
        return {
            "network": self.network.slug,
            "name": self.network.name,
            "sender": self.sender_name,
            "from_address": self.network.from_address,
            "reply_to": self.reply_to or self.network.from_address,
            "group": self.group.slug if self.group is not None else "",
            "dkim_domain": self.network.signing_domain,
        }


def default_identity(settings: Settings) -> Identity:
    """The identity of a workspace's single network (``mailer.toml``'s sender)."""
    return Identity(networks.default_network(settings))


def issue_identity(
    shape: Shape,
    settings: Settings,
    declared: str | None,
    audience: str,
    *,
    path: Path | None = None,
    line: int | None = None,
) -> Identity:
    """Who an issue speaks as: the network it names (``network:``) or its audience implies, and the
    local group its audience is alone about. ConfigError naming the file, ``network:`` and the fix
    when the network is unknown or ambiguous. The rules are :mod:`mailer.audience.networks`'
    (``campaign_network``, ``group_sender``)."""
    try:
        network = networks.campaign_network(shape, settings, declared, audience=audience)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path, line=line, field="network", hint=exc.problem.hint) from None
    return Identity(network, networks.group_sender(shape, audience, network))


def campaign_identity(
    settings: Settings, network: str, audience: str, *, shape: Shape | None = None
) -> Identity:
    """The identity of a campaign as stored (``Campaign.network``, the issue's audience), for
    building its messages at send time: what :func:`issue_identity` gave when it was prepared."""
    if shape is None:
        lists = settings.path("lists")
        if not (lists / "regions.toml").exists():
            return default_identity(settings)
        shape = load_shape(lists)
    return issue_identity(shape, settings, network, audience)


# -- colours: the templates' defaults, and the header band in the network's colour -----------------

COLOURS = {
    "text": "#1a1a1a",
    "background": "#ffffff",
    "page": "#f4f4f4",
    "band": DEFAULT_BAND,
    "band_text": "#000000",
    "link": "#0b4f8a",
    "muted": "#404040",
    "button": "#1a1a1a",
    "button_text": "#ffffff",
    "button_border": "#ffde00",
    "rule": "#d9d9d9",
}
"""The default templates' colours: dark text on light backgrounds (WCAG AA, checked by a test). The
button's yellow border keeps it visible where a client forces dark mode without asking (its dark
fill would vanish into a darkened page)."""

DARK_COLOURS = {
    "text": "#e8e8e8",
    "background": "#1e1e1e",
    "page": "#121212",
    "band": "#ffde00",
    "band_text": "#000000",
    "link": "#8cc8ff",
    "muted": "#c8c8c8",
    "button": "#ffde00",
    "button_text": "#000000",
    "button_border": "#ffde00",
    "rule": "#444444",
}
"""The same roles when the reader's client asks for dark mode (``prefers-color-scheme: dark``):
light text on dark backgrounds, every pair at least 4.5:1 (checked in Chromium by a test)."""


def band_colours(network: Network) -> tuple[dict[str, str], dict[str, str]]:
    """The templates' colours (light, dark) with the header band in ``network``'s colour and its
    text black or white, whichever keeps at least 4.5:1 on it."""
    band = (network.colour or COLOURS["band"]).lower()
    band_text = text_on(band)
    return (
        {**COLOURS, "band": band, "band_text": band_text},
        {**DARK_COLOURS, "band": band, "band_text": band_text},
    )


def luminance(colour: str) -> float:
    """The relative luminance of ``#rrggbb`` (WCAG 2.1)."""
    value = colour.lstrip("#")
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def text_on(background: str) -> str:
    """Black or white, whichever reads better on ``background``: always at least 4.5:1 (the
    better of the two is never below 4.58:1)."""
    return BLACK if contrast(BLACK, background) >= contrast(WHITE, background) else WHITE


__all__ = [
    "COLOURS",
    "DARK_COLOURS",
    "Identity",
    "band_colours",
    "campaign_identity",
    "contrast",
    "default_identity",
    "issue_identity",
    "luminance",
    "text_on",
]
