"""The typed views of the events tables that the library hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from mailer.issue.calendar_text import day_text, days_text, time_text
from mailer.models import EventRow


@dataclass(frozen=True)
class EventInfo:
    """An event as the library hands it out (a row of ``events``, read)."""

    id: int
    uid: str  # without the list domain: ``{slug}-{entry key}``
    campaign_slug: str
    network: str
    regions: tuple[str, ...]
    title: str
    starts_at: datetime
    ends_at: datetime
    all_day: bool
    place: str
    online_url: str
    sequence: int
    announced_sequence: int
    last_modified: datetime
    capacity: int | None
    remind_hours: int
    cancelled_at: datetime | None

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def full_uid(self, list_domain: str) -> str:
        """The iCalendar UID: ``{uid}@{list_domain}``."""
        return f"{self.uid}@{list_domain}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "campaign": self.campaign_slug,
            "network": self.network,
            "regions": list(self.regions),
            "title": self.title,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "all_day": self.all_day,
            "place": self.place,
            "online_url": self.online_url,
            "sequence": self.sequence,
            "capacity": self.capacity,
            "cancelled": self.cancelled,
        }


def info(row: EventRow) -> EventInfo:
    """The typed view of a row of ``events``."""
    return EventInfo(
        id=row.id,
        uid=row.uid,
        campaign_slug=row.campaign_slug,
        network=row.network,
        regions=tuple(r for r in row.regions.split(",") if r),
        title=row.title,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        all_day=row.all_day,
        place=row.place,
        online_url=row.online_url,
        sequence=row.sequence,
        announced_sequence=row.announced_sequence,
        last_modified=row.last_modified,
        capacity=row.capacity,
        remind_hours=row.remind_hours,
        cancelled_at=row.cancelled_at,
    )


def when_words(event: EventInfo, zone: tzinfo) -> str:
    """When an event is, in the calendar's words ("Tuesday 18 November at 7:30pm", "from 6:00pm to
    7:30pm", "Monday 8 – Sunday 14 December"), in ``zone`` (the ``timezone`` setting's)."""
    start = event.starts_at.astimezone(zone)
    end = event.ends_at.astimezone(zone)
    if event.all_day:
        return days_text(start.date(), (end - timedelta(days=1)).date())
    day = day_text(start.date())
    to_midnight = end.time() == time() and end.date() == start.date() + timedelta(days=1)
    if end.date() != start.date() and not to_midnight:
        return f"{day} from {time_text(start.time())} to {day_text(end.date())} at {time_text(end.time())}"
    return f"{day} from {time_text(start.time())} to {time_text(end.time())}"
