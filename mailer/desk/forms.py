"""The desk's own forms, declared with ``mailer.forms``: what an admin posts to give a person a
role. (A contributor's forms are ``contribution_forms``; the issue form, ``issueform``.)"""

from __future__ import annotations

from collections.abc import Mapping

from mailer.audience.shape import Shape
from mailer.desk import people
from mailer.desk.people import Role
from mailer.errors import MailerError
from mailer.forms import Form, FormRefused, read
from mailer.settings import Settings

PERSON_FIELDS = ("email", "name", "role", "network", "region")


class PersonForm(Form):
    """A person to add (or find) by address, with the role to give them."""

    email: str = ""
    name: str = ""
    role: str = ""
    network: str = ""
    region: str = ""


def person(posted: Mapping[str, str], shape: Shape, settings: Settings) -> tuple[PersonForm, Role]:
    """The checked form and its role (``people.check_role``); ``FormRefused`` at the field that
    is wrong, with the values as posted."""
    form = read(PersonForm, posted).checked()
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
    """The error's message and hint for a person on the page (no file, no field name)."""
    hint = exc.problem.hint
    return exc.message[:1].upper() + exc.message[1:] + (f": {hint}" if hint else ".")
