"""Networks: who a mailing speaks as, the one place for its rules.

One organisation, one membership database, many networks (Kent, Central England, …). A network owns
one or more subtrees of the region tree and a sender identity: its name, From and Reply-To, List-Id,
the footer's postal address and charity line, a sign-off, the welcome text, the web pages' heading and
colour, and the DKIM domain it signs with. They are declared in ``lists/networks.toml``::

    [[network]]
    slug = "central-england"
    name = "Central England Network"
    regions = ["central-england"]          # the top regions it owns, with everything below them;
                                           # left out, every region no other network lists
    from_address = "central-england@example.org"
    reply_to = "ce-editor@example.org"     # optional
    postal_address = "…"                   # the footer's postal address (PECR)
    charity = "…"                          # the footer's charity line
    privacy_url = "https://…/privacy"      # its privacy notice (else mailer.toml's privacy_url);
                                           # a path (/privacy/kent) is on the web app
    consent_text = "…"                     # optional: what a sign-up agrees to (else built from
                                           # the name and charity line)

A workspace without ``networks.toml`` has one network, made from ``mailer.toml``'s ``organisation``,
``from_address`` and ``reply_to`` (:func:`default_network`), so a single-network workspace needs
nothing more. A local group (any region in ``regions.toml``) may carry its own ``from_name`` and
``reply_to``, used when a mailing's audience is that group alone, and a ``contact`` line for the
welcome mail.

Each region belongs to at most one network: the one owning its nearest listed ancestor. An issue
belongs to the network it names (``network:``) or, failing that, the one its audience's regions imply
(:func:`campaign_network`); a member to the network of their region
(:func:`member_network`). A mailing speaks as its network, or as the local group its audience is
wholly about when that group is the network's own and has a sender of its own (:func:`group_sender`,
:func:`sender_name`, :func:`reply_to`, :func:`sender_settings`); :mod:`mailer.identity` only turns
that into what the renderer and the message need.

The :class:`Network` value lives with the rest of the plain map in :mod:`mailer.audience.tree`
(re-exported here); this module reads ``networks.toml`` into it and answers over the tree, using
:mod:`mailer.audience.segments` to read an audience: ``tree ← segments ← networks ← shape``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailer.audience import segments
from mailer.audience.tree import SLUG, Network, RegionDef, Shape
from mailer.errors import ConfigError, Problem, suggest, toml_error_location

if TYPE_CHECKING:
    from mailer.settings import Settings

__all__ = [
    "NETWORKS_FILE",
    "Network",
    "audience_regions",
    "campaign_network",
    "check_region_sender",
    "consent_text",
    "default_network",
    "group_sender",
    "load_networks",
    "member_network",
    "named",
    "network_for_issue",
    "networks_of",
    "of_region",
    "privacy_url",
    "privacy_url_problem",
    "regions_of",
    "reply_to",
    "sender_name",
    "sender_settings",
    "wording_version",
]

NETWORKS_FILE = "networks.toml"
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_MULTILINE = {"welcome", "sign_off", "postal_address"}
_LONGEST = 2000

_KEYS = {
    "slug",
    "name",
    "regions",
    "from_name",
    "from_address",
    "reply_to",
    "list_id",
    "postal_address",
    "charity",
    "sign_off",
    "welcome",
    "heading",
    "colour",
    "dkim_domain",
    "privacy_url",
    "consent_text",
}


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "network"


def default_network(settings: Settings) -> Network:
    """The one network of a workspace without ``lists/networks.toml``: ``mailer.toml``'s sender."""
    return Network(
        slug=_slugify(settings.organisation),
        name=settings.organisation,
        from_address=settings.from_address,
        reply_to=settings.reply_to,
        dkim_domain=settings.dkim_domain,
        privacy_url=settings.privacy_url.strip(),
        consent_text=settings.consent_wording.strip(),
    )


# ---------------------------------------------------------------------------------------------
# Reading lists/networks.toml


def _block_lines(text: str) -> list[int]:
    pattern = re.compile(r"^\s*\[\[\s*network\s*\]\]")
    return [i for i, line in enumerate(text.splitlines(), 1) if pattern.match(line)]


def load_networks(path: Path, regions: dict[str, RegionDef], problems: list[Problem]) -> dict[str, Network]:
    """The networks of ``path`` (none if the file is absent); every problem is added to ``problems``."""
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg, line, col = toml_error_location(exc)
        problems.append(Problem(f"not valid TOML: {msg}", path=path, line=line, column=col))
        return {}
    entries = data.get("network", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append(Problem("expected [[network]] tables", path=path, field="network"))
        return {}
    lines = _block_lines(text)
    networks: dict[str, Network] = {}
    owner: dict[str, str] = {}  # top region -> network slug
    for i, entry in enumerate(entries):
        line = lines[i] if i < len(lines) else None
        network = _one(entry, path, line, regions, problems)
        if network is None:
            continue
        if network.slug in networks:
            problems.append(
                Problem(f"duplicate network {network.slug!r}", path=path, line=line, field="slug")
            )
            continue
        for region in network.regions:
            if region in owner:
                problems.append(
                    Problem(
                        f"region {region!r} is claimed by networks {owner[region]!r} and {network.slug!r}",
                        path=path,
                        line=line,
                        field="regions",
                        hint="a region belongs to one network",
                    )
                )
            owner[region] = network.slug
        networks[network.slug] = network
    owning_all = [n.slug for n in networks.values() if not n.regions]
    if len(owning_all) > 1:
        problems.append(
            Problem(
                f"networks {', '.join(map(repr, owning_all))} list no regions: only one network may own "
                "every region no other network lists",
                path=path,
                field="regions",
                hint='give each network its top regions, e.g. regions = ["kent"]',
            )
        )
    # A network's region may not sit inside another network's subtree (it would belong to both).
    for region, slug in owner.items():
        current = regions[region].parent if region in regions else None
        while current is not None and current in regions:
            if current in owner and owner[current] != slug:
                problems.append(
                    Problem(
                        f"region {region!r} of network {slug!r} lies inside {current!r} of network "
                        f"{owner[current]!r}",
                        path=path,
                        line=lines[list(networks).index(slug)] if slug in networks else None,
                        field="regions",
                        hint="a region belongs to one network: give each network separate subtrees",
                    )
                )
                break
            current = regions[current].parent
    return networks


def _one(
    entry: dict[str, Any],
    path: Path,
    line: int | None,
    regions: dict[str, RegionDef],
    problems: list[Problem],
) -> Network | None:
    def problem(message: str, field: str, hint: str | None = None) -> None:
        problems.append(Problem(message, path=path, line=line, field=field, hint=hint))

    for key in sorted(set(entry) - _KEYS):
        problem(f"unknown key {key!r}", key, suggest(key, _KEYS, "keys"))
    values: dict[str, str] = {}
    for key in sorted(_KEYS - {"regions"}):
        value = entry.get(key, "")
        if not isinstance(value, str):
            problem(f"expected text, got {value!r}", key)
            value = ""
        values[key] = value.strip() if key not in _MULTILINE else value.strip("\n")
    slug = values.pop("slug")
    ok = _plain_text(values, problem)
    if not SLUG.match(slug):
        problem(
            f"bad network slug {slug!r}",
            "slug",
            "lower-case letters, digits and hyphens, e.g. central-england",
        )
        ok = False
    if not values["name"]:
        problem("a network needs a name", "name", 'e.g. name = "Central England Network"')
        ok = False
    for key in ("from_address", "reply_to"):
        if (values[key] or key == "from_address") and not _ADDRESS.match(values[key]):
            problem(f"{key} {values[key]!r} is not an email address", key, f'e.g. {key} = "news@example.org"')
            ok = False
    ok = _formats(values, problem) and ok
    raw = entry.get("regions", [])
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        problem("regions must list the top regions the network owns", "regions", 'e.g. regions = ["kent"]')
        return None
    for region in raw:
        if region not in regions:
            problem(f"unknown region {region!r}", "regions", suggest(region, regions, "regions"))
            ok = False
    if not ok:
        return None
    return Network(
        slug=slug, regions=tuple(raw), **{k: v for k, v in values.items() if v} | _required(values)
    )


def _formats(values: dict[str, str], problem: Callable[[str, str, str | None], None]) -> bool:
    """Whether ``list_id``, ``privacy_url`` and ``colour``, where given, have their forms."""
    ok = True
    if values["list_id"] and not SLUG.match(values["list_id"]):
        problem(f"bad list_id {values['list_id']!r}", "list_id", "lower-case letters, digits and hyphens")
        ok = False
    if values["privacy_url"] and (why := privacy_url_problem(values["privacy_url"])):
        problem(why, "privacy_url", 'e.g. privacy_url = "https://your-network.org/privacy"')
        ok = False
    if values["colour"] and not _COLOUR.match(values["colour"]):
        problem(f"colour {values['colour']!r} is not #rrggbb", "colour", 'e.g. colour = "#ffde00"')
        ok = False
    return ok


def _plain_text(values: dict[str, str], problem: Callable[[str, str, str | None], None]) -> bool:
    """Whether every value is plain text of a sane length; a problem for each that is not."""
    ok = True
    for key, value in values.items():
        allowed = "\n" if key in _MULTILINE else ""
        if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value) or len(value) > _LONGEST:
            problem(
                f"{key} holds control characters or is over {_LONGEST} characters",
                key,
                "plain text only: it goes into mail headers and footers",
            )
            ok = False
    return ok


def check_region_sender(region: RegionDef, path: Path, line: int | None, problems: list[Problem]) -> None:
    """A local group's ``from_name``, ``reply_to`` and ``contact`` in regions.toml: plain text, and
    ``reply_to`` an address (they go into headers and the welcome mail)."""
    for key in ("from_name", "reply_to", "contact"):
        value = getattr(region, key)
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > _LONGEST:
            problems.append(
                Problem(
                    f"{key} of region {region.slug!r} holds control characters",
                    path=path,
                    line=line,
                    field=key,
                )
            )
    if region.reply_to and not _ADDRESS.match(region.reply_to):
        problems.append(
            Problem(
                f"reply_to {region.reply_to!r} of region {region.slug!r} is not an email address",
                path=path,
                line=line,
                field="reply_to",
                hint='e.g. reply_to = "group@example.org"',
            )
        )


def _required(values: dict[str, str]) -> dict[str, str]:
    return {"name": values["name"], "from_address": values["from_address"]}


# ---------------------------------------------------------------------------------------------
# The privacy notice and the consent wording (docs/decisions.md, Privacy and consent)

_URL_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")


def privacy_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a privacy notice's address (None: it can). An http(s) URL with a
    host, or a path on the web app starting with one ``/``; never another scheme (javascript:,
    data:), spaces, quotes or angle brackets. Whether it must be https is the readiness check's."""
    if not _URL_CHARS.match(url) or "'" in url:
        return f"privacy_url {url[:80]!r} holds spaces, quotes or characters a link cannot carry"
    if url.startswith("/"):
        return None if not url.startswith("//") else f"privacy_url {url[:80]!r} is not a path or a URL"
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        return f"privacy_url {url[:80]!r} is not an https:// address"
    return None


def privacy_url(network: Network, settings: Settings) -> str:
    """The address of the privacy notice ``network``'s mail and pages link to: its own
    ``privacy_url``, else ``mailer.toml``'s; a path is on the web app (``base_url``). Empty when
    neither is set (``readiness`` refuses a send to members then). A value that is not a link
    (only ``mailer.toml``'s can be: networks.toml's are checked when read) gives empty."""
    url = (network.privacy_url or settings.privacy_url).strip()
    if not url or privacy_url_problem(url):
        return ""
    return settings.base_url.rstrip("/") + url if url.startswith("/") else url


def consent_text(network: Network, settings: Settings) -> str:
    """What a sign-up to ``network`` agrees to: its ``consent_text``, else ``mailer.toml``'s
    ``consent_wording``, else wording naming the network and its charity line."""
    own = network.consent_text.strip() or settings.consent_wording.strip()
    if own:
        return own
    charity = network.charity.strip()
    if charity and charity[-1] not in ".!?":
        charity += "."
    return " ".join(
        part
        for part in (
            f"I agree that {network.name} may send me its newsletter and action alerts by email.",
            charity,
            "I can unsubscribe at any time with the link in every message.",
        )
        if part
    )


def wording_version(wording: str) -> str:
    """The version of a consent wording: the first 8 hex digits of its SHA-256, so that the log can
    say which words a sign-up agreed to and a changed wording is a new version."""
    return hashlib.sha256(" ".join(wording.split()).encode("utf-8")).hexdigest()[:8]


# ---------------------------------------------------------------------------------------------
# Which network


def networks_of(shape: Shape, settings: Settings) -> list[Network]:
    """The workspace's networks, in file order (the default one when none are declared)."""
    return list(shape.networks.values()) or [default_network(settings)]


def named(shape: Shape, settings: Settings, slug: str) -> Network:
    """The network ``slug``; ConfigError with the known names if there is none."""
    for network in networks_of(shape, settings):
        if network.slug == slug:
            return network
    known = [n.slug for n in networks_of(shape, settings)]
    raise ConfigError(f"unknown network {slug!r}", field="network", hint=suggest(slug, known, "networks"))


def of_region(shape: Shape, settings: Settings, region: str | None) -> Network | None:
    """The network ``region`` belongs to: the one owning its nearest listed ancestor. With no
    networks declared, the default one; for a region outside every listed subtree (or none), the
    network that lists no regions if there is one, else None."""
    if not shape.networks:
        return default_network(settings)
    rest = next((n for n in shape.networks.values() if not n.regions), None)
    if region is None or region not in shape.regions:
        return rest
    owners = {r: n for n in shape.networks.values() for r in n.regions}
    for slug in shape.ancestors(region):
        if slug in owners:
            return owners[slug]
    return rest


def audience_regions(audience: str, shape: Shape) -> set[str]:
    """The regions an audience expression names positively (``region:x`` not under ``not``)."""
    found: set[str] = set()

    def walk(node: segments.Node, negated: bool) -> None:
        if isinstance(node, segments.RegionIs) and not negated:
            found.add(node.slug)
        elif isinstance(node, segments.Not):
            walk(node.operand, not negated)
        elif isinstance(node, segments.And | segments.Or):
            for operand in node.operands:
                walk(operand, negated)

    walk(segments.resolve(segments.parse(audience), shape), False)
    return found


def network_for_issue(shape: Shape, settings: Settings, declared: str | None, audience: str) -> Network:
    """The network an issue speaks as: the one it names, else the one its audience's regions imply,
    else the only one. ConfigError when that is unknown or ambiguous, with the fix."""
    if declared:
        return named(shape, settings, declared)
    networks = networks_of(shape, settings)
    if len(networks) == 1:
        return networks[0]
    implied = {n.slug: n for r in audience_regions(audience, shape) if (n := of_region(shape, settings, r))}
    if len(implied) == 1:
        return next(iter(implied.values()))
    names = ", ".join(n.slug for n in networks)
    if implied:
        why = f"its audience reaches regions of {len(implied)} networks ({', '.join(sorted(implied))})"
    else:
        why = "its audience names no region of any network"
    raise ConfigError(
        f"which network does this issue speak as? {why}",
        field="network",
        hint=f"add `network: <slug>` to the issue file; this workspace's networks: {names}",
    )


def campaign_network(shape: Shape, settings: Settings, *names: str | None, audience: str = "all") -> Network:
    """The network a campaign or issue speaks as: the one rule for the sender, the archive, the
    desk and the welcome, so that they never disagree.

    - A workspace without ``lists/networks.toml`` has one network, whatever ``names`` say (the
      issue schema allows any ``network:``, and a campaign row of such a workspace names "").
    - Else the first of ``names`` that is not empty, in the caller's order of authority (the
      campaign row's ``network``, then the issue file's ``network:``); ConfigError if it is unknown.
    - Else the network ``audience``'s regions imply, else the workspace's only one; ConfigError
      when that is ambiguous (:func:`network_for_issue`). ``audience`` defaults to everyone, which
      implies no region: pass the issue's own whenever no name may be given.

    Callers that must show something whatever (the archive) catch the error and choose their
    fallback; callers that must refuse (a send) report it with the issue file's line."""
    if not shape.networks:
        return default_network(settings)
    declared = next((name for name in names if name), None)
    return network_for_issue(shape, settings, declared, audience)


def member_network(shape: Shape, settings: Settings, region: str | None) -> Network:
    """The network a member living in ``region`` belongs to (their welcome's and their mails'
    sender): the one owning the region; the organisation's (the default network) for a region
    outside every declared network, an unknown one, or none."""
    return of_region(shape, settings, region) or default_network(settings)


def group_sender(shape: Shape, audience: str, network: Network | None = None) -> RegionDef | None:
    """The local group an audience is wholly about, when that region has its own ``from_name`` or
    ``reply_to`` (an audience of exactly one ``region:`` term, alone or narrowed by ``and``). Given
    the mailing's ``network``, only a group of that network: another network's never lends its name."""
    node = segments.resolve(segments.parse(audience), shape)
    if isinstance(node, segments.And):
        regions = [o for o in node.operands if isinstance(o, segments.RegionIs)]
        node = regions[0] if len(regions) == 1 else node
    if not isinstance(node, segments.RegionIs):
        return None
    region = shape.regions.get(node.slug)
    if region is None or not (region.from_name or region.reply_to):
        return None
    if network is not None and node.slug not in regions_of(shape, network):
        return None
    return region


def regions_of(shape: Shape, network: Network) -> set[str]:
    """Every region ``network`` owns: its top regions and everything below them (every region for
    a network that lists none)."""
    if not network.regions:
        return set(shape.regions)
    return {slug for slug in shape.regions if set(shape.ancestors(slug)) & set(network.regions)}


def sender_name(network: Network, group: RegionDef | None = None) -> str:
    """The name in From and Reply-To (and the footer's "Sent by"): the local group's own, else the
    network's."""
    return group.from_name if group is not None and group.from_name else network.sender_name


def reply_to(network: Network, group: RegionDef | None = None) -> str:
    """The Reply-To address: the local group's own, else the network's (empty: replies go to From)."""
    return group.reply_to if group is not None and group.reply_to else network.reply_to


def sender_settings(settings: Settings, network: Network, group: RegionDef | None = None) -> Settings:
    """``settings`` speaking as ``network`` (or as its local ``group``): From, Reply-To, the name
    shown (``organisation``) and the DKIM domain. Everything else is the workspace's."""
    return replace(
        settings,
        organisation=sender_name(network, group),
        from_address=network.from_address,
        reply_to=reply_to(network, group),
        dkim_domain=network.signing_domain,
    )
