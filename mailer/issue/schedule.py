"""A digest's schedule and window, as field types: ``days`` (how far ahead), ``day`` (a weekday or a
day of the month) and ``time`` (of day), each parsing and explaining its own mistakes
(``PydanticCustomError`` with a ``hint``, located by ``mailer.issue.load``); and the rules that
tie them together (``day_fits_every``) or keep a digest's run-time fields out of its file."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_DIGEST_DAYS = 62
"""A digest looks at most this far ahead (two months): further, the list is long and still changing."""


def digest_days(value: int) -> int:
    if not 1 <= value <= MAX_DIGEST_DAYS:
        raise PydanticCustomError(
            "digest_days",
            "a digest cannot look {value} days ahead",
            {
                "value": repr(value),
                "hint": f"give days from 1 to {MAX_DIGEST_DAYS}: 7 for a weekly digest, 14 (the default) "
                "or 31 for a monthly one",
            },
        )
    return value


def send_day(value: object) -> str | int:
    """A weekly digest's day (``monday``) or a monthly one's day of the month (1 to 28)."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int) and 1 <= value <= 28:
        return value
    if isinstance(value, str) and value.strip().lower() in WEEKDAYS:
        return value.strip().lower()
    if isinstance(value, str) and value.strip().isdigit() and 1 <= int(value) <= 28:
        return int(value)
    raise PydanticCustomError(
        "digest_day",
        "not a day to send on: {value}",
        {
            "value": repr(value),
            "hint": "a weekly digest names a day of the week (day: monday); a monthly one a day of the "
            "month from 1 to 28 (day: 1), so that every month has it",
        },
    )


def send_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 readers see 08:00 as a number of minutes (sexagesimal); ours is 1.2, but be kind.
        return time(value // 60, value % 60)
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,2})[:.](\d{2})", value.strip())
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return time(int(match[1]), int(match[2]))
    raise PydanticCustomError(
        "digest_time",
        "not a time of day: {value}",
        {"value": repr(value), "hint": 'write the time on a 24-hour clock, e.g. time: "08:00"'},
    )


SendTime = Annotated[time, PlainValidator(send_time)]
DEFAULT_SEND_TIME = time(8, 0)


DigestDays = Annotated[int, AfterValidator(digest_days)]
SendDay = Annotated[str | int, PlainValidator(send_day)]


def day_fits_every(day: str | int, every: object) -> str | int:
    """A weekly digest's day is a weekday, a monthly one's a day of the month."""
    if every == "weekly" and not isinstance(day, str):
        raise PydanticCustomError(
            "digest_day",
            "a weekly digest goes out on a day of the week, not on day {value}",
            {"value": repr(day), "hint": "e.g. day: monday; or every: monthly for a day of the month"},
        )
    if every == "monthly" and not isinstance(day, int):
        raise PydanticCustomError(
            "digest_day",
            "a monthly digest goes out on a day of the month, not on {value}",
            {"value": repr(day), "hint": "give a day from 1 to 28, e.g. day: 1; or every: weekly"},
        )
    return day


def filled_by_each_run(value: list[Any], info: ValidationInfo) -> list[Any]:
    """A digest's ``calendar`` comes from the calendar at each run, never from its file."""
    if value and not (info.context or {}).get("digest_run"):
        raise PydanticCustomError(
            "digest_calendar",
            "a digest's events come from the calendar, not from its file",
            {
                "hint": "put the event in a newsletter's calendar (or accept it from a local group) "
                "and every digest lists it; remove it here"
            },
        )
    return value
