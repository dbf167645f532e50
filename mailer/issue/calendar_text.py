"""Dates and times written the British way, and the stable identity of each calendar entry.

"Tuesday 18 November at 7:30pm", "Tuesday 25 November from 6:00pm to 7:30pm", "Saturday 22 November
at noon", "Saturday 29 November" (all day), "Monday 8 – Sunday 14 December" (all day, several days).
Times are wall-clock times in the workspace's time zone (the ``timezone`` setting), as the issue file
gives them.

Each calendar entry has a UID, ``{slug}-{entry_key}@{list_domain}`` (the entry key is
``{item_id}-{n}`` for an item's n-th event, ``calendar-{n}`` for the n-th calendar-only entry), and
an "add to calendar" URL, ``{base_url}/calendar/event/{slug}-{entry_key}.ics``, which the web app
serves, and an RSVP link, ``{base_url}/rsvp/{slug}-{entry_key}/{token}``: all come from the
functions here so that mail and web agree.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from urllib.parse import quote

from mailer.issue.schema import Event, one_line


def time_text(t: time) -> str:
    """``7:30pm``, ``10:45am``, ``1:00pm``, ``noon``, ``midnight``."""
    if t.hour == 0 and t.minute == 0:
        return "midnight"
    if t.hour == 12 and t.minute == 0:
        return "noon"
    hour = t.hour % 12 or 12
    suffix = "am" if t.hour < 12 else "pm"
    return f"{hour}:{t.minute:02d}{suffix}"


def day_text(d: date, today: date | None = None) -> str:
    """``Tuesday 18 November``; the year is added when it is not the year of ``today``."""
    text = f"{d:%A} {d.day} {d:%B}"
    if today is not None and d.year != today.year:
        text += f" {d.year}"
    return text


def days_text(first: date, last: date, today: date | None = None) -> str:
    """The days of an all-day event: ``Monday 8 – Sunday 14 December``, ``Sunday 30 November –
    Tuesday 2 December``, ``Wednesday 31 December 2025 – Friday 2 January 2026`` (both years when it
    crosses one); ``Saturday 29 November`` for a single day. As ``day_text``, the year is added when
    it is not the year of ``today``."""
    if last <= first:
        return day_text(first, today)
    if first.year != last.year:
        return f"{first:%A} {first.day} {first:%B} {first.year} – {last:%A} {last.day} {last:%B} {last.year}"
    end = day_text(last, today)
    if first.month == last.month:
        return f"{first:%A} {first.day} – {end}"
    return f"{first:%A} {first.day} {first:%B} – {end}"


def when_text(event: Event, today: date | None = None) -> str:
    """When an event happens, in words: the day (or days, for an all-day event over several), then
    "at" a time or "from" one time "to" another."""
    start = event.start_time
    if start is None:
        return days_text(event.day, event.last_day, today)
    day = day_text(event.day, today)
    end = event.end_time
    if end is None:
        return f"{day} at {time_text(start)}"
    end_day = event.last_day
    if end == time() and end_day == event.day + timedelta(days=1):
        end_day = event.day  # "from 8:00pm to midnight", not "to Thursday 1 January at midnight"
    if end_day != event.day:
        return f"{day} from {time_text(start)} to {day_text(end_day, today)} at {time_text(end)}"
    return f"{day} from {time_text(start)} to {time_text(end)}"


def place_text(event: Event) -> str:
    """Where: the location, else "online" for an online event, else nothing."""
    if event.location:
        return event.location
    return "online" if event.online else ""


def sentence(text: str) -> str:
    """``text`` with a full stop at the end, unless it already ends a sentence."""
    text = text.strip()
    if not text:
        return ""
    if text[-1] in ".!?":
        return text
    return text + "."


def calendar_line(event: Event, today: date | None = None) -> str:
    """One line of the calendar: when, what, where (capitalised), then the contact line.

    ``Tuesday 18 November at 7:30pm: Kent Network speaker meeting. Online. Email … for a link.``
    """
    parts = [sentence(f"{when_text(event, today)}: {event.title}")]
    place = place_text(event)
    if place:
        parts.append(sentence(place[0].upper() + place[1:]))
    if event.contact:
        parts.append(sentence(event.contact))
    return " ".join(parts)


def event_uid(slug: str, entry_key: str, list_domain: str) -> str:
    """The iCalendar UID of a calendar entry: ``{slug}-{entry_key}@{list_domain}``, stable across sends.

    Every part is folded to one line (they are slugs and a domain, but a UID is a property line)."""
    return one_line(f"{slug}-{entry_key}@{list_domain}").replace(" ", "-")


def event_page_url(base_url: str, uid: str) -> str:
    """The public page of an event, where anyone can say they are coming: ``{base_url}/events/{uid
    without domain}``."""
    local = quote(uid.split("@", 1)[0], safe="")
    return f"{one_line(base_url).rstrip('/')}/events/{local}"


def rsvp_url(base_url: str, uid: str, token: str) -> str:
    """A member's RSVP link for an event: ``{base_url}/rsvp/{uid without domain}/{token}`` (in a
    message, ``token`` is the ``rsvp_token`` slot's marker; without a token, the link opens the
    event's public page)."""
    local = quote(uid.split("@", 1)[0], safe="")
    return f"{one_line(base_url).rstrip('/')}/rsvp/{local}/{token}"


def calendar_url(base_url: str, uid: str) -> str:
    """The "add to calendar" link of an entry: ``{base_url}/calendar/event/{uid without domain}.ics``.

    The UID's part is percent-encoded, so no character of it can end or break the link."""
    local = quote(uid.split("@", 1)[0], safe="")
    return f"{one_line(base_url).rstrip('/')}/calendar/event/{local}.ics"
