"""The workspace's map as plain data: the region tree, interests, saved segments, postcode areas and
the networks that own subtrees of the tree.

Typed values and lookups over them, nothing else: no database, no file reading, and no import of
any other audience module. The modules that use the map import it, in one direction::

    tree ← segments ← networks ← shape

``segments`` compiles expressions over a :class:`Shape`; ``networks`` reads ``lists/networks.toml``
and answers "which network, speaking as whom" over it (using ``segments`` to read an audience);
``shape`` reads ``lists/*.toml`` into a :class:`Shape` (networks.toml through ``networks``) and
syncs it to the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
POSTCODE_AREA = re.compile(r"^([A-Z]{1,2})[0-9]")
DEFAULT_BAND = "#ffde00"
DEFAULT_WELCOME = (
    "Thank you for joining {network}. Every month we send a newsletter with what is happening near you, "
    "and now and then an action alert when something cannot wait."
)


@dataclass(frozen=True)
class RegionDef:
    """A region. A local group's region may carry its own sender name and Reply-To (used when a
    mailing's audience is that group alone) and a ``contact`` line for the welcome mail."""

    slug: str
    name: str
    parent: str | None = None
    from_name: str = ""
    reply_to: str = ""
    contact: str = ""
    renamed_from: str = ""  # the slug it had, kept for a sync so that its members follow it


@dataclass(frozen=True)
class InterestDef:
    slug: str
    name: str
    description: str = ""
    renamed_from: str = ""


@dataclass(frozen=True)
class SegmentDef:
    name: str
    expression: str
    description: str = ""


@dataclass(frozen=True)
class Network:
    """A network as ``lists/networks.toml`` declares it. ``regions``: the top regions it owns (empty
    for the network that owns every region no other lists). ``list_id`` is the left part of its
    List-Id (``<list_id>.<list_domain>``). Which network a mailing or a member belongs to, and who a
    mailing speaks as, are :mod:`mailer.audience.networks`' rules."""

    slug: str
    name: str
    from_address: str
    regions: tuple[str, ...] = ()
    from_name: str = ""
    reply_to: str = ""
    list_id: str = ""
    postal_address: str = ""
    charity: str = ""
    sign_off: str = ""
    welcome: str = ""
    heading: str = ""
    colour: str = DEFAULT_BAND
    dkim_domain: str = ""
    privacy_url: str = ""
    consent_text: str = ""

    @property
    def sender_name(self) -> str:
        """The display name in From and Reply-To."""
        return self.from_name or self.name

    @property
    def list_slug(self) -> str:
        return self.list_id or self.slug

    @property
    def title(self) -> str:
        """The heading of its web pages."""
        return self.heading or self.name

    @property
    def signing_domain(self) -> str:
        """The DKIM d= domain: ``dkim_domain``, else the From address's domain."""
        return (self.dkim_domain or self.from_address.rpartition("@")[2]).strip().lower()

    def welcome_text(self) -> str:
        return (self.welcome or DEFAULT_WELCOME).replace("{network}", self.name).strip()


@dataclass(frozen=True)
class Shape:
    """Regions, interests, saved segments, postcode areas and networks of a workspace."""

    regions: dict[str, RegionDef] = field(default_factory=dict)
    interests: dict[str, InterestDef] = field(default_factory=dict)
    segments: dict[str, SegmentDef] = field(default_factory=dict)
    postcode_areas: dict[str, str] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)

    def ancestors(self, slug: str) -> list[str]:
        """``slug`` and every region above it, nearest first."""
        out = []
        current: str | None = slug
        while current is not None:
            out.append(current)
            current = self.regions[current].parent
        return out

    def descendants(self, slug: str) -> list[str]:
        """``slug`` and every region below it."""
        children: dict[str | None, list[str]] = {}
        for r in self.regions.values():
            children.setdefault(r.parent, []).append(r.slug)
        out, todo = [], [slug]
        while todo:
            s = todo.pop()
            out.append(s)
            todo.extend(children.get(s, []))
        return out

    def path(self, slug: str) -> str:
        """``/south-east/kent/`` for kent: a prefix of every descendant's path."""
        return "/" + "/".join(reversed(self.ancestors(slug))) + "/"

    def label(self, slug: str) -> str:
        """``South East › Kent`` for kent."""
        return " › ".join(self.regions[s].name for s in reversed(self.ancestors(slug)))

    def region_for_postcode(self, postcode: str) -> str | None:
        """The region of a UK postcode's area (``ME14 1HH`` → the ME area's region), if known."""
        m = POSTCODE_AREA.match(postcode.strip().upper())
        return self.postcode_areas.get(m.group(1)) if m else None

    def walk(self) -> Iterator[tuple[int, RegionDef]]:
        """Every region with its depth, parents before children, in file order."""
        children: dict[str | None, list[RegionDef]] = {}
        for r in self.regions.values():
            children.setdefault(r.parent, []).append(r)

        def visit(parent: str | None, depth: int) -> Iterator[tuple[int, RegionDef]]:
            for r in children.get(parent, []):
                yield depth, r
                yield from visit(r.slug, depth + 1)

        yield from visit(None, 0)
