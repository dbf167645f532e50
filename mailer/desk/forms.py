"""The desk's own forms, declared with ``mailer.forms``: what an admin posts to give a person a
role, a new issue, and when to send one. (A contributor's forms are ``contribution_forms``; the
issue form, ``issueform``.)"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, PlainValidator, ValidationInfo, field_validator

from mailer.audience.shape import Shape
from mailer.desk import people, wording
from mailer.desk.approvals import Choice
from mailer.desk.people import Role
from mailer.errors import MailerError
from mailer.forms import Form, FormRefused, read
from mailer.issue.schema import SLUG
from mailer.settings import Settings

PERSON_FIELDS = ("email", "name", "role", "network", "region", "confirm")


class PersonForm(Form):
    """A person to add (or find) by address, with the role to give them."""

    email: str = ""
    name: str = ""
    role: str = ""
    network: str = ""
    region: str = ""
    confirm: str = ""  # "yes" once the admin confirmed making an admin (``needs_confirming``)


def needs_confirming(form: PersonForm, role: Role | None) -> bool:
    """Making someone an admin is confirmed first, on a page that names the scope."""
    return role is not None and role.role == "admin" and form.confirm != "yes"


def person(posted: Mapping[str, str], shape: Shape, settings: Settings) -> tuple[PersonForm, Role | None]:
    """The checked form and its role (``people.check_role``; None when no role was chosen: the
    person is added with none); ``FormRefused`` at the field that is wrong, with the values as
    posted."""
    form = read(PersonForm, posted).checked()
    if not form.role:
        return form, None
    try:
        role = people.check_role(shape, settings, form.role, form.network, form.region)
    except MailerError as exc:
        raise FormRefused({field_of(exc): plain(exc)}, values=posted) from None
    return form, role


def field_of(exc: MailerError) -> str:
    """The person form's field an error is about (the address when it names none of them)."""
    field = exc.field or "email"
    return field if field in PERSON_FIELDS else "email"


def plain(exc: MailerError) -> str:
    """The error's message and hint for a person on the page (no file, no field name, no
    command-line option: ``wording``)."""
    said = wording.words(exc)
    return said[:1].upper() + said[1:] + "."


# ---------------------------------------------------------------------------------------------
# A new issue


def _title(value: str) -> str:
    if not value:
        raise ValueError("Give the issue a title, e.g. Central England Network Newsletter: January 2026.")
    return value


def _slug(value: str) -> str:
    if not SLUG.match(value) or len(value) > 100:
        raise ValueError(
            "Give a name of lower-case letters, digits and hyphens, e.g. 2026-01-central-england."
        )
    return value


def _day(value: object) -> date:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else _no_day()
    except ValueError:
        return _no_day()


def _no_day() -> date:
    raise ValueError("Give the issue's date as YYYY-MM-DD, e.g. 2026-01-05.")


class NewIssueForm(Form):
    """A new issue of a network: its title, its folder's name (``campaigns/<slug>/``), its date."""

    title: Annotated[str, AfterValidator(_title)] = ""
    slug: Annotated[str, AfterValidator(_slug)] = ""
    date: Annotated[date, PlainValidator(_day)]


# ---------------------------------------------------------------------------------------------
# Sending an issue


class SendForm(Form):
    """When to send: ``now`` (anything else than ``later`` means now), or ``later`` at a
    wall-clock day and time (``at``, read by the send in the timezone setting)."""

    when: str = "now"
    at: str = ""

    @field_validator("at")
    @classmethod
    def _later_needs_a_time(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("when") == "later" and not value:
            raise ValueError("Give the day and time to send it.")
        return value

    def choice(self) -> Choice:
        later = self.when == "later"
        return Choice("later" if later else "now", self.at if later else "")
