"""The forms layer: a typed model read into checked values or one message per field."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import ValidationInfo, field_validator, model_validator

from mailer.forms import FORM_ERROR, Form, FormRefused, is_list_field, read
from mailer.issue.schema import OneLine


class Stall(Form):
    messages: ClassVar[dict[str, str]] = {"helpers": "Give the number of helpers, like 3."}

    title: OneLine
    helpers: int = 1
    interests: tuple[str, ...] = ()
    note: str | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value:
            raise ValueError("Give the stall a title, like: Write for Rights stall.")
        return value

    @field_validator("interests")
    @classmethod
    def _known(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        known = (info.context or {}).get("interests", ())
        if any(v not in known for v in value):
            raise ValueError("Choose interests from the list.")
        return value

    @model_validator(mode="after")
    def _enough(self) -> Stall:
        if self.helpers > 10:
            raise ValueError("A stall needs at most 10 helpers.")
        return self


CONTEXT: dict[str, Any] = {"interests": ("refugees", "schools")}


def test_a_good_post_reads_into_typed_values() -> None:
    posted = {"title": "  Stall  ", "helpers": "3", "interests": ["refugees"], "x": "y"}
    got = read(Stall, posted, context=CONTEXT)
    assert got.ok and got.errors == {}
    form = got.checked()
    assert (form.title, form.helpers, form.interests) == ("Stall", 3, ("refugees",))


def test_each_wrong_field_gets_its_own_sentence() -> None:
    got = read(Stall, {"title": "", "helpers": "many", "interests": ["cats"]}, context=CONTEXT)
    assert not got.ok and got.form is None
    assert got.errors == {
        "title": "Give the stall a title, like: Write for Rights stall.",
        "helpers": "Give the number of helpers, like 3.",
        "interests": "Choose interests from the list.",
    }
    assert got.values["helpers"] == "many"  # shown again as posted
    with pytest.raises(FormRefused) as refused:
        got.checked()
    assert refused.value.errors == got.errors and refused.value.field == "title"


def test_a_missing_field_and_a_whole_form_check() -> None:
    assert read(Stall, {}).errors == {"title": "Fill in this field."}
    assert read(Stall, {"title": "Stall", "helpers": "11"}).errors == {
        FORM_ERROR: "A stall needs at most 10 helpers."
    }


def test_list_fields_are_known_by_their_type() -> None:
    assert is_list_field(Stall, "interests")
    assert not is_list_field(Stall, "title") and not is_list_field(Stall, "note")
