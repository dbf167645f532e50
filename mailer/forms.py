"""Forms: what a person posts, declared once as a typed model, read into values or errors by field.

A form is a pydantic model (``Form``) whose fields reuse the issue schema's types where they fit
(``mailer.issue.schema.OneLine``, ``Url``, ``RegionSlug`` …). ``read`` turns the posted fields into
either the checked model or a message per field, never both: the surface (a web page, the CLI, a
test) shows the form again with ``values`` and ``errors``. A check that needs more than one field,
or data from the database, is a ``model_validator`` or a plain function that raises ``FormRefused``
with the fields it blames; ``FormRefused`` is the one refusal the surfaces render.

Messages are for a volunteer: a field validator raises ``ValueError("Give the event a title.")``
and that sentence is the field's error as it is. Where pydantic itself refuses a value (missing,
not a number, too long), the form's ``messages`` say what to write instead.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mailer.errors import MailerError

F = TypeVar("F", bound="Form")

FORM_ERROR = "__form__"  # the key of an error that belongs to the whole form, not one field
_LISTS = (list, tuple, set, frozenset)


class Form(BaseModel):
    """Base of every form: unknown posted fields ignored, text stripped, values frozen."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    # What to say when pydantic refuses a field's value itself, by field name.
    messages: ClassVar[dict[str, str]] = {}


class FormRefused(MailerError, ValueError):
    """A posted form that cannot be taken: a message per field (``FORM_ERROR`` for the whole form)
    and the values as posted, to show the form again."""

    exit_code = 2

    def __init__(self, errors: Mapping[str, str], *, values: Mapping[str, object] | None = None) -> None:
        self.errors = dict(errors)
        self.values = dict(values or {})
        first = next(iter(self.errors.items()), (FORM_ERROR, "The form could not be taken."))
        super().__init__(first[1], field=None if first[0] == FORM_ERROR else first[0])


@dataclass(frozen=True)
class Read(Generic[F]):
    """A form as read: the checked ``form`` (None when any field is wrong), the ``values`` as
    posted and the ``errors`` by field."""

    form: F | None
    values: dict[str, object]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.form is not None

    def checked(self) -> F:
        """The checked form, or ``FormRefused`` with the errors and values."""
        if self.form is None:
            raise FormRefused(self.errors, values=self.values)
        return self.form


def is_list_field(model: type[Form], name: str) -> bool:
    """Whether the field ``name`` takes every posted value (checkboxes, a multiple select)."""
    annotation = model.model_fields[name].annotation
    for part in typing.get_args(annotation) if _is_union(annotation) else (annotation,):
        if typing.get_origin(part) in _LISTS or part in _LISTS:
            return True
    return False


def _is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def read(
    model: type[F], posted: Mapping[str, object], *, context: Mapping[str, Any] | None = None
) -> Read[F]:
    """Check ``posted`` (field name to a value, or a list for list fields) against ``model``.

    Fields that were not posted take the model's defaults; ``context`` reaches the validators
    (``info.context``) for what a check needs beyond the post: the region tree, today's date."""
    values = {name: posted[name] for name in model.model_fields if name in posted}
    try:
        form = model.model_validate(values, context=dict(context or {}))
    except ValidationError as exc:
        return Read(None, values, errors_of(model, exc))
    return Read(form, values)


def errors_of(model: type[Form], exc: ValidationError) -> dict[str, str]:
    """One message per field from pydantic's errors: the validator's own sentence, else the
    form's message for the field, else a plain one."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc else FORM_ERROR
        if name in errors:
            continue
        errors[name] = _message(model, name, error)
    return errors


def _message(model: type[Form], name: str, error: Any) -> str:
    if error.get("type") == "value_error":
        cause = error.get("ctx", {}).get("error")
        if cause is not None and str(cause):
            return str(cause)
    if name in model.messages:
        return model.messages[name]
    if error.get("type") == "missing":
        return "Fill in this field."
    return "Check this field: " + str(error.get("msg", "it could not be read")).rstrip(".") + "."
