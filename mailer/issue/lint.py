"""Warnings an issue file alone can give, found on its data as read, valid or not.

``file_warnings`` walks the file's values (the YAML as read, or a validated issue dumped back to the
same shape) and warns, each warning with its field and line:

- pasted markup in any text: ``<script``, ``<iframe``, ``<style`` and other raw HTML tags, ``on…=``
  event handlers. Bodies are Markdown with raw HTML off, so none of it runs, but readers see it
  as text;
- ``javascript:`` (or ``vbscript:``, ``data:text/html``) in any text: shown as text, never a link;
- ``http://`` links (``https://`` is expected; some mail programs warn about plain http);
- events over before the issue's date (an event over several days only once its last day is).

Because it needs no validated model, ``mailer campaigns check`` reports these even when the file
has errors: every warning of what can be read, with every error, in one pass.

``network_problems`` adds what the workspace's networks say (docs/decisions.md, Networks): an error when the
issue's network is unknown or ambiguous (the fix is a ``network:`` line), and a warning for each item, event
or calendar entry whose regions lie outside that network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticCustomError

from mailer.errors import MailerError, Problem
from mailer.issue.schema import _end, _when
from mailer.issue.yaml_loader import Loc, field_name

if TYPE_CHECKING:
    from mailer.audience.networks import Network
    from mailer.audience.shape import Shape
    from mailer.settings import Settings

_HTTP_IN_TEXT = re.compile(r"http://[^\s)>\]\"']+")
# Tags that carry code or change the page: named on their own.
_ACTIVE_TAG = re.compile(
    r"<\s*/?\s*(script|iframe|style|object|embed|applet|form|svg|math|link|meta|base|frame|frameset)\b",
    re.IGNORECASE,
)
# DOM event handler attributes (onclick=, onerror=, onload=, …): "on" and an event's name.
_EVENTS = (
    r"abort|afterprint|animation(?:end|iteration|start)|auxclick|beforeinput|beforeprint|beforeunload"
    r"|blur|cancel|canplay(?:through)?|change|click|close|contextmenu|copy|cuechange|cut|dblclick"
    r"|drag(?:end|enter|leave|over|start)?|drop|durationchange|emptied|ended|error|focus(?:in|out)?"
    r"|formdata|hashchange|input|invalid|key(?:down|press|up)|load(?:eddata|edmetadata|start)?"
    r"|message(?:error)?|mouse(?:down|enter|leave|move|out|over|up|wheel)|offline|online|page(?:hide|show)"
    r"|paste|pause|play(?:ing)?|pointer(?:cancel|down|enter|leave|move|out|over|up)|popstate|progress"
    r"|ratechange|reset|resize|scroll(?:end)?|search|seek(?:ed|ing)|select(?:start|ionchange)?|show"
    r"|stalled|storage|submit|suspend|timeupdate|toggle|touch(?:cancel|end|move|start)"
    r"|transition(?:cancel|end|run|start)|unload|volumechange|waiting|wheel"
)
_HANDLER = re.compile(rf"(?<![\w-])on(?:{_EVENTS})\s*=", re.IGNORECASE)
# Any other HTML tag: <b>, </p>, <br/>, <a href="…">. Markdown's autolinks (<https://…>,
# <name@example.org>) are not tags: a colon or @ follows the name.
_TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9-]*)(?:\s[^<>]*)?/?>")
_SCRIPT_URL = re.compile(r"\b(?:java|vb)script\s*:|\bdata\s*:\s*text/html", re.IGNORECASE)
# Markdown code (`<b>`, fenced blocks) shows as written, as the editor means it: not pasted markup.
_CODE = re.compile(r"^(```|~~~).*?^\1|`[^`\n]+`", re.MULTILINE | re.DOTALL)

MARKUP_HINT = (
    "delete it; format with Markdown instead: **bold**, [link text](https://…), a blank line for a paragraph"
)
SCRIPT_HINT = "delete it, or give the https:// address of the page"
HTTP_HINT = "use https:// if the site supports it; some mail programs warn about http:// links"
PAST_HINT = "it will be shown as past; check the date, or remove the event"


def _strings(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every text value of ``data`` with its location, in the file's order."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, (*loc, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, (*loc, i))
    elif isinstance(data, str):
        yield loc, data


def markup_in(text: str) -> list[str]:
    """The pasted markup in ``text``, each kind once: ``<script>``, ``onclick=``, ``<b>`` …"""
    text = _CODE.sub("", text)
    found: list[str] = []

    def add(shown: str) -> None:
        if shown not in found:
            found.append(shown)

    for m in _ACTIVE_TAG.finditer(text):
        add(f"<{m.group(1).lower()}>")
    for m in _HANDLER.finditer(text):
        add(re.sub(r"\s+", "", m.group(0)).lower())
    for m in _TAG.finditer(text):
        add(f"<{m.group(1).lower()}>")
    return found


def script_links_in(text: str) -> list[str]:
    """``javascript:`` (and the like) in ``text``, each with what follows it up to a space (cut short)."""
    text = _CODE.sub("", text)
    out = []
    for m in _SCRIPT_URL.finditer(text):
        rest = re.match(r"[^\s\"'<>]*", text[m.end() :])
        shown = m.group(0) + (rest.group(0) if rest else "")
        # Not the sentence around it: a full stop, or a bracket that closes a Markdown link.
        while len(shown) > len(m.group(0)) and (
            shown[-1] in ".,;:!?" or (shown[-1] == ")" and shown.count(")") > shown.count("("))
        ):
            shown = shown[:-1]
        out.append(shown if len(shown) <= 40 else shown[:39] + "…")
    return out


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _parsed(parse: Callable[[Any], Any], value: Any) -> Any:
    try:
        return parse(value)
    except (PydanticCustomError, ValueError, TypeError):
        return None


def last_day(event: dict[str, Any]) -> tuple[date, bool] | None:
    """An event's last day as the file gives it, and whether it runs over several days; None if
    its start does not parse (an error says so)."""
    start = _parsed(_when, event.get("start"))
    if start is None:
        return None
    end = _parsed(_end, event.get("end")) if event.get("end") is not None else None
    first = start.date() if isinstance(start, datetime) else start
    if isinstance(end, datetime):
        last = end.date()
    elif isinstance(end, date) and not isinstance(start, datetime):
        last = end
    else:
        last = first
    if isinstance(end, time) or last < first:
        last = first
    return last, last > first


def _events(data: dict[str, Any]) -> Iterator[tuple[Loc, dict[str, Any]]]:
    items = data.get("items")
    if isinstance(items, list):
        for i, item in enumerate(items):
            events = item.get("events") if isinstance(item, dict) else None
            if isinstance(events, list):
                for j, event in enumerate(events):
                    if isinstance(event, dict):
                        yield ("items", i, "events", j), event
    calendar = data.get("calendar")
    if isinstance(calendar, list):
        for j, event in enumerate(calendar):
            if isinstance(event, dict):
                yield ("calendar", j), event


def file_warnings(data: dict[str, Any], path: Path, locate: Callable[[Loc], int | None]) -> list[Problem]:
    """The warnings of an issue file's ``data`` (see the module's docstring), sorted by line.

    ``locate`` gives the line of a location (``("items", 3, "body")``)."""
    out: list[Problem] = []

    def warn(message: str, loc: Loc, hint: str) -> None:
        out.append(
            Problem(
                message, path=path, line=locate(loc), field=field_name(loc), hint=hint, severity="warning"
            )
        )

    for loc, text in _strings(data):
        markup = markup_in(text)
        if markup:
            warn(
                f"pasted markup {', '.join(markup[:3])}{' …' if len(markup) > 3 else ''}: "
                "readers see it as text (none of it runs)",
                loc,
                MARKUP_HINT,
            )
        for shown in script_links_in(text):
            warn(f"{shown} is not a link: readers see it as text", loc, SCRIPT_HINT)
        for url in _HTTP_IN_TEXT.findall(text):
            warn(f"insecure link {url}", loc, HTTP_HINT)

    issue_day = _day(data.get("date"))
    if issue_day is not None and data.get("kind") == "newsletter":
        for loc, event in _events(data):
            found = last_day(event)
            if found is None:
                continue
            last, several = found
            if last < issue_day:
                verb = "ends on" if several else "is on"
                warn(
                    f"the event {verb} {last:%Y-%m-%d}, before the issue's date {issue_day:%Y-%m-%d}",
                    (*loc, "end" if several else "start"),
                    PAST_HINT,
                )
    out.sort(key=lambda p: p.line or 0)  # stable: the file's order within a line
    return out


def network_problems(
    data: dict[str, Any],
    path: Path,
    locate: Callable[[Loc], int | None],
    shape: Shape,
    settings: Settings | None,
    *,
    skip: frozenset[str] = frozenset(),
) -> list[Problem]:
    """The network an issue file's ``data`` speaks as, checked against the workspace's networks:
    an error at ``network`` when it is unknown or ambiguous, and a warning for each item, event or
    calendar entry (and the audience) naming regions outside it. ``skip``: fields that have an error
    already (an unknown network or a bad audience is reported once). A workspace without
    ``lists/networks.toml`` is one network: nothing to check."""
    from mailer.audience import networks

    if not shape.networks:
        return []  # one network: `network:` names nothing to choose between (the schema allows any)
    declared = data.get("network") if isinstance(data.get("network"), str) else None
    audience = data.get("audience", "all" if data.get("kind") != "alert" else None)
    if "network" in skip or "audience" in skip or not isinstance(audience, str):
        return []
    from mailer.settings import Settings

    settings = settings or Settings()
    try:
        network = networks.campaign_network(shape, settings, declared, audience=audience)  # the send's rule
    except MailerError as exc:
        if exc.field != "network":
            return []  # a bad audience: the file's errors say so
        at = locate(("network",) if "network" in data else ("audience",))
        return [Problem(exc.message, path=path, line=at, field="network", hint=exc.problem.hint)]
    hint = f"check the regions, or the issue's network: the mail speaks as {network.name}"

    def warn(message: str, loc: Loc) -> Problem:
        line, field = locate(loc), field_name(loc)
        return Problem(message, path=path, line=line, field=field, hint=hint, severity="warning")

    out: list[Problem] = []
    named = _strays(sorted(networks.audience_regions(audience, shape)), network, shape, settings)
    if named:
        out.append(
            warn(f"the audience names {named}, outside this issue's network {network.name}", ("audience",))
        )
    for regions, loc, what in _region_lists(data):
        found = _strays(regions, network, shape, settings)
        if found:
            out.append(
                warn(f"{what} is for {found}, outside this issue's network {network.name}", (*loc, "regions"))
            )
    return out


def _strays(regions: list[str], network: Network, shape: Shape, settings: Settings) -> str:
    """The regions outside ``network``, each with its own network: "lewes (no network)"."""
    from mailer.audience import networks

    found = []
    for region in regions:
        # Which network owns the region, None for none (``of_region``, not ``member_network``, which
        # would name the organisation's): a stray region is named with its own network.
        owner = networks.of_region(shape, settings, region) if region in shape.regions else network
        if owner is None or owner.slug != network.slug:
            found.append(f"{region} ({owner.name if owner is not None else 'no network'})")
    return ", ".join(found)


def _region_lists(data: dict[str, Any]) -> Iterator[tuple[list[str], Loc, str]]:
    """(its regions, where it is, what it is) of each item, event and calendar entry of ``data`` (the
    file as read, so anything may be of the wrong type) that names regions."""

    def named(entry: dict[str, Any], loc: Loc, what: str) -> Iterator[tuple[list[str], Loc, str]]:
        regions = entry.get("regions")
        if isinstance(regions, list):
            yield [r for r in regions if isinstance(r, str)], loc, what

    items = data.get("items")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        yield from named(item, ("items", i), f"item {item.get('id')!r}")
        events = item.get("events")
        for j, event in enumerate(events if isinstance(events, list) else []):
            if isinstance(event, dict):
                yield from named(event, ("items", i, "events", j), "this event")
    calendar = data.get("calendar")
    for j, event in enumerate(calendar if isinstance(calendar, list) else []):
        if isinstance(event, dict):
            yield from named(event, ("calendar", j), "this calendar entry")


__all__ = ["file_warnings", "last_day", "markup_in", "network_problems", "script_links_in"]
