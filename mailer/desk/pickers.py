"""What an issue may be sent to, by the names people use: each region, interest and saved segment
with its human name and how many members it reaches (``choices``, counted once per page), and
a typed value matched to its slug whatever its case, by name or by slug (``match``): "Birmingham"
and "BIRMINGHAM" are both ``birmingham``."""

from __future__ import annotations

from dataclasses import dataclass

from mailer.audience import segments
from mailer.audience.networks import Network
from mailer.audience.shape import Shape
from mailer.db import Session
from mailer.errors import MailerError


@dataclass(frozen=True)
class Choice:
    slug: str
    name: str
    members: int


@dataclass(frozen=True)
class Choices:
    regions: list[Choice]
    interests: list[Choice]
    segments: list[Choice]


def _regions_of(shape: Shape, network: Network | None) -> list[str]:
    if network is None or not network.regions:
        return list(shape.regions)
    return [r for r in shape.regions if any(t == r or t in shape.ancestors(r) for t in network.regions)]


def choices(session: Session, shape: Shape, network: Network | None) -> Choices:
    """The regions (of ``network``), interests and saved segments, each with its member count."""

    def counted(expression: str) -> int:
        try:
            return segments.count(session, expression, shape)
        except MailerError:  # a saved segment that no longer compiles reaches nobody
            return 0

    return Choices(
        [Choice(s, shape.regions[s].name, counted(f"region:{s}")) for s in _regions_of(shape, network)],
        [Choice(s, d.name, counted(f"interest:{s}")) for s, d in shape.interests.items()],
        [Choice(s, d.description or d.name, counted(s)) for s, d in shape.segments.items()],
    )


def table(shape: Shape) -> dict[str, dict[str, str]]:
    """For each list field (``regions``, ``interests``): its names and slugs, lower-cased → slug."""
    return {
        "regions": {k.lower(): s for s, d in shape.regions.items() for k in (s, d.name)},
        "interests": {k.lower(): s for s, d in shape.interests.items() for k in (s, d.name)},
    }


def match(text: str, known: dict[str, str]) -> str:
    """``text`` (names separated by commas) with each known name or slug, in any case, made its
    slug; an unknown name is left as typed (the issue's check names it, with a suggestion)."""
    parts = [p.strip() for p in text.split(",")]
    return ", ".join(known.get(p.lower(), p) for p in parts if p)
