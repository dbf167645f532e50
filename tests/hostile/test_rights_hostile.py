"""Hostile addresses given to subject access and erasure (docs/data.md): odd case, Unicode forms
and white space find the same person; an unknown address, one whose characters are LIKE
wildcards, or no address at all changes nothing and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.audience.importer import import_csv
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.errors import UnknownName
from mailer.models import Base, Member
from mailer.rights import access, erasure
from mailer.settings import Settings

CSV = (
    "email,name,postcode,consent_source\n"
    "ann@bücher.example,Ann Bücher,CT4 7QZ,signup\n"  # an IDNA domain, stored as xn--bcher-kva
    "axn@example.org,Axn Wild,,signup\n"
)


@pytest.fixture
def two(db: Database, shape: Shape, tmp_path: Path) -> Database:
    path = tmp_path / "two.csv"
    path.write_text(CSV, encoding="utf-8")
    with db.session() as session:
        assert import_csv(session, path, shape).added == 2
    return db


def _counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


@pytest.mark.parametrize(
    "spelling",
    [
        "  ANN@BÜCHER.EXAMPLE\n",
        "Ann@Bu\u0308cher.example",  # decomposed ü (NFD)
        "\tann@xn--bcher-kva.example ",
    ],
)
def test_odd_spellings_find_the_same_person(two: Database, settings: Settings, spelling: str) -> None:
    with two.session() as session:
        data = access.subject_access(session, settings, spelling).as_dict()
    assert data["address"] == "ann@xn--bcher-kva.example" and data["member"]["name"] == "Ann Bücher"


def test_forget_by_an_odd_spelling_erases_that_person_only(two: Database, settings: Settings) -> None:
    report = erasure.forget(two, settings, " ANN@Bu\u0308CHER.example", actor="dpo")
    assert report.found and report.member_erased
    with two.session() as session:
        assert session.scalars(select(Member.email)).all() == ["axn@example.org"]


@pytest.mark.parametrize("address", ["nobody@example.org", "a_n@example.org", "%@example.org"])
def test_forget_of_an_unknown_address_changes_nothing(
    two: Database, settings: Settings, workspace: Path, address: str
) -> None:
    before = _counts(two)
    files = {p: p.read_bytes() for p in workspace.rglob("*") if p.is_file()}
    report = erasure.forget(two, settings, address, actor="dpo")
    assert not report.found and not report.rows_scrubbed and not report.files_removed
    assert _counts(two) == before
    assert {p: p.read_bytes() for p in workspace.rglob("*") if p.is_file()} == files
    with two.session() as session, pytest.raises(UnknownName, match="nothing is held"):
        access.subject_access(session, settings, address)


@pytest.mark.parametrize("given", ["", "not an address", "ann@", "@example.org", "a" * 400 + "@example.org"])
def test_what_is_not_an_address_is_refused_with_its_reason(
    two: Database, settings: Settings, given: str
) -> None:
    before = _counts(two)
    with pytest.raises(UnknownName, match="not a valid address"):
        erasure.forget(two, settings, given, actor="dpo")
    with two.session() as session, pytest.raises(UnknownName, match="not a valid address"):
        access.subject_access(session, settings, given)
    assert _counts(two) == before
