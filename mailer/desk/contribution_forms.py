"""The forms of a contribution (issue 14): what a local group typed, checked field by field and
turned into the entry an issue file holds, validated with the issue schema's own types
(``mailer.issue.schema.Event`` and ``Item``), so that whatever the editor accepts later is a valid
issue entry. The rows and their life are ``mailer.desk.inbox``; the pages,
``mailer.web.desk.contributions``.

Text is cleaned before it is kept: control characters and bidirectional overrides go, line breaks
only where a field has several lines. Links must be ``https://`` (or ``http://``) addresses; HTML,
``javascript:`` and the word TODO (which marks unfinished text in an issue) are refused. Dates are
real days from today on (2025-02-30 is none), times on the 24-hour clock; the local group is one
the person may speak for (``regions_for``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from mailer.audience.networks import of_region
from mailer.audience.shape import Shape
from mailer.desk import people
from mailer.desk.people import Person
from mailer.issue.lint import markup_in, script_links_in
from mailer.issue.load import TODO
from mailer.issue.schema import Event, Item
from mailer.settings import Settings

KINDS = ("event", "item")
LINK_ROWS = 3
YEARS_AHEAD = 3

#: Each field's longest value, in characters.
LIMITS = {
    "title": 200,
    "date": 10,
    "end_date": 10,
    "start_time": 5,
    "end_time": 5,
    "place": 300,
    "online_link": 1000,
    "booking_link": 1000,
    "contact": 300,
    "description": 5000,
    "region": 64,
    "highlight": 300,
    "body": 10000,
    "link_text": 200,
    "link_url": 1000,
}
MULTILINE = {"description", "body"}
#: Fields taken as typed (only stripped), and refused unless they are exactly right.
EXACT = {"region", "date", "end_date", "start_time", "end_time", "online_link", "booking_link", "link_url"}
EVENT_FIELDS = (
    "title",
    "date",
    "end_date",
    "start_time",
    "end_time",
    "place",
    "online_link",
    "region",
    "booking_link",
    "contact",
    "description",
)
ITEM_FIELDS = ("title", "highlight", "body", "contact", "region")

_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"))
_LINK = re.compile(
    r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*)?$"
)
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TIME = re.compile(r"^[0-9]{2}:[0-9]{2}$")


# ---------------------------------------------------------------------------------------------
# Cleaning what was typed


def clean(value: str, *, multiline: bool = False) -> str:
    """``value`` without control characters (line breaks kept where ``multiline``: as ``\\n``) or
    bidirectional overrides; on one line otherwise, its runs of spaces folded."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").translate(_BIDI)
    out = []
    for c in value:
        kind = unicodedata.category(c)
        if c == "\n" and multiline:
            out.append(c)
        elif c in "\t\n" or kind in ("Zl", "Zp"):
            out.append(" ")
        elif kind in ("Cc", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(c)
    text = "".join(out)
    if multiline:
        text = "\n".join(line.rstrip() for line in text.split("\n"))
        return re.sub(r"\n{3,}", "\n\n", text).strip()
    return re.sub(r" {2,}", " ", text).strip()


def text_problem(value: str, *, markdown: bool = False) -> str | None:
    """Why ``value`` cannot go into an issue as it is, or None."""
    scripts = script_links_in(value)
    if scripts:
        return f"Take out {scripts[0]}: give the https:// address of the page instead."
    tags = markup_in(value)
    if tags:
        how = " Format with Markdown instead: **bold**, [link text](https://…)." if markdown else ""
        return f"Take out the HTML ({tags[0]}).{how}"
    if TODO in value:
        return "Write it out in full: the word TODO marks unfinished text in an issue."
    return None


def _link_problem(value: str) -> str | None:
    if not _LINK.match(value):
        return "Give a web address starting with https://, with no spaces, like https://example.org/event."
    return None


# ---------------------------------------------------------------------------------------------
# Checking a form


@dataclass
class Checked:
    """A checked form: its cleaned ``values`` (for the row and to show the form again), the
    ``errors`` by field, and, when there are none, the issue ``entry`` (an event or item dict)."""

    kind: str
    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    entry: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _texts(raw: dict[str, Any], names: tuple[str, ...], errors: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        typed = raw.get(name)
        typed = typed if isinstance(typed, str) else ""
        value = typed.strip() if name in EXACT else clean(typed, multiline=name in MULTILINE)
        limit = LIMITS[name]
        if len(value) > limit:
            errors[name] = f"Keep it to {limit} characters or fewer (it has {len(value)})."
            value = value[:limit]
        values[name] = value
    return values


def _schema_errors(
    model: type[BaseModel], data: dict[str, Any], shape: Shape, where: dict[str, str]
) -> dict[str, str]:
    """Validate ``data`` with ``model`` (the issue schema's); each error at the form field that
    ``where`` maps its first location to (else at ``title``)."""
    try:
        model.model_validate(data, context={"shape": shape, "folder": None})
    except ValidationError as exc:
        out: dict[str, str] = {}
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            name = where.get(loc, where.get(loc.split(".")[0], "title"))
            hint = (err.get("ctx") or {}).get("hint")
            message = str(err["msg"]).removeprefix("Value error, ")
            out.setdefault(name, message[:1].upper() + message[1:] + (f": {hint}." if hint else "."))
        return out
    return {}


def _day(value: str, name: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        if not _DAY.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = "Give a real date, like 2025-12-09 (year, month, day)."
        return None


def _clock(value: str, name: str, errors: dict[str, str]) -> time | None:
    if not value:
        return None
    try:
        if not _TIME.match(value):
            raise ValueError(value)
        return time.fromisoformat(value)
    except ValueError:
        errors[name] = "Give a time on the 24-hour clock, like 18:30."
        return None


def check_event(raw: dict[str, Any], shape: Shape, regions: list[str], today: date) -> Checked:
    """An event form (``EVENT_FIELDS`` and ``all_day``) checked, for a local group among
    ``regions`` (the person's choice), happening from ``today`` on."""
    errors: dict[str, str] = {}
    values = _texts(raw, EVENT_FIELDS, errors)
    values["all_day"] = bool(raw.get("all_day"))
    for name in ("title", "place", "contact", "description"):
        if name not in errors and (problem := text_problem(values[name], markdown=name == "description")):
            errors[name] = problem
    if not values["title"] and "title" not in errors:
        errors["title"] = "Give the event a title, like: Write for Rights card-writing evening."
    for name in ("online_link", "booking_link"):
        if values[name] and name not in errors and (problem := _link_problem(values[name])):
            errors[name] = problem
    if not values["place"] and not values["online_link"] and "place" not in errors:
        errors["place"] = "Say where it is, or give the link to join online (or both)."
    if values["region"] not in regions:
        errors["region"] = "Choose your local group from the list."
    first = _day(values["date"], "date", errors)
    last = _day(values["end_date"], "end_date", errors)
    if not values["date"]:
        errors["date"] = "Give the day it happens, like 2025-12-09."
    starts = _clock(values["start_time"], "start_time", errors)
    ends = _clock(values["end_time"], "end_time", errors)
    if values["all_day"]:
        values["start_time"] = values["end_time"] = ""
        starts = ends = None
    elif starts is None and "start_time" not in errors:
        errors["start_time"] = "Give the time it starts, like 18:30, or tick “All day”."
    if first is not None:
        if (last or first) < today:
            errors["end_date" if last else "date"] = "This day has passed: give a day from today on."
        elif first > today + timedelta(days=366 * YEARS_AHEAD):
            errors["date"] = f"Give a day within {YEARS_AHEAD} years from today."
        elif last is not None and last < first:
            errors["end_date"] = "The last day is before the first: check the dates."
    if not values["all_day"] and last is not None and ends is None and "end_time" not in errors:
        errors["end_time"] = "Give the time it ends on its last day, like 21:00."
    if errors:
        return Checked("event", values, errors)
    assert first is not None
    entry: dict[str, Any] = {"title": values["title"]}
    if starts is None:
        entry["start"] = first.isoformat()
        if last is not None and last != first:
            entry["end"] = last.isoformat()
    else:
        entry["start"] = f"{first.isoformat()} {starts:%H:%M}"
        if ends is not None:
            entry["end"] = f"{(last or first).isoformat()} {ends:%H:%M}"
    if values["place"]:
        entry["location"] = values["place"]
    contact = values["contact"]
    if values["online_link"]:
        entry["online"] = True
        if values["booking_link"]:
            joining = f"Join online at {values['online_link']}"
            contact = f"{joining}. {contact}" if contact else joining
    booking = values["booking_link"] or values["online_link"]
    if booking:
        entry["booking"] = {
            "text": "Book your place" if values["booking_link"] else "Join online",
            "url": booking,
        }
    if contact:
        entry["contact"] = contact
    if values["region"]:
        entry["regions"] = [values["region"]]
    where = {
        "title": "title",
        "start": "date",
        "end": "end_date" if values["all_day"] else "end_time",
        "location": "place",
        "contact": "contact",
        "booking": "booking_link",
        "booking.url": "booking_link" if values["booking_link"] else "online_link",
        "regions": "region",
    }
    errors = _schema_errors(Event, entry, shape, where)
    return Checked("event", values, errors, {} if errors else entry)


def check_item(raw: dict[str, Any], shape: Shape, regions: list[str]) -> Checked:
    """An item form (``ITEM_FIELDS``, ``link_text_N``/``link_url_N`` rows, ``interests``) checked,
    for a local group among ``regions``."""
    errors: dict[str, str] = {}
    values = _texts(raw, ITEM_FIELDS, errors)
    for name in ("title", "highlight", "body", "contact"):
        if name not in errors and (problem := text_problem(values[name], markdown=name == "body")):
            errors[name] = problem
    if not values["title"] and "title" not in errors:
        errors["title"] = "Give the item a title."
    if not values["highlight"] and "highlight" not in errors:
        errors["highlight"] = "Give its line in the highlights, like: join our vigil on 10 December."
    if not values["body"] and "body" not in errors:
        errors["body"] = "Write the text of the item."
    if values["region"] not in regions:
        errors["region"] = "Choose your local group from the list."
    links: list[dict[str, str]] = []
    for n in range(1, LINK_ROWS + 1):
        sub: dict[str, str] = {}
        pair = {"link_text": raw.get(f"link_text_{n}", ""), "link_url": raw.get(f"link_url_{n}", "")}
        row = _texts(pair, ("link_text", "link_url"), sub)
        words, url = row["link_text"], row["link_url"]
        values[f"link_text_{n}"], values[f"link_url_{n}"] = words, url
        for name, message in sub.items():
            errors[f"{name}_{n}"] = message
        if not words and not url:
            continue
        if url and f"link_url_{n}" not in errors and (problem := _link_problem(url)):
            errors[f"link_url_{n}"] = problem
        if not url:
            errors[f"link_url_{n}"] = "Give the link's address, or clear its words."
        if not words:
            errors[f"link_text_{n}"] = "Say where the link goes, like: Download the campaign booklet."
        elif problem := text_problem(words):
            errors[f"link_text_{n}"] = problem
        links.append({"text": words, "url": url})
    chosen = raw.get("interests") or []
    interests = [i for i in chosen if isinstance(i, str)]
    values["interests"] = [i for i in interests if i in shape.interests]
    if len(values["interests"]) != len(interests):
        errors["interests"] = "Choose interests from the list."
    if errors:
        return Checked("item", values, errors)
    entry: dict[str, Any] = {
        "id": "contribution",
        "title": values["title"],
        "highlight": values["highlight"],
        "body": values["body"],
    }
    if links:
        entry["links"] = links
    if values["contact"]:
        entry["contact"] = values["contact"]
    if values["region"]:
        entry["regions"] = [values["region"]]
    if values["interests"]:
        entry["interests"] = list(values["interests"])
    where = {"title": "title", "highlight": "highlight", "body": "body", "contact": "contact"}
    where |= {f"links.{n - 1}.url": f"link_url_{n}" for n in range(1, LINK_ROWS + 1)}
    where |= {"regions": "region", "interests": "interests"}
    errors = _schema_errors(Item, entry, shape, where)
    return Checked("item", values, errors, {} if errors else entry)


def check(kind: str, raw: dict[str, Any], shape: Shape, regions: list[str], today: date) -> Checked:
    return check_event(raw, shape, regions, today) if kind == "event" else check_item(raw, shape, regions)


# ---------------------------------------------------------------------------------------------
# Who may send what


def network_regions(shape: Shape, settings: Settings, network: str) -> list[str]:
    """The regions of ``network`` (a role's key: "" for a workspace's only network), tree order."""
    slugs = [r.slug for _depth, r in shape.walk()]
    if not shape.networks:
        return slugs
    # Which network owns each region (``of_region``), not a member's (``member_network``): a region
    # outside every network is no network's, so none of its groups sends for one.
    return [
        r for r in slugs if (owner := of_region(shape, settings, r)) is not None and owner.slug == network
    ]


def regions_for(person: Person, shape: Shape, settings: Settings, network: str) -> list[str]:
    """The local groups ``person`` may send contributions for in ``network``: for an editor or
    admin, any of its regions ("" too: the whole network); for a contributor, their region and those
    below it. Empty: they may not contribute there."""
    everything = network_regions(shape, settings, network)
    if people.can(person, "review", network):
        return ["", *everything]
    if not people.can(person, "submit", network):
        return []
    return [r for r in everything if people.can(person, "submit", network, r, shape=shape)]
