"""Issue files: ``campaigns/<slug>/issue.yaml`` loaded and validated into a typed ``Issue``.

An issue is a newsletter (items, highlights, a calendar) or an alert (one call to action). Event
times are wall-clock times in Europe/London; the issue's ``date`` is the "today" against which events
count as past. Bodies are Markdown, rendered later with raw HTML off.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

LONDON = ZoneInfo("Europe/London")


def _when(value: object) -> object:
    """``2025-11-29`` is a date (an all-day event); ``2025-11-18 19:30`` a date and time."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            return value  # let pydantic report it
    return value


When = Annotated[datetime | date, BeforeValidator(_when)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Link(Model):
    """A link listed under an item ("Book your ticket": https://…)."""

    text: str
    url: str


class Image(Model):
    """An image in an item; ``alt`` is required (an empty alt is an error: describe the image)."""

    src: str
    alt: str
    width: int | None = None


class Button(Model):
    """An alert's one call to action."""

    text: str
    url: str


class Event(Model):
    """A dated entry of the calendar.

    ``start`` is a date for an all-day event, else a date and time (Europe/London). ``regions`` and
    ``interests`` default to the item's (None means "inherit"; [] means "everyone in the audience").
    """

    title: str
    start: When
    end: datetime | time | None = None
    location: str = ""
    online: bool = False
    booking: Link | None = None
    contact: str = ""
    regions: list[str] | None = None
    interests: list[str] | None = None

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    @property
    def day(self) -> date:
        return self.start.date() if isinstance(self.start, datetime) else self.start

    @property
    def start_time(self) -> time | None:
        return self.start.time() if isinstance(self.start, datetime) else None

    @property
    def end_time(self) -> time | None:
        if isinstance(self.end, datetime):
            return self.end.time()
        return self.end

    def start_at(self) -> datetime:
        """The start as an aware datetime in Europe/London (midnight for an all-day event)."""
        start = self.start if isinstance(self.start, datetime) else datetime.combine(self.start, time())
        return start.replace(tzinfo=LONDON)

    def end_at(self) -> datetime | None:
        """The end as an aware datetime in Europe/London, if the event has one."""
        if self.end is None:
            return None
        end = self.end if isinstance(self.end, datetime) else datetime.combine(self.day, self.end)
        return end.replace(tzinfo=LONDON)


class Item(Model):
    """One section of a newsletter, with its line in the highlights and its events."""

    id: str
    title: str
    highlight: str
    body: str = ""
    links: list[Link] = Field(default_factory=list)
    contact: str = ""
    image: Image | None = None
    regions: list[str] = Field(default_factory=list)
    interests: list[str] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


class Newsletter(Model):
    kind: Literal["newsletter"]
    title: str
    subject: str
    preheader: str = ""
    date: date
    audience: str = "all"
    intro: str = ""
    items: list[Item] = Field(default_factory=list)
    calendar: list[Event] = Field(default_factory=list)
    sign_off: str = ""


class Alert(Model):
    kind: Literal["alert"]
    title: str
    subject: str
    preheader: str = ""
    date: date
    audience: str
    body: str
    button: Button
    sign_off: str = ""


Issue = Annotated[Newsletter | Alert, Field(discriminator="kind")]
