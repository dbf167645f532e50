"""The forms of a contribution: what a local group typed, checked field by field and
turned into the entry an issue file holds, validated with the issue schema's own types
(``mailer.issue.schema.Event`` and ``Item``), so that whatever the editor accepts later is a valid
issue entry. The rows and their life are ``mailer.desk.inbox``; the pages,
``mailer.web.desk.contributions``.

Text is cleaned before it is kept: control characters and bidirectional overrides go, line breaks
only where a field has several lines. Links must be ``https://`` (or ``http://``) addresses; HTML,
``javascript:`` and the word TODO (which marks unfinished text in an issue) are refused. Dates are
real days from today on (2025-02-30 is none), times on the 24-hour clock; the local group is one
the person may speak for (``regions_for``).

Each form is declared once as a typed model (``EventForm``, ``ItemForm``: ``mailer.forms``), each
field checking itself; the checks over two fields (a place or a link to join, the days, the
times, a link's words and address) are small rules beside them, and all the errors of a post are
shown at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from mailer.audience.networks import of_region
from mailer.audience.shape import Shape
from mailer.desk import people
from mailer.desk.people import Person
from mailer.forms import Form, read
from mailer.issue.lint import markup_in, script_links_in
from mailer.issue.load import TODO
from mailer.issue.schema import Event, Item
from mailer.settings import Settings

T = TypeVar("T")

KINDS = ("event", "item")
LINK_ROWS = 3
EVENT_ROWS = 2
"""The events a news item may carry (each a title, a day, a start time and a place)."""
ITEM_EVENT_FIELDS = ("event_title", "event_date", "event_time", "event_place")
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
    "event_title": 200,
    "event_date": 10,
    "event_time": 5,
    "event_place": 300,
}
MULTILINE = {"description", "body"}
#: Fields taken as typed (only stripped), and refused unless they are exactly right.
EXACT = {
    "region",
    "date",
    "end_date",
    "start_time",
    "end_time",
    "online_link",
    "booking_link",
    "link_url",
    "event_date",
    "event_time",
}
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


# ---------------------------------------------------------------------------------------------
# The forms, field by field (``mailer.forms``): each field's own check; the checks that need two
# fields are the rules below them


def _day(value: object) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _DAY.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("Give a real date, like 2025-12-09 (year, month, day).")


def _clock(value: object) -> time | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _TIME.match(value):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("Give a time on the 24-hour clock, like 18:30.")


def _plain(value: str) -> str:
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


def _markdown(value: str) -> str:
    if problem := text_problem(value, markdown=True):
        raise ValueError(problem)
    return value


def _web_link(value: str) -> str:
    if value and (problem := _link_problem(value)):
        raise ValueError(problem)
    return value


def _region_of(value: str, info: ValidationInfo) -> str:
    if value not in (info.context or {}).get("regions", ()):
        raise ValueError("Choose your local group from the list.")
    return value


EVENT_TITLE = "Give the event a title, like: Write for Rights card-writing evening."
ITEM_HIGHLIGHT = "Give its line in the highlights, like: join our vigil on 10 December."


Day = Annotated[date | None, PlainValidator(_day)]
Clock = Annotated[time | None, PlainValidator(_clock)]
PlainText = Annotated[str, AfterValidator(_plain)]
MarkdownText = Annotated[str, AfterValidator(_markdown)]
WebLink = Annotated[str, AfterValidator(_web_link)]
LocalGroup = Annotated[str, AfterValidator(_region_of)]


def _required(message: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value:
            raise ValueError(message)
        return value

    return check


class EventForm(Form):
    """What a local group says about an event (cleaned: ``_texts``). Context: ``regions``."""

    title: Annotated[PlainText, AfterValidator(_required(EVENT_TITLE))] = ""
    all_day: bool = False
    place: PlainText = ""
    online_link: WebLink = ""
    booking_link: WebLink = ""
    contact: PlainText = ""
    description: MarkdownText = ""
    region: LocalGroup = ""
    date: Day = None
    end_date: Day = None
    start_time: Clock = None
    end_time: Clock = None


class ItemForm(Form):
    """A news item from a local group (cleaned: ``_texts``), its link rows and interests.
    Context: ``regions`` and ``interests`` (the known ones)."""

    title: Annotated[PlainText, AfterValidator(_required("Give the item a title."))] = ""
    highlight: Annotated[PlainText, AfterValidator(_required(ITEM_HIGHLIGHT))] = ""
    body: Annotated[MarkdownText, AfterValidator(_required("Write the text of the item."))] = ""
    contact: PlainText = ""
    region: LocalGroup = ""
    interests: tuple[str, ...] = ()
    link_text_1: PlainText = ""
    link_url_1: WebLink = ""
    link_text_2: PlainText = ""
    link_url_2: WebLink = ""
    link_text_3: PlainText = ""
    link_url_3: WebLink = ""

    @field_validator("interests")
    @classmethod
    def _known(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        known = (info.context or {}).get("interests", ())
        if any(i not in known for i in value):
            raise ValueError("Choose interests from the list.")
        return value


def _event_rules(values: dict[str, Any], today: date) -> dict[str, str]:
    """The event's checks over two fields or more: where, the day, the times; at the field they
    blame. A field whose own value is wrong is left to its own message."""
    out: dict[str, str] = {}
    if not values["place"] and not values["online_link"]:
        out["place"] = "Say where it is, or give the link to join online (or both)."
    if not values["date"]:
        out["date"] = "Give the day it happens, like 2025-12-09."
    first, last = _quietly(_day, values["date"]), _quietly(_day, values["end_date"])
    if not values["all_day"] and not values["start_time"]:
        out["start_time"] = "Give the time it starts, like 18:30, or tick “All day”."
    if first is not None:
        out.update(_days_rule(first, last, today))
    if not values["all_day"] and last is not None and not values["end_time"]:
        out["end_time"] = "Give the time it ends on its last day, like 21:00."
    return out


def _days_rule(first: date, last: date | None, today: date) -> dict[str, str]:
    if (last or first) < today:
        return {"end_date" if last else "date": "This day has passed: give a day from today on."}
    if first > today + timedelta(days=366 * YEARS_AHEAD):
        return {"date": f"Give a day within {YEARS_AHEAD} years from today."}
    if last is not None and last < first:
        return {"end_date": "The last day is before the first: check the dates."}
    return {}


def _link_rules(values: dict[str, Any]) -> dict[str, str]:
    """A link row needs both its words and its address, or neither."""
    out: dict[str, str] = {}
    for n in range(1, LINK_ROWS + 1):
        words, url = values[f"link_text_{n}"], values[f"link_url_{n}"]
        if words and not url:
            out[f"link_url_{n}"] = "Give the link's address, or clear its words."
        if url and not words:
            out[f"link_text_{n}"] = "Say where the link goes, like: Download the campaign booklet."
    return out


def _quietly(parse: Callable[[object], T | None], value: object) -> T | None:
    """``parse(value)``, or None where it is wrong (its own field says so)."""
    try:
        return parse(value)
    except ValueError:
        return None


def _errors(*found: dict[str, str]) -> dict[str, str]:
    """The errors by field, the first found for a field kept."""
    out: dict[str, str] = {}
    for errors in found:
        for name, message in errors.items():
            out.setdefault(name, message)
    return out


def check_event(raw: dict[str, Any], shape: Shape, regions: list[str], today: date) -> Checked:
    """An event form (``EVENT_FIELDS`` and ``all_day``) checked, for a local group among
    ``regions`` (the person's choice), happening from ``today`` on."""
    too_long: dict[str, str] = {}
    values = _texts(raw, EVENT_FIELDS, too_long)
    values["all_day"] = bool(raw.get("all_day"))
    if values["all_day"]:
        values["start_time"] = values["end_time"] = ""
    got = read(EventForm, values, context={"regions": regions})
    errors = _errors(too_long, got.errors, _event_rules(values, today))
    if errors or got.form is None:
        return Checked("event", values, errors)
    entry = _event_entry(got.form)
    where = {
        "title": "title",
        "start": "date",
        "end": "end_date" if got.form.all_day else "end_time",
        "location": "place",
        "contact": "contact",
        "booking": "booking_link",
        "booking.url": "booking_link" if got.form.booking_link else "online_link",
        "regions": "region",
    }
    errors = _schema_errors(Event, entry, shape, where)
    return Checked("event", values, errors, {} if errors else entry)


def _event_entry(form: EventForm) -> dict[str, Any]:
    """The issue's event from a checked form."""
    assert form.date is not None
    first, last = form.date, form.end_date
    entry: dict[str, Any] = {"title": form.title}
    if form.start_time is None:
        entry["start"] = first.isoformat()
        if last is not None and last != first:
            entry["end"] = last.isoformat()
    else:
        entry["start"] = f"{first.isoformat()} {form.start_time:%H:%M}"
        if form.end_time is not None:
            entry["end"] = f"{(last or first).isoformat()} {form.end_time:%H:%M}"
    if form.place:
        entry["location"] = form.place
    entry |= _joining(form)
    if form.region:
        entry["regions"] = [form.region]
    return entry


def _joining(form: EventForm) -> dict[str, Any]:
    """How to take part: online, the booking link (else the link to join), and the contact."""
    out: dict[str, Any] = {}
    contact = form.contact
    if form.online_link:
        out["online"] = True
        if form.booking_link:
            joining = f"Join online at {form.online_link}"
            contact = f"{joining}. {contact}" if contact else joining
    booking = form.booking_link or form.online_link
    if booking:
        out["booking"] = {"text": "Book your place" if form.booking_link else "Join online", "url": booking}
    if contact:
        out["contact"] = contact
    return out


def check_item(raw: dict[str, Any], shape: Shape, regions: list[str]) -> Checked:
    """An item form (``ITEM_FIELDS``, ``link_text_N``/``link_url_N`` rows, ``interests``) checked,
    for a local group among ``regions``."""
    too_long: dict[str, str] = {}
    values = _texts(raw, ITEM_FIELDS, too_long)
    for n in range(1, LINK_ROWS + 1):
        sub: dict[str, str] = {}
        pair = {"link_text": raw.get(f"link_text_{n}", ""), "link_url": raw.get(f"link_url_{n}", "")}
        row = _texts(pair, ("link_text", "link_url"), sub)
        values[f"link_text_{n}"], values[f"link_url_{n}"] = row["link_text"], row["link_url"]
        too_long |= {f"{name}_{n}": message for name, message in sub.items()}
    events, event_errors = _item_events(raw, values, too_long)
    chosen = [i for i in raw.get("interests") or [] if isinstance(i, str)]
    values["interests"] = [i for i in chosen if i in shape.interests]
    got = read(
        ItemForm, {**values, "interests": chosen}, context={"regions": regions, "interests": shape.interests}
    )
    errors = _errors(too_long, got.errors, _link_rules(values), event_errors)
    if errors or got.form is None:
        return Checked("item", values, errors)
    entry = _item_entry(got.form)
    if events:
        entry["events"] = events
    where = {"title": "title", "highlight": "highlight", "body": "body", "contact": "contact"}
    where |= {f"links.{n - 1}.url": f"link_url_{n}" for n in range(1, LINK_ROWS + 1)}
    where |= {"regions": "region", "interests": "interests"}
    where |= {
        f"events.{n - 1}.{key}": f"event_{name}_{n}"
        for n in range(1, EVENT_ROWS + 1)
        for key, name in (("title", "title"), ("start", "date"), ("location", "place"))
    }
    errors = _schema_errors(Item, entry, shape, where)
    return Checked("item", values, errors, {} if errors else entry)


def _item_events(
    raw: dict[str, Any], values: dict[str, Any], too_long: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The events the item carries (rows ``event_title_N`` …, a row left empty: none), as the
    issue holds them under the item, and the problems of each row by field name."""
    events: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for n in range(1, EVENT_ROWS + 1):
        sub: dict[str, str] = {}
        row = _texts({k: raw.get(f"{k}_{n}", "") for k in ITEM_EVENT_FIELDS}, ITEM_EVENT_FIELDS, sub)
        values.update({f"{k}_{n}": v for k, v in row.items()})
        too_long |= {f"{k}_{n}": message for k, message in sub.items()}
        if not any(row.values()):
            continue
        day, at = _quietly(_day, row["event_date"]), _quietly(_clock, row["event_time"])
        if not row["event_title"]:
            errors[f"event_title_{n}"] = f"Give event {n} a title (or empty its other fields)."
        if day is None:
            errors[f"event_date_{n}"] = f"Give event {n}'s day, like 2026-01-24."
        if row["event_time"] and at is None:
            errors[f"event_time_{n}"] = "Give the time on the 24-hour clock, like 18:30, or leave it empty."
        if day is None or not row["event_title"] or (row["event_time"] and at is None):
            continue
        event: dict[str, Any] = {
            "title": row["event_title"],
            "start": f"{day.isoformat()} {at:%H:%M}" if at is not None else day.isoformat(),
        }
        if row["event_place"]:
            event["location"] = row["event_place"]
        events.append(event)
    return events, errors


def _item_entry(form: ItemForm) -> dict[str, Any]:
    """The issue's item from a checked form (its id is given when it is accepted)."""
    entry: dict[str, Any] = {
        "id": "contribution",
        "title": form.title,
        "highlight": form.highlight,
        "body": form.body,
    }
    rows = [
        (form.link_text_1, form.link_url_1),
        (form.link_text_2, form.link_url_2),
        (form.link_text_3, form.link_url_3),
    ]
    links = [{"text": words, "url": url} for words, url in rows if words or url]
    if links:
        entry["links"] = links
    if form.contact:
        entry["contact"] = form.contact
    if form.region:
        entry["regions"] = [form.region]
    if form.interests:
        entry["interests"] = list(form.interests)
    return entry


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
