"""The issue schema: the pydantic models an issue file is validated into, and their field types.

Each field type parses and explains its own mistakes (``PydanticCustomError`` with a ``hint``);
``mailer.issue.load`` turns them into problems with a file, line and field. Validation context:
``shape`` (the workspace's lists; None skips the region, interest and audience checks) and
``folder`` (the campaign's folder, where image files are looked for).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from mailer.errors import MailerError, suggest
from mailer.issue import schedule

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URL = re.compile(r"^(?:https?://[^\s/]+\S*|mailto:\S+@\S+)$")
MAX_IMAGE_WIDTH = 2000
#: The image files a campaign's folder may give (``mailer.web.archive`` serves these, and no other).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")

# ---------------------------------------------------------------------------------------------
# Field types with their own parsing and messages


WHEN_FORMS = "the accepted forms are 2025-12-01 (a whole day) and 2025-12-01 19:30 (with a time)"
DATE_FORM = "a date is written year-month-day, e.g. 2025-12-01"
_DAY_FIRST = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T]+(\d{1,2})[:.](\d{2}))?")
_YEAR_FIRST = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})(?:[ T]+(\d{1,2})[:.](\d{2}))?")


def _iso_guess(text: str) -> str | None:
    """``text`` in the accepted form, when it is a date written another common way: day first, as in
    Britain (``01/12/2025`` is 1 December), or year first with slashes or dots; else None."""
    day_first = _DAY_FIRST.fullmatch(text)
    year_first = _YEAR_FIRST.fullmatch(text)
    if day_first:
        day, month, year, hour, minute = day_first.groups()
    elif year_first:
        year, month, day, hour, minute = year_first.groups()
    else:
        return None
    try:
        when = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
    except ValueError:
        return None
    return f"{when:%Y-%m-%d %H:%M}" if hour else f"{when:%Y-%m-%d}"


def _date_hint(value: object, forms: str, *, day_only: bool = False) -> str:
    """The accepted ``forms``, after the form ``value`` was probably meant as, if it is a date
    written another common way (``day_only``: its day, without any time)."""
    text = value.strip() if isinstance(value, str) else ""
    guess = _iso_guess(text)
    if guess is None:
        return forms
    guess = guess[:10] if day_only else guess
    meant = datetime.fromisoformat(guess)
    return f"write {guess} if {text} means {meant.day} {meant:%B %Y}; {forms}"


def _when(value: object) -> date | datetime:
    """``2025-11-29`` is a date (an all-day event); ``2025-11-18 19:30`` a date and time."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            pass
    raise PydanticCustomError(
        "when",
        "not a date or a date and time: {value}",
        {"value": repr(value), "hint": _date_hint(value, WHEN_FORMS)},
    )


def _issue_date(value: object) -> date:
    """The issue's date: a day (``2025-12-01``), its "today" for what is past and upcoming."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PydanticCustomError(
        "issue_date",
        "not a date: {value}",
        {"value": repr(value), "hint": _date_hint(value, DATE_FORM, day_only=True)},
    )


def _end(value: object) -> datetime | date | time | None:
    """An end: a date and time (``2025-12-01 21:00``), a time on the start's day (``21:00``), the last
    day of an all-day event (``2025-12-14``), or none."""
    if value is None or isinstance(value, datetime | date | time):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) <= 8:
                return time.fromisoformat(text)
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            pass
    raise PydanticCustomError(
        "end",
        "not a time, a date, or a date and time: {value}",
        {
            "value": repr(value),
            "hint": _date_hint(value, "write 21:00, 2025-12-01 21:00, or 2025-12-14 for the last day"),
        },
    )


def _url(value: str) -> str:
    if not _URL.match(value):
        raise PydanticCustomError(
            "url",
            "not a link: {value}",
            {"value": repr(value), "hint": "a link starts with https:// (or mailto: for an address)"},
        )
    return value


def _image_src(value: str, info: ValidationInfo) -> str:
    if re.match(r"^https?://", value):
        return _url(value)
    if ":" in value or value.startswith("/") or ".." in Path(value).parts:
        raise PydanticCustomError(
            "image_src",
            "not an image address: {value}",
            {
                "value": repr(value),
                "hint": "give an https:// address, or a file name in the campaign's folder",
            },
        )
    suffix = Path(value).suffix.lower()
    if "/" in value or "\\" in value or value.startswith(".") or suffix not in IMAGE_SUFFIXES:
        # The mail links {base_url}/files/<slug>/<name>, which serves only these (mailer.web.archive).
        raise PydanticCustomError(
            "image_src",
            "not an image file the archive can serve: {value}",
            {
                "value": repr(value),
                "hint": "put a .png, .jpg, .gif or .webp file next to issue.yaml (not in a sub-folder) "
                "and give its name, or give an https:// address",
            },
        )
    folder = (info.context or {}).get("folder")
    if isinstance(folder, Path) and not _is_file(folder / value):
        raise PydanticCustomError(
            "image_missing",
            "image file {value} not found in {folder}",
            {"value": repr(value), "folder": str(folder), "hint": "put the image next to issue.yaml"},
        )
    if isinstance(folder, Path) and (folder / value).resolve().parent != folder.resolve():
        raise PydanticCustomError(
            "image_src",
            "image file {value} is a link to outside the campaign's folder",
            {"value": repr(value), "hint": "copy the image itself next to issue.yaml"},
        )
    return value


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a name the system cannot look up (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _width(value: int) -> int:
    """An image's width in pixels: a whole number from 1 to ``MAX_IMAGE_WIDTH``."""
    if not 0 < value <= MAX_IMAGE_WIDTH:
        raise PydanticCustomError(
            "image_width",
            "not an image width: {value}",
            {
                "value": repr(value),
                "hint": f"give its width in pixels, from 1 to {MAX_IMAGE_WIDTH}: the newsletter is 600 "
                "wide; or leave width out for the image's own",
            },
        )
    return value


def _alt(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError(
            "alt",
            "the image has no alt text",
            {"hint": "describe the image for people who cannot see it, e.g. alt: Cover of the guide"},
        )
    return value


def _no_highlight(value: object) -> object:
    """``highlight: false`` marks a report: a section with no line in the highlights."""
    return None if value is False else value


def _check_slug(kind: str, value: str, info: ValidationInfo) -> str:
    shape = (info.context or {}).get("shape")
    if shape is None:
        return value
    known: dict[str, Any] = shape.regions if kind == "region" else shape.interests
    if value not in known:
        raise PydanticCustomError(
            f"unknown_{kind}",
            "unknown {kind} {value}",
            {"kind": kind, "value": repr(value), "hint": suggest(value, list(known), f"{kind}s")},
        )
    return value


def _region(value: str, info: ValidationInfo) -> str:
    return _check_slug("region", value, info)


def _interest(value: str, info: ValidationInfo) -> str:
    return _check_slug("interest", value, info)


_LINE_BREAKS = {"Cc", "Zl", "Zp"}  # control characters, line and paragraph separators


def one_line(text: str) -> str:
    """``text`` on one line: line breaks, tabs and other control characters become spaces, and the
    runs of spaces they leave fold to one. Event titles and places go into one-line places (a
    calendar's name, the calendar line of the text part, a .ics file's properties), where a line
    break would end the line early."""
    if text.isprintable():
        return text
    chars = "".join(" " if unicodedata.category(c) in _LINE_BREAKS else c for c in text)
    return re.sub(r" {2,}", " ", chars).strip(" ")


When = Annotated[datetime | date, PlainValidator(_when)]
IssueDate = Annotated[date, PlainValidator(_issue_date)]
OneLine = Annotated[str, AfterValidator(one_line)]
EndTime = Annotated[datetime | date | time | None, PlainValidator(_end)]
Url = Annotated[str, AfterValidator(_url)]
RegionSlug = Annotated[str, AfterValidator(_region)]
InterestSlug = Annotated[str, AfterValidator(_interest)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Link(Model):
    """A link listed under an item ("Book your ticket": https://…)."""

    text: str
    url: Url


class Image(Model):
    """An image in an item; ``alt`` is required (an empty alt is an error: describe the image).

    ``src`` is an https:// address or a file in the campaign's folder.
    """

    src: Annotated[str, AfterValidator(_image_src)]
    alt: Annotated[str, AfterValidator(_alt)]
    width: Annotated[int, AfterValidator(_width)] | None = None


class Button(Model):
    """An alert's one call to action."""

    text: str
    url: Url


class Event(Model):
    """A dated entry of the calendar.

    ``start`` is a date for an all-day event, else a date and time (wall-clock, in the workspace's
    ``timezone``). A timed event's ``end`` is a date and time or a time on the start's day; an all-day
    event's ``end`` is its last day (``start: 2025-12-08``, ``end: 2025-12-14``: a week), included.
    ``location`` says where; ``online: true`` says it can be joined online (with a location too:
    both; ``online: https://…`` gives the link to join). ``regions`` and ``interests`` default to the
    item's (None means "inherit"; [] means "everyone in the audience"). ``title``, ``location`` and
    ``contact`` are folded to one line (a YAML block of several lines reads as one). Members answer
    an event (docs/events.md): ``capacity`` caps the "yes" answers (the rest wait in order),
    ``remind_hours`` is when its reminder goes before the start, ``cancelled: true`` cancels it
    after the issue was sent (its attendees are told, and it leaves the feeds).
    """

    title: OneLine
    start: When
    end: EndTime = None
    location: OneLine = ""
    online: bool | Url = False
    capacity: Annotated[int, Field(ge=1, le=100_000)] | None = None
    remind_hours: Annotated[int, Field(ge=0, le=24 * 30)] = 24
    cancelled: bool = False
    booking: Link | None = None
    contact: OneLine = ""
    regions: list[RegionSlug] | None = None
    interests: list[InterestSlug] | None = None

    @field_validator("end")
    @classmethod
    def _end_after_start(
        cls, end: datetime | date | time | None, info: ValidationInfo
    ) -> datetime | date | time | None:
        start = info.data.get("start")
        if end is None or start is None:
            return end
        if not isinstance(start, datetime):
            if not isinstance(end, date) or isinstance(end, datetime):
                last = end.date() if isinstance(end, datetime) else start + timedelta(days=1)
                raise PydanticCustomError(
                    "end_all_day",
                    "an all-day event ends on a day, not at a time",
                    {
                        "hint": f"give its last day (end: {last:%Y-%m-%d}) for an event over several "
                        f"days, or give start a time too ({start:%Y-%m-%d} 10:00)"
                    },
                )
            if end < start:
                raise PydanticCustomError(
                    "end_before_start",
                    "the event ends ({end}) before it starts ({start})",
                    {
                        "end": f"{end:%Y-%m-%d}",
                        "start": f"{start:%Y-%m-%d}",
                        "hint": f"end is the last day, on or after {start:%Y-%m-%d}; if they are swapped, "
                        f"write start: {end:%Y-%m-%d} and end: {start:%Y-%m-%d}",
                    },
                )
            return end
        if not isinstance(end, datetime | time):
            raise PydanticCustomError(
                "end_no_time",
                "the event starts at a time, so it ends at one: {end} has no time",
                {
                    "end": f"{end:%Y-%m-%d}",
                    "hint": f"write end: {end:%Y-%m-%d} 21:00 (or 21:00 for the same day), or leave the "
                    f"time out of start ({start:%Y-%m-%d}) for an all-day event",
                },
            )
        end_at = end if isinstance(end, datetime) else datetime.combine(start.date(), end)
        if end_at < start:
            raise PydanticCustomError(
                "end_before_start",
                "the event ends ({end}) before it starts ({start})",
                {
                    "end": f"{end_at:%Y-%m-%d %H:%M}",
                    "start": f"{start:%Y-%m-%d %H:%M}",
                    "hint": "check the times; an event past midnight ends on the next day "
                    f"(end: {start.date() + timedelta(days=1):%Y-%m-%d} {end_at:%H:%M})",
                },
            )
        return end

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    @property
    def day(self) -> date:
        """The first day."""
        return self.start.date() if isinstance(self.start, datetime) else self.start

    @property
    def last_day(self) -> date:
        """The last day the event runs on: its ``end``'s day, else its first day. An event is past
        only once this day is over."""
        if isinstance(self.end, datetime):
            return self.end.date()
        if isinstance(self.end, date):
            return self.end
        return self.day

    @property
    def days(self) -> int:
        """How many days an all-day event covers (1 for a single day); 1 for a timed event."""
        return (self.last_day - self.day).days + 1 if self.all_day else 1

    @property
    def start_time(self) -> time | None:
        return self.start.time() if isinstance(self.start, datetime) else None

    @property
    def end_time(self) -> time | None:
        if isinstance(self.end, datetime):
            return self.end.time()
        return self.end if isinstance(self.end, time) else None

    @property
    def wall_start(self) -> datetime:
        """The start as a wall-clock datetime, without a zone (midnight for an all-day event)."""
        return self.start if isinstance(self.start, datetime) else datetime.combine(self.start, time())

    def start_at(self, zone: ZoneInfo) -> datetime:
        """The start as an aware datetime in ``zone`` (the ``timezone`` setting, ``Settings.zone``)."""
        return self.wall_start.replace(tzinfo=zone)

    def end_at(self, zone: ZoneInfo) -> datetime | None:
        """The end of a timed event as an aware datetime in ``zone`` (``Settings.zone``), if it has one.

        None for an all-day event: its days are dates (``day`` to ``last_day``), not instants."""
        if self.all_day or self.end is None:
            return None
        if isinstance(self.end, datetime):
            end = self.end
        elif isinstance(self.end, time):
            end = datetime.combine(self.day, self.end)
        else:  # pragma: no cover - refused by the validator
            return None
        return end.replace(tzinfo=zone)

    @property
    def online_url(self) -> str:
        """The link to join online, when ``online`` gives one ("" otherwise)."""
        return self.online if isinstance(self.online, str) else ""


class Item(Model):
    """One section of a newsletter, with its line in the highlights and its events.

    ``highlight`` is None for a report (``highlight: false`` in the file): a section with no line in
    the highlights.
    """

    id: Annotated[str, Field(pattern=SLUG.pattern)]
    title: str
    highlight: Annotated[Annotated[str, Field(min_length=1)] | None, BeforeValidator(_no_highlight)]
    body: str = ""
    links: list[Link] = Field(default_factory=list)
    contact: str = ""
    image: Image | None = None
    regions: list[RegionSlug] = Field(default_factory=list)
    interests: list[InterestSlug] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)

    @property
    def is_report(self) -> bool:
        """True for a section with no line in the highlights."""
        return self.highlight is None


def _audience(value: str, info: ValidationInfo) -> str:
    shape = (info.context or {}).get("shape")
    if shape is None:
        return value
    try:
        from mailer.audience import segments
    except ImportError:  # pragma: no cover - the segments module ships with the package
        return value
    try:
        segments.resolve(segments.parse(value), shape)
    except MailerError as exc:
        # A syntax error's message shows the expression with a caret under the column; keep the
        # first line (it names the column) and the advice after the caret, if any.
        first, *rest = exc.message.splitlines()
        advice = [line.strip() for line in rest[2:] if line.strip()]
        raise PydanticCustomError(
            "audience",
            "not a valid audience {value}: {message}",
            {
                "value": repr(value),
                "message": first,
                "hint": exc.problem.hint
                or (advice[0] if advice else "e.g. region:kent and (interest:refugees or interest:schools)"),
            },
        ) from None
    return value


Audience = Annotated[str, AfterValidator(_audience)]


def _network(value: str, info: ValidationInfo) -> str:
    shape = (info.context or {}).get("shape")
    if shape is None or not value or not shape.networks or value in shape.networks:
        return value
    from mailer.errors import suggest

    raise PydanticCustomError(
        "network",
        "unknown network {value}",
        {"value": repr(value), "hint": suggest(value, shape.networks, "networks") + " (lists/networks.toml)"},
    )


NetworkSlug = Annotated[str, AfterValidator(_network)]
"""The network an issue speaks as (``lists/networks.toml``); empty: implied by the audience."""


class Newsletter(Model):
    kind: Literal["newsletter"]
    title: str
    subject: str
    preheader: str = ""
    date: IssueDate
    network: NetworkSlug = ""
    audience: Audience = "all"
    intro: str = ""
    items: list[Item] = Field(default_factory=list)
    calendar: list[Event] = Field(default_factory=list)
    sign_off: str = ""

    def events(self) -> list[tuple[Item | None, Event]]:
        """Every event: the items' (with their item) then the calendar-only entries (item None)."""
        out: list[tuple[Item | None, Event]] = [(item, e) for item in self.items for e in item.events]
        out.extend((None, e) for e in self.calendar)
        return out


class Alert(Model):
    kind: Literal["alert"]
    title: str
    subject: str
    preheader: str = ""
    date: IssueDate
    network: NetworkSlug = ""
    audience: Audience
    body: str
    button: Button
    sign_off: str = ""


class Digest(Model):
    """ "What's on near you": the calendar's events of each member's regions and interests in the next
    ``days`` days, sent ``every`` week or month on a ``day`` at a ``time`` (``mailer.issue.schedule``)
    by the workers (``mailer.events.digest``, which fills ``calendar`` and ``calendar_uids``)."""

    kind: Literal["digest"]
    title: str
    subject: str
    preheader: str = ""
    date: IssueDate
    network: NetworkSlug = ""
    audience: Audience = "all"
    intro: str = ""
    days: schedule.DigestDays = 14
    every: Literal["weekly", "monthly"]
    day: schedule.SendDay
    time: schedule.SendTime = schedule.DEFAULT_SEND_TIME
    approval: Literal["required", "none"] = "none"
    sign_off: str = ""
    calendar: list[Event] = Field(default_factory=list)
    calendar_uids: list[str] = Field(default_factory=list)

    @field_validator("day")
    @classmethod
    def _day_fits_every(cls, day: str | int, info: ValidationInfo) -> str | int:
        return schedule.day_fits_every(day, info.data.get("every"))

    @field_validator("calendar", "calendar_uids")
    @classmethod
    def _filled_by_each_run(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        return schedule.filled_by_each_run(value, info)


Issue = Newsletter | Alert | Digest
"""An issue: a newsletter, an alert or a digest (``kind`` says which)."""

__all__ = [
    "SLUG",
    "Alert",
    "Audience",
    "Button",
    "Digest",
    "EndTime",
    "Event",
    "Image",
    "Issue",
    "Item",
    "Link",
    "Model",
    "Newsletter",
    "Url",
    "When",
]
