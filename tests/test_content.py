"""Issue files: loading, validation (every problem at once, with file, line and field), warnings,
the seed newsletter as an issue, the scaffold, and ``mailer campaigns new`` / ``check``."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from support.cli_runner import MailerCli
from support.hashes import hash_of
from support.seed import SEED_HIGHLIGHTS

from mailer.audience.shape import Shape, load_shape
from mailer.db import Database
from mailer.errors import ContentError, UnknownName
from mailer.issue import (
    Alert,
    Event,
    Item,
    LoadedIssue,
    Newsletter,
    audience_warnings,
    load_campaign,
    load_issue,
    new_campaign,
)
from mailer.models import Interest, Member, MemberInterest, Region
from mailer.settings import Settings

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "content"
KENT = "2025-11-kent-network"
ECHR = "2025-11-echr-alert"

# The seed's nine calendar entries: (start, end) in date order.
SEED_CALENDAR = [
    (datetime(2025, 11, 18, 19, 30), None),  # Stand Up to Racism speaker meeting
    (datetime(2025, 11, 22, 12, 0), None),  # Stand Up at Trafalgar Square, noon
    (datetime(2025, 11, 25, 18, 0), datetime(2025, 11, 25, 19, 30)),  # direct action training
    (datetime(2025, 11, 25, 18, 30), None),  # Defend Dissent London launch
    (datetime(2025, 11, 27, 18, 30), None),  # Defend Dissent online launch
    (date(2025, 11, 29), None),  # Write for Rights stall at Faversham market, all day
    (datetime(2025, 11, 29, 10, 45), None),  # Soroptimist march, Canterbury
    (datetime(2025, 12, 1, 19, 30), datetime(2025, 12, 1, 21, 0)),  # Maidstone, Medway and Swale Group
    (datetime(2025, 12, 3, 13, 0), datetime(2025, 12, 3, 15, 0)),  # Guantanamo vigil
]


@pytest.fixture(scope="module")
def repo_shape() -> Shape:
    return load_shape(REPO / "lists")


@pytest.fixture(scope="module")
def kent(repo_shape: Shape) -> LoadedIssue:
    return load_campaign(REPO, KENT, repo_shape)


def newsletter(loaded: LoadedIssue) -> Newsletter:
    assert isinstance(loaded.issue, Newsletter)
    return loaded.issue


def write(folder: Path, text: str) -> Path:
    path = folder / "issue.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# One test per validation error: tests/fixtures/content/*.yaml, each with one mistake whose line
# ends with "# expect: FIELD" and whose expected message is on the first line.


def expectation(path: Path) -> tuple[str, int, str | None]:
    lines = path.read_text(encoding="utf-8").splitlines()
    message = lines[0].removeprefix("# message:").strip()
    for number, line in enumerate(lines, 1):
        m = re.search(r"# expect: (\S+)\s*$", line)
        if m:
            field = None if m.group(1) == "-" else m.group(1)
            return message, number, field
    raise AssertionError(f"{path.name} has no '# expect:' line")


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_mistake_is_reported_with_file_line_and_field(path: Path, repo_shape: Shape) -> None:
    message, line, field = expectation(path)
    with pytest.raises(ContentError) as caught:
        load_issue(path, repo_shape)
    problems = caught.value.problems
    assert len(problems) == 1, "\n".join(map(str, problems))
    problem = problems[0]
    assert (problem.path, problem.line, problem.field) == (path, line, field)
    assert message in problem.message + (f" ({problem.hint})" if problem.hint else "")
    assert problem.column is not None, "every error names its column"
    text = path.read_text(encoding="utf-8").splitlines()[line - 1]
    assert 1 <= problem.column <= len(text), "the column is on the line: at its key or its value"
    assert text[problem.column - 1] not in " #", "the column points at the key or the value"
    shown = str(caught.value)
    assert f"{path.name}:{line}:{problem.column}: " in shown
    if field:
        assert f"{path.name}:{line}:{problem.column}: {field}: " in shown
    assert problem.severity == "error"


def test_malformed_yaml_names_the_column(repo_shape: Shape) -> None:
    path = FIXTURES / "malformed_yaml.yaml"
    with pytest.raises(ContentError) as caught:
        load_issue(path, repo_shape)
    problem = caught.value.problems[0]
    assert problem.column == 15
    assert f"malformed_yaml.yaml:{problem.line}:15: not valid YAML" in str(caught.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path, repo_shape: Shape) -> None:
    path = write(
        tmp_path / "many",
        """\
kind: newsletter
title: Many mistakes
subject: Many mistakes
date: 2025-11-17
audience: region:kent and interest:refugee
items:
  - id: one
    title: One
    highlight: do one thing
    regions: [kentt]
    image: {src: "https://www.example.org/a.png", alt: ""}
    events:
      - title: Meeting
        start: 2025-11-20 19:30
        end: "19:00"
  - id: one
    title: Two
    colour: red
    events:
      - {title: Stall, start: 2025-11-29, interests: [fundraisin]}
calendar:
  - {title: Vigil, start: 2025-12-03 13:00, regions: [nowhere]}
""",
    )
    with pytest.raises(ContentError) as caught:
        load_issue(path, repo_shape)
    found = {(p.line, p.field) for p in caught.value.problems}
    assert found == {
        (5, "audience"),
        (10, "items[0].regions[0]"),
        (11, "items[0].image.alt"),
        (15, "items[0].events[0].end"),
        (16, "items[1].id"),
        (16, "items[1].highlight"),
        (18, "items[1].colour"),
        (20, "items[1].events[0].interests[0]"),
        (22, "calendar[0].regions[0]"),
    }
    assert str(caught.value).startswith(f"{path}: 9 problems found:")


def test_without_a_shape_names_are_not_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x",
        "kind: newsletter\ntitle: T\nsubject: S\ndate: 2025-11-17\naudience: region:anywhere\n"
        "items:\n  - {id: a, title: A, highlight: h, regions: [anywhere]}\n",
    )
    loaded = load_issue(path, None)
    assert newsletter(loaded).items[0].regions == ["anywhere"]


def test_times_are_not_yaml_numbers_and_reports_need_highlight_false(
    tmp_path: Path, repo_shape: Shape
) -> None:
    path = write(
        tmp_path / "x",
        """\
kind: newsletter
title: T
subject: S
date: 2025-11-17
items:
  - id: report
    title: A report
    highlight: false
    events:
      - {title: Meeting, start: 2025-12-01 19:30, end: 21:00}
""",
    )
    loaded = load_issue(path, repo_shape)
    item = newsletter(loaded).items[0]
    assert item.is_report and item.highlight is None
    event = item.events[0]
    zone = Settings().zone
    assert event.end_at(zone) == datetime(2025, 12, 1, 21, 0, tzinfo=event.start_at(zone).tzinfo)
    assert str(event.start_at(zone).tzinfo) == "Europe/London"
    assert loaded.line("items[0].events[0].end") == 10


def test_missing_file_and_unknown_campaign(tmp_path: Path, repo_shape: Shape) -> None:
    with pytest.raises(ContentError) as caught:
        load_issue(tmp_path / "nope" / "issue.yaml", repo_shape)
    assert "no such issue file" in str(caught.value)
    with pytest.raises(UnknownName) as unknown:
        load_campaign(REPO, "2025-11-kent-netwrok", repo_shape)
    assert unknown.value.problem.hint == f"did you mean {KENT!r}?"


# ---------------------------------------------------------------------------------------------
# Warnings


def test_warnings_past_events_and_http_links(tmp_path: Path, repo_shape: Shape) -> None:
    path = write(
        tmp_path / "warn",
        """\
kind: newsletter
title: T
subject: S
date: 2025-11-17
items:
  - id: one
    title: One
    highlight: do one thing
    body: |
      Read [the old page](http://www.example.org/old) and [the new one](https://www.example.org/new).
    links:
      - {text: Old link, url: "http://www.example.org/list"}
    image: {src: "http://www.example.org/a.png", alt: A poster}
    events:
      - title: Last week's meeting
        start: 2025-11-10 19:30
        booking: {text: Book, url: "http://www.example.org/book"}
      - {title: On the day, start: 2025-11-17}
calendar:
  - {title: Long ago, start: 2025-10-01}
""",
    )
    loaded = load_issue(path, repo_shape)
    warned = [(p.line, p.field, p.severity) for p in loaded.warnings]
    assert warned == [
        (9, "items[0].body", "warning"),
        (12, "items[0].links[0].url", "warning"),
        (13, "items[0].image.src", "warning"),
        (16, "items[0].events[0].start", "warning"),
        (17, "items[0].events[0].booking.url", "warning"),
        (20, "calendar[0].start", "warning"),
    ]
    assert "http://www.example.org/old" in loaded.warnings[0].message
    assert "before the issue's date 2025-11-17" in loaded.warnings[3].message
    assert "warning: items[0].events[0].start" in str(loaded.warnings[3])


PEACE_WEEK = """\
kind: newsletter
title: Peace
subject: Peace
date: 2025-11-17
audience: region:kent
calendar:
  - title: Peace Week
    start: 2025-12-08
    end: 2025-12-14
    location: Canterbury
"""


def test_an_all_day_event_over_several_days(tmp_path: Path, repo_shape: Shape) -> None:
    loaded = load_issue(write(tmp_path / "peace", PEACE_WEEK), repo_shape)
    (event,) = newsletter(loaded).calendar
    assert event.all_day and event.start == date(2025, 12, 8) and event.end == date(2025, 12, 14)
    assert (event.day, event.last_day, event.days) == (date(2025, 12, 8), date(2025, 12, 14), 7)
    assert event.start_time is None and event.end_time is None and event.end_at(Settings().zone) is None
    assert loaded.warnings == []
    # One day, written with an end on the same day, is a single all-day event.
    one = load_issue(write(tmp_path / "one", PEACE_WEEK.replace("2025-12-14", "2025-12-08")), repo_shape)
    assert newsletter(one).calendar[0].days == 1


def test_events_over_several_days_warn_as_past_only_after_their_last_day(
    tmp_path: Path, repo_shape: Shape
) -> None:
    ongoing = PEACE_WEEK.replace("2025-12-08", "2025-11-10").replace("2025-12-14", "2025-11-20")
    assert load_issue(write(tmp_path / "ongoing", ongoing), repo_shape).warnings == []
    over = PEACE_WEEK.replace("2025-12-08", "2025-11-10").replace("2025-12-14", "2025-11-12")
    (warning,) = load_issue(write(tmp_path / "over", over), repo_shape).warnings
    assert (warning.line, warning.field, warning.severity) == (9, "calendar[0].end", "warning")
    assert warning.message == "the event ends on 2025-11-12, before the issue's date 2025-11-17"


MARKUP = """\
kind: newsletter
title: Pasted
subject: Pasted <b>bold</b>
date: 2025-11-17
audience: all
intro: |
  Welcome.
  <script>alert(1)</script>
items:
  - id: one
    title: One
    highlight: do one thing
    body: |
      Click <a href="https://www.example.org" onclick="steal()">here</a>.
      Or javascript:alert(document.cookie) if you dare.
      Writing `<b>` in code is fine, and so is <https://www.example.org> and <me@example.org>.
    contact: <iframe src="https://evil.example.org"></iframe>
    links:
      - {text: "<img src=x onerror=alert(1)>", url: "https://www.example.org/ok"}
calendar:
  - {title: "Vigil <style>body{}</style>", start: 2025-12-03 13:00, location: "javascript:void(0)"}
"""


def test_warnings_pasted_markup_and_javascript_text(tmp_path: Path, repo_shape: Shape) -> None:
    loaded = load_issue(write(tmp_path / "markup", MARKUP), repo_shape)
    found = [(p.line, p.field, p.message) for p in loaded.warnings]
    assert found == [
        (3, "subject", "pasted markup <b>: readers see it as text (none of it runs)"),
        (6, "intro", "pasted markup <script>: readers see it as text (none of it runs)"),
        (13, "items[0].body", "pasted markup onclick=, <a>: readers see it as text (none of it runs)"),
        (13, "items[0].body", "javascript:alert(document.cookie) is not a link: readers see it as text"),
        (17, "items[0].contact", "pasted markup <iframe>: readers see it as text (none of it runs)"),
        (
            19,
            "items[0].links[0].text",
            "pasted markup onerror=, <img>: readers see it as text (none of it runs)",
        ),
        (21, "calendar[0].title", "pasted markup <style>: readers see it as text (none of it runs)"),
        (21, "calendar[0].location", "javascript:void(0) is not a link: readers see it as text"),
    ]
    assert all(p.severity == "warning" and p.path == loaded.path and p.hint for p in loaded.warnings)
    assert "Markdown" in (loaded.warnings[0].hint or "")
    assert f"{loaded.path}:13: warning: items[0].body: pasted markup" in str(loaded.warnings[2])


def test_warnings_come_with_the_errors_in_one_pass(tmp_path: Path, repo_shape: Shape) -> None:
    broken = MARKUP.replace("highlight: do one thing", "highlight: do one thing\n    colour: red").replace(
        "start: 2025-12-03 13:00", "start: 2025-10-03 13:00, regions: [kentt]"
    )
    with pytest.raises(ContentError) as caught:
        load_issue(write(tmp_path / "broken", broken), repo_shape)
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (13, "items[0].colour"),
        (22, "calendar[0].regions[0]"),
    ]
    warned = {(p.line, p.field) for p in caught.value.warnings}
    assert (6, "intro") in warned and (14, "items[0].body") in warned
    assert (22, "calendar[0].start") in warned  # the past event: its start still parses
    assert str(caught.value).startswith(f"{tmp_path / 'broken' / 'issue.yaml'}: 2 problems found:")
    # A field with an error gets no warning too: the error says it.
    bad_link = (
        PEACE_WEEK
        + "items:\n  - {id: a, title: A, highlight: h, links: [{text: x, url: 'javascript:x()'}]}\n"
    )
    with pytest.raises(ContentError) as caught:
        load_issue(write(tmp_path / "bad-link", bad_link), repo_shape)
    assert [p.field for p in caught.value.problems] == ["items[0].links[0].url"]
    assert caught.value.warnings == []


def add_member(session: Session, email: str, region: str, interests: list[str]) -> None:
    region_id = session.scalar(select(Region.id).where(Region.slug == region))
    member = Member(email=email, address_hash=hash_of(email), region_id=region_id)
    session.add(member)
    session.flush()
    for slug in interests:
        interest_id = session.scalar(select(Interest.id).where(Interest.slug == slug))
        assert interest_id is not None
        session.add(MemberInterest(member_id=member.id, interest_id=interest_id))
    session.flush()


def test_audience_warnings_name_items_no_member_would_see(db: Database, shape: Shape) -> None:
    loaded = load_campaign(REPO, KENT, shape)
    with db.session() as session:
        add_member(session, "a@example.org", "canterbury", [])
        add_member(session, "b@example.org", "maidstone-medway-swale", ["refugees"])
        # Outside the audience (region:kent): does not make the schools item visible.
        add_member(session, "c@example.org", "birmingham", ["schools", "students"])
    with db.session() as session:
        warnings = audience_warnings(session, loaded, shape)
    issue = newsletter(loaded)
    unseen = {p.field or "" for p in warnings}
    ids = {f"items[{i}]": item.id for i, item in enumerate(issue.items)}
    assert {ids[f] for f in unseen} == {
        "relationships-sex-education",
        "defend-dissent",
        "links-with-mps",
        "working-with-schools",
        "social-media",
    }
    first = next(p for p in warnings if ids[p.field or ""] == "working-with-schools")
    assert first.severity == "warning" and first.line == loaded.line(first.field or "")
    assert "interests schools" in first.message

    with db.session() as session:
        alert = audience_warnings(session, load_campaign(REPO, ECHR, shape), shape)
    assert [p.field for p in alert] == ["audience"]
    assert "no member is in the audience 'interest:mp-advocacy'" in alert[0].message


def test_audience_all_is_checked_like_any_other(db: Database, shape: Shape, tmp_path: Path) -> None:
    """`audience: all` compiled to an EXISTS with no table ("no tables specified")."""
    source = (REPO / "campaigns" / KENT / "issue.yaml").read_text(encoding="utf-8")
    path = write(tmp_path / KENT, re.sub(r"(?m)^audience: .*$", "audience: all", source))
    loaded = load_issue(path, shape)
    with db.session() as session:
        assert [p.field for p in audience_warnings(session, loaded, shape)] == ["audience"]
        add_member(session, "a@example.org", "canterbury", ["schools", "students", "refugees"])
        add_member(session, "b@example.org", "birmingham", ["mp-advocacy", "womens-rights"])
    with db.session() as session:
        warnings = audience_warnings(session, loaded, shape)
    assert "audience" not in {p.field for p in warnings}
    assert len(warnings) < len(newsletter(loaded).items)


# ---------------------------------------------------------------------------------------------
# Hostile files: nesting, size and aliases, each with its own located message
# (tests/hostile/yaml/ replays more through the CLI)


def problems(path: Path) -> list[str]:
    with pytest.raises(ContentError) as caught:
        load_issue(path, None)
    return [f"{p.line}: {p.message}" for p in caught.value.problems]


def only_problem(path: Path) -> str:
    (problem,) = problems(path)
    return problem


def test_deep_nesting_is_a_located_error_not_a_recursion_error(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow", "kind: newsletter\ntitle: " + "[" * 600 + "]" * 600 + "\n")
    assert only_problem(flow) == "2: values nested more than 50 levels deep"
    block = "kind: newsletter\n" + "".join("  " * i + f"k{i}:\n" for i in range(600)) + "  " * 600 + "v\n"
    assert only_problem(write(tmp_path / "block", block)) == "51: values nested more than 50 levels deep"
    ok = "kind: newsletter\nx: " + "[" * 45 + "]" * 45 + "\n"
    assert not any("nested" in p for p in problems(write(tmp_path / "ok", ok)))


@pytest.mark.slow
def test_a_big_file_is_refused_for_its_size_not_as_an_alias_bomb(tmp_path: Path) -> None:
    big = write(tmp_path / "big", "kind: newsletter\nintro: " + "lorem ipsum " * (11 * 1024 * 1024 // 12))
    assert only_problem(big) == "None: the issue file is 11 MB; an issue file is at most 2 MB"
    many = write(tmp_path / "many", "kind: newsletter\ncalendar: [" + ",".join(["1"] * 100_001) + "]\n")
    assert only_problem(many) == "2: the file holds more than 100,000 values; an issue needs far fewer"


def test_only_real_alias_expansion_is_an_alias_bomb(tmp_path: Path) -> None:
    lines = ["kind: newsletter", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    bomb = write(tmp_path / "bomb", "\n".join(lines) + "\n")
    assert only_problem(bomb) == "2: YAML aliases (*name) expand to more than 100,000 values"
    few = write(tmp_path / "few", "kind: newsletter\na: &a [1, 2]\nb: [*a, *a, *a]\n")
    assert not any("alias" in p for p in problems(few))


def test_event_titles_places_and_contacts_are_folded_to_one_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "multi",
        """kind: newsletter
title: Multi-line
subject: Multi-line
date: 2025-11-17
audience: all
intro: Events.
sign_off: Bye.
items:
  - id: picnic
    title: Picnic
    highlight: come to the picnic
    body: Bring food.
    events:
      - title: "Summer\\npicnic\\L at\\tnoon"
        start: 2025-12-10 19:00
        location: |
          Mote Park,
          Maidstone
        contact: "Email\\r\\nus"
""",
    )
    event = newsletter(load_issue(path, None)).items[0].events[0]
    assert (event.title, event.location, event.contact) == (
        "Summer picnic at noon",
        "Mote Park, Maidstone",
        "Email us",
    )


# ---------------------------------------------------------------------------------------------
# The seed newsletter as an issue file


def test_kent_issue_loads_without_errors_or_warnings(kent: LoadedIssue) -> None:
    assert kent.slug == KENT
    assert kent.warnings == []
    issue = newsletter(kent)
    assert issue.audience == "region:kent"
    assert issue.date == date(2025, 11, 17)


def test_kent_issue_has_the_seeds_18_highlights_in_order(kent: LoadedIssue) -> None:
    highlights = [item.highlight for item in newsletter(kent).items if item.highlight is not None]
    assert highlights == SEED_HIGHLIGHTS


def test_kent_issue_has_every_section_of_the_seed(kent: LoadedIssue) -> None:
    issue = newsletter(kent)
    reports = [item.id for item in issue.items if item.is_report]
    assert reports == ["south-east-gathering", "protect-the-protest"]
    text = "\n".join(f"{item.title}\n{item.body}" for item in issue.items)
    for phrase in [
        "Steve Wilkins of Kent Stand Up to Racism",
        "gathered in Tunbridge Wells on 18 October",
        "Thousands of Amnesty members and",
        "European Convention on Human Rights (ECHR)",
        "arrest warrant for Benjamin Netanyahu",
        "Stephanie Lord encouraged us all",
        "ten practical tips",
        "suspend Refugee Family Reunion",
        "Set up a Social Security Commission",
        "KS5 students",
        "Sheikh Zayed Theatre",
        "judicial review of its decision to ban",
        "strategic approach to our",
        "stronger links with local",
        "especially\nInstagram",
        "Christmas Range",
        "direct action tactics",
        "what you wear never justifies sexual",
        "Wear something orange",
    ]:
        assert phrase in text, phrase
    assert issue.sign_off == "All the best\nGraham"


def test_kent_issue_has_the_seeds_nine_calendar_entries(kent: LoadedIssue) -> None:
    events = [e for _, e in newsletter(kent).events()]
    assert len(events) == 9
    found = sorted(
        ((e.start, e.end) for e in events),
        key=lambda pair: (
            pair[0] if isinstance(pair[0], datetime) else datetime.combine(pair[0], datetime.min.time())
        ),
    )
    assert found == SEED_CALENDAR


def test_kent_issue_targets_items_sensibly(kent: LoadedIssue) -> None:
    issue = newsletter(kent)
    items = {item.id: item for item in issue.items}

    def event(item_id: str, title_start: str) -> Event:
        return next(e for e in items[item_id].events if e.title.startswith(title_start))

    assert event("write-for-rights", "Write for Rights stall").regions == ["maidstone-medway-swale"]
    assert items["write-for-rights"].regions == []
    assert items["soroptimist-march"].regions == ["canterbury"]
    assert items["working-with-schools"].interests == ["schools"]
    assert items["social-media"].interests == ["social-media"]
    assert items["links-with-mps"].interests == ["mp-advocacy"]
    assert items["defend-dissent"].interests == ["students"]
    assert items["refugees"].interests == items["refugee-family-reunion"].interests == ["refugees"]
    assert items["relationships-sex-education"].interests == ["womens-rights"]
    meeting = next(e for e in issue.calendar if e.title.startswith("Maidstone, Medway and Swale"))
    assert meeting.regions == ["maidstone-medway-swale"]
    everyone: list[Item] = [i for i in issue.items if not i.regions and not i.interests]
    assert {"speaker-meeting", "write-for-rights", "echr", "amnesty-shop"} <= {i.id for i in everyone}
    assert items["refugees"].image is not None and items["refugees"].image.alt


def test_echr_alert(repo_shape: Shape) -> None:
    loaded = load_campaign(REPO, ECHR, repo_shape)
    assert isinstance(loaded.issue, Alert)
    assert loaded.issue.audience == "interest:mp-advocacy"
    assert loaded.issue.button.url.startswith("https://")
    assert "European Convention on Human Rights" in loaded.issue.body
    assert loaded.warnings == []


PHONE = re.compile(r"(?<![\d-])(?:\+44\s?|0)(?:\d[\s-]?){9,10}(?!\d)")
ADDRESS = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")


def test_campaigns_hold_no_phone_numbers_and_only_example_org_addresses() -> None:
    files = [p for p in (REPO / "campaigns").rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not PHONE.search(text), f"{path}: phone number {PHONE.search(text)}"
        domains = set(ADDRESS.findall(text))
        assert domains <= {"example.org"}, f"{path}: addresses at {domains - {'example.org'}}"
    # The regexes do catch what the seed had.
    assert PHONE.search("Contact Ceyda Kemanci at 07495 673630 for information")
    assert ADDRESS.findall("email annabelle_clayton@hotmail.co.uk.") == ["hotmail.co.uk"]


# ---------------------------------------------------------------------------------------------
# The scaffold


@pytest.mark.parametrize("kind", ["newsletter", "alert"])
def test_scaffold_fails_only_with_fill_me_in_problems_until_filled_in(
    kind: str, tmp_path: Path, repo_shape: Shape
) -> None:
    path = new_campaign(tmp_path, "2025-12-test", kind, repo_shape, today=date(2025, 12, 1))
    assert path == tmp_path / "campaigns" / "2025-12-test" / "issue.yaml"
    with pytest.raises(ContentError) as caught:
        load_issue(path, repo_shape)
    problems = caught.value.problems
    assert problems and all(p.message == "still to fill in (it says TODO)" for p in problems)
    assert all(p.line for p in problems)
    path.write_text(path.read_text(encoding="utf-8").replace("TODO", "Filled"), encoding="utf-8")
    loaded = load_issue(path, repo_shape)
    assert loaded.warnings == []
    assert loaded.issue.kind == kind
    if isinstance(loaded.issue, Newsletter):
        item = loaded.issue.items[0]
        assert item.highlight and item.events and loaded.issue.calendar
        assert item.events[0].start == datetime(2025, 12, 8, 19, 30)


def test_scaffold_refuses_to_overwrite_and_checks_the_slug(tmp_path: Path, repo_shape: Shape) -> None:
    path = new_campaign(tmp_path, "one", "newsletter", repo_shape)
    path.write_text("edited", encoding="utf-8")
    with pytest.raises(ContentError, match="already exists"):
        new_campaign(tmp_path, "one", "alert", repo_shape)
    assert path.read_text(encoding="utf-8") == "edited"
    for bad in ["Has Spaces", "../escape", "", "UPPER"]:
        with pytest.raises(ContentError, match="not a valid campaign name"):
            new_campaign(tmp_path, bad, "newsletter", repo_shape)


# ---------------------------------------------------------------------------------------------
# The commands


def copy_campaign(workspace: Path, slug: str) -> Path:
    target = workspace / "campaigns" / slug
    shutil.copytree(REPO / "campaigns" / slug, target)
    return target / "issue.yaml"


def test_cli_check_exit_codes_and_output(mailer_cli: MailerCli, workspace: Path) -> None:
    copy_campaign(workspace, KENT)
    ok = mailer_cli("campaigns", "check", KENT)
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "OK: 0 error(s)" in ok.stdout

    bad = workspace / "campaigns" / "broken" / "issue.yaml"
    bad.parent.mkdir()
    shutil.copy(FIXTURES / "duplicate_ids.yaml", bad)
    failed = mailer_cli("campaigns", "check", "broken")
    assert failed.exit_code == 2
    assert "broken/issue.yaml:11:9: items[1].id: duplicate item id 'write-for-rights'" in failed.stdout
    assert "NOT READY: 1 error(s)" in failed.stdout

    as_json = mailer_cli("campaigns", "check", "broken", "--json")
    assert as_json.exit_code == 2
    data = json.loads(as_json.stdout)
    assert data["ok"] is False
    assert [(e["line"], e["field"]) for e in data["errors"]] == [(11, "items[1].id")]

    missing = mailer_cli("campaigns", "check", "no-such-campaign")
    assert missing.exit_code == 2
    assert "no campaign 'no-such-campaign'" in missing.stderr


def test_cli_check_prints_warnings_and_exits_0(mailer_cli: MailerCli, workspace: Path) -> None:
    path = copy_campaign(workspace, KENT)
    path.write_text(
        path.read_text(encoding="utf-8").replace("date: 2025-11-17", "date: 2025-11-23"), encoding="utf-8"
    )
    result = mailer_cli("campaigns", "check", KENT, "--no-database")
    assert result.exit_code == 0, result.stderr
    assert re.search(
        r"issue\.yaml:\d+: warning: items\[0\]\.events\[0\]\.start: the event is on 2025-11-18", result.stdout
    )
    assert "OK: 0 error(s), 2 warning(s)" in result.stdout
    assert "not checked against the members (--no-database)" in result.stdout


def test_cli_check_reports_every_error_and_warning_in_one_pass(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    path = workspace / "campaigns" / "pasted" / "issue.yaml"
    write(path.parent, MARKUP.replace("title: One", "title: One\n    colour: red"))
    result = mailer_cli("campaigns", "check", "pasted")
    assert result.exit_code == 2, result.stdout + result.stderr
    out = result.stdout
    assert "pasted/issue.yaml:12:5: items[0].colour: unknown field 'colour'" in out
    assert "pasted/issue.yaml:6: warning: intro: pasted markup <script>" in out
    assert (
        "pasted/issue.yaml:14: warning: items[0].body: javascript:alert(document.cookie) is not a link" in out
    )
    assert "NOT READY: 1 error(s), 8 warning(s)" in out
    assert "not checked against the members: fix the errors first" in out
    data = json.loads(mailer_cli("campaigns", "check", "pasted", "--json").stdout)
    assert [(e["line"], e["field"]) for e in data["errors"]] == [(12, "items[0].colour")]
    assert len(data["warnings"]) == 8
    assert {(w["field"], w["severity"]) for w in data["warnings"]} >= {
        ("intro", "warning"),
        ("calendar[0].location", "warning"),
    }
    # Fixed, the same file is OK with its warnings, and the audience warnings run too.
    write(path.parent, MARKUP)
    fixed = mailer_cli("campaigns", "check", "pasted")
    assert fixed.exit_code == 0, fixed.stdout
    assert "warning: audience: no member is in the audience 'all'" in fixed.stdout
    assert "OK: 0 error(s), 9 warning(s)" in fixed.stdout


def test_cli_check_runs_the_audience_warnings_with_a_database(
    mailer_cli: MailerCli, workspace: Path, db: Database
) -> None:
    copy_campaign(workspace, ECHR)
    result = mailer_cli("campaigns", "check", ECHR)
    assert result.exit_code == 0, result.stderr
    assert "warning: audience: no member is in the audience 'interest:mp-advocacy'" in result.stdout
    with db.session() as session:
        add_member(session, "mp@example.org", "kent", ["mp-advocacy"])
    result = mailer_cli("campaigns", "check", ECHR)
    assert "OK: 0 error(s), 0 warning(s)" in result.stdout


def test_cli_new_scaffolds_and_refuses_to_overwrite(mailer_cli: MailerCli, workspace: Path) -> None:
    made = mailer_cli("campaigns", "new", "2025-12-alert", "--kind", "alert")
    assert made.exit_code == 0, made.stderr
    path = workspace / "campaigns" / "2025-12-alert" / "issue.yaml"
    assert path.read_text(encoding="utf-8").startswith("# An action alert")
    again = mailer_cli("campaigns", "new", "2025-12-alert")
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    bad = mailer_cli("campaigns", "new", "Bad Name")
    assert bad.exit_code == 2
    assert "not a valid campaign name" in bad.stderr
    check = mailer_cli("campaigns", "check", "2025-12-alert", "--no-database")
    assert check.exit_code == 2
    assert "still to fill in (it says TODO)" in check.stdout


LOCAL_IMAGE_ISSUE = """kind: newsletter
title: T
subject: S
date: 2025-11-17
items:
  - id: one
    title: One
    highlight: do one thing
    body: Do it.
    image: {{src: "{src}", alt: A poster}}
"""


@pytest.mark.parametrize(
    ("src", "why"),
    [
        ("sub/poster.png", "not an image file the archive can serve: 'sub/poster.png'"),
        (".hidden.png", "not an image file the archive can serve: '.hidden.png'"),
        ("poster.svg", "not an image file the archive can serve: 'poster.svg'"),
        ("poster", "not an image file the archive can serve: 'poster'"),
        ("outside.png", "image file 'outside.png' is a link to outside the campaign's folder"),
    ],
)
def test_a_local_image_is_a_file_the_archive_serves(tmp_path: Path, src: str, why: str) -> None:
    """The mail links a local image as ``{base_url}/files/<slug>/<name>``, which serves only image
    files directly in the campaign's folder: anything else would be a broken image in every copy."""
    from mailer.issue.schema import IMAGE_SUFFIXES
    from mailer.web.archive import IMAGE_TYPES

    assert set(IMAGE_SUFFIXES) == set(IMAGE_TYPES)
    folder = tmp_path / "campaign"
    (folder / "sub").mkdir(parents=True)
    for name in ("sub/poster.png", ".hidden.png", "poster.svg", "poster", "poster.png"):
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "elsewhere.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "outside.png").symlink_to(tmp_path / "elsewhere.png")
    assert only_problem(write(folder, LOCAL_IMAGE_ISSUE.format(src=src))) == f"10: {why}"
    assert load_issue(write(folder, LOCAL_IMAGE_ISSUE.format(src="poster.png")), None).issue.items


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("01/12/2025", "write 2025-12-01 if 01/12/2025 means 1 December 2025; the accepted forms are"),
        ("1-12-2025 7.30", "write 2025-12-01 07:30 if 1-12-2025 7.30 means 1 December 2025;"),
        ("2025.12.01", "write 2025-12-01 if 2025.12.01 means 1 December 2025;"),
        ("12/31/2025", "the accepted forms are 2025-12-01 (a whole day) and 2025-12-01 19:30 (with a time)"),
        (
            "next Tuesday",
            "the accepted forms are 2025-12-01 (a whole day) and 2025-12-01 19:30 (with a time)",
        ),
        (20251201, "the accepted forms are"),
    ],
)
def test_a_date_written_another_way_is_given_back_in_the_accepted_form(
    tmp_path: Path, written: object, hint: str
) -> None:
    """A first issue's dates, written as a British volunteer writes them: each refused with the
    accepted forms and, where it reads as one, the date it was probably meant as."""
    value = f'"{written}"' if isinstance(written, str) else str(written)
    path = write(
        tmp_path / "dates",
        f"kind: newsletter\ntitle: T\nsubject: T\ndate: {value}\n"
        f"calendar:\n  - title: A\n    start: {value}\n",
    )
    with pytest.raises(ContentError) as caught:
        load_issue(path, None)
    by_field = {p.field: p for p in caught.value.problems}
    assert set(by_field) == {"date", "calendar[0].start"}
    assert hint in (by_field["calendar[0].start"].hint or "")
    issue_hint = by_field["date"].hint or ""
    assert issue_hint.endswith("a date is written year-month-day, e.g. 2025-12-01")
    assert ("write 2025-12-01 if" in issue_hint) == ("write 2025-12-01" in hint)  # a day, no time
