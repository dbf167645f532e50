"""An RFC 5545 check of every iCalendar file the project makes (feeds, one-event files, any ICS a
mail carries), applied by the tests that fetch them: ``check_ics(body)`` parses it back with
``icalendar`` and returns the calendar, or fails naming the event and the property.

What it holds each file to (RFC 5545 sections in brackets):

- one VCALENDAR with VERSION:2.0 and a PRODID (3.7.3, 3.7.4);
- every VEVENT has UID, DTSTAMP and DTSTART (3.6.1), and SEQUENCE (3.8.7.4: the project always
  writes it, so that an edited event updates in a client);
- a timed VEVENT has DTEND or DURATION (else a client shows an instant), never both, and ends
  after it starts; DTSTAMP and LAST-MODIFIED are UTC;
- an all-day VEVENT (DTSTART;VALUE=DATE) has a DATE DTEND after it and TRANSP:TRANSPARENT (it
  marks nobody busy), a timed one TRANSP:OPAQUE;
- every TZID used has its VTIMEZONE in the file (3.2.19).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import icalendar


def check_ics(body: bytes | str) -> icalendar.Calendar:
    """``body`` parsed, after the checks above; AssertionError naming what is wrong."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    assert data.startswith(b"BEGIN:VCALENDAR"), "an iCalendar file starts with BEGIN:VCALENDAR"
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b""), "lines end with CRLF (3.1)"
    cal = icalendar.Calendar.from_ical(data)
    assert str(cal.get("VERSION", "")) == "2.0", "VCALENDAR has VERSION:2.0"
    assert str(cal.get("PRODID", "")).strip(), "VCALENDAR has a PRODID"
    zones = {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")}
    for event in cal.walk("VEVENT"):
        _check_event(event, zones)
    return cal


def _check_event(event: icalendar.Event, zones: set[str]) -> None:
    uid = str(event.get("UID", ""))
    where = f"VEVENT {uid or '(no UID)'}"
    for name in ("UID", "DTSTAMP", "DTSTART", "SEQUENCE"):
        assert name in event, f"{where} has {name}"
    assert int(event["SEQUENCE"]) >= 0, f"{where}: SEQUENCE is a non-negative integer"
    for name in ("DTSTAMP", "LAST-MODIFIED"):
        if name in event:
            value = event.decoded(name)
            assert isinstance(value, datetime) and value.utcoffset() == UTC.utcoffset(None), (
                f"{where}: {name} in UTC"
            )
    start = event.decoded("DTSTART")
    has_end, has_duration = "DTEND" in event, "DURATION" in event
    assert not (has_end and has_duration), f"{where} has DTEND or DURATION, not both"
    transp = str(event.get("TRANSP", ""))
    if isinstance(start, datetime):
        assert has_end or has_duration, f"{where}: a timed event has DTEND or DURATION"
        end = event.decoded("DTEND") if has_end else start + event.decoded("DURATION")
        assert isinstance(end, datetime) and end > start, f"{where} ends after it starts"
        assert transp == "OPAQUE", f"{where}: a timed event is TRANSP:OPAQUE"
        for name in ("DTSTART", "DTEND"):
            tzid = event[name].params.get("TZID") if name in event else None
            assert tzid is None or str(tzid) in zones, f"{where}: {name}'s TZID {tzid} has a VTIMEZONE"
    else:
        assert isinstance(start, date), f"{where}: DTSTART is a date or a date-time"
        if has_end:
            end_day = event.decoded("DTEND")
            assert type(end_day) is date and end_day > start, f"{where}: an all-day DTEND is a later date"
        assert transp == "TRANSPARENT", f"{where}: an all-day event is TRANSP:TRANSPARENT"
