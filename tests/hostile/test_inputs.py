"""The hostile corpus of files and values, replayed through the real CLI (in-process, ``mailer_cli``).

- ``csv/``: member imports, ``mailer lists import FILE`` (then ``lists export``);
- ``yaml/``: issue files, ``mailer campaigns check SLUG``;
- ``segments/``: segment expressions, ``mailer lists count EXPR``, with ``saved.toml`` appended to
  the workspace's saved segments;
- ``relays/``: relay URLs, ``mailer campaigns send SLUG --test ADDRESS`` with ``MAILER_RELAY=URL``;
  and names for the SMTP greeting (``ehlo_names.txt``), the same command with ``ehlo_hostname`` set.

Each case names what it attacks in its comment lines and what must happen in its ``# expect:`` line
(``exit=N``, ``shows="…"`` for text the output must hold, and per kind: ``added=N``, ``rejected=N``,
``export=…``, ``raw-export=…``, ``args=…`` (each an argument added to the import's command line,
e.g. ``args="--map" args="Email Address=mail"``), ``stdout=…``). Cases too big to keep in the
repository (a 600-deep YAML, an 11 MB issue, 300 parentheses, a header of 10,000 columns) are made
here. Every case must end in a handled exit (never 70, 74 or a traceback), with a short message
naming the file and line or the column, and a failed import must have imported nothing.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from support.cli_runner import CliResult, MailerCli
from support.hostile import PASSWORD, Case, assert_handled, block_cases, expectations, parse_expect

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ALERT = "2025-11-echr-alert"
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------------------------------------
# Member imports


def csv_case(path: Path) -> Case:
    data = path.read_bytes()
    lines = data.split(b"\n")
    comments = [line.decode("utf-8") for line in lines if line.startswith(b"#")]
    body = b"\n".join(line for line in lines if not line.startswith(b"#"))
    return Case(path.stem, body, expectations(comments))


def generated_csv_cases() -> list[Case]:
    return [
        Case(
            "generated-cell-over-the-csv-field-limit",
            b'email,name\r\nok@example.org,Ok\r\nbig@example.org,"' + b"A" * 200_000 + b'"\r\n',
            parse_expect('exit=2 shows=":3: not valid CSV: field larger than field limit"'),
        ),
        Case(
            "generated-5000-character-name",
            b"email,name\r\nok@example.org,Ok\r\nlong@example.org," + b"B" * 5000 + b"\r\n",
            parse_expect('exit=0 added=1 rejected=1 shows="line 3: long@example.org: name longer than 200"'),
        ),
        Case(
            "generated-header-of-10000-columns",
            ",".join(["email", *(f"c{i}" for i in range(1, 10_000))]).encode() + b"\r\nok@example.org\r\n",
            parse_expect('exit=2 shows=":1: the header has 10,000 columns; an import takes at most 1,000"'),
        ),
        Case(
            "generated-header-of-1000-columns-works",
            ",".join(["email", *(f"c{i}" for i in range(1, 1000))]).encode()
            + b"\r\nok@example.org"
            + b",x" * 999
            + b"\r\n",
            parse_expect("exit=0 added=1 rejected=0"),
        ),
        Case(
            "generated-2000-character-address",
            b"email,name\r\n" + b"c" * 2000 + b"@example.org,Long\r\nok@example.org,Ok\r\n",
            parse_expect('exit=0 added=1 rejected=1 shows="line 2:"'),
        ),
    ]


CSV_CASES = [csv_case(p) for p in sorted((HERE / "csv").glob("*.csv"))] + generated_csv_cases()


def count_members(mailer_cli: MailerCli) -> int:
    result = mailer_cli("lists", "count", "--json", "all", check=True)
    count: int = json.loads(result.stdout)["count"]
    return count


@pytest.mark.parametrize("case", CSV_CASES, ids=str)
def test_hostile_imports(case: Case, mailer_cli: MailerCli, tmp_path: Path) -> None:
    mailer_cli("lists", "sync", check=True)
    path = tmp_path / f"{case.name}.csv"
    path.write_bytes(case.body)
    # Cases about other things state a basis of consent, as `--consent` does; `consent=none` leaves
    # it out (the case is about what the file itself says).
    basis = [] if case.expect.get("consent") == ["none"] else ["--consent", "hostile test rows agreed"]
    result = mailer_cli("lists", "import", str(path), *case.expect.get("args", []), *basis)
    assert_handled(result, case)
    if case.exit != 0:
        assert result.stderr.startswith("Error: ") and f"{path}:" in result.stderr
        assert count_members(mailer_cli) == 0, "a refused file imports nothing"
        assert not path.with_name(path.stem + ".rejected.csv").exists()
        return
    report = dict(re.findall(r"^  (added|rejected):\s+(\d+)$", result.stdout, re.MULTILINE))
    for key in ("added", "rejected"):
        if key in case.expect:
            assert report[key] == case.one(key), result.stdout
    assert count_members(mailer_cli) == int(report["added"])

    export = mailer_cli("lists", "export", check=True).stdout
    for row in csv.reader(io.StringIO(export)):
        for cell in row:
            assert not cell.startswith(FORMULA_LEADS), f"{cell!r} would run as a formula"
    for text in case.expect.get("export", []):
        assert text in export
    raw = mailer_cli("lists", "export", "--raw", check=True).stdout
    for text in case.expect.get("raw-export", []):
        assert text in raw
    if (rejected := path.with_name(path.stem + ".rejected.csv")).exists():
        for row in csv.reader(io.StringIO(rejected.read_text(encoding="utf-8"))):
            assert not any(cell.startswith(FORMULA_LEADS) for cell in row), row


def test_an_export_imports_back_unchanged(mailer_cli: MailerCli, tmp_path: Path) -> None:
    """The ' an export puts before formula-like cells comes off at import: nothing changes."""
    mailer_cli("lists", "sync", check=True)
    (case,) = [c for c in CSV_CASES if c.name == "formula-injection"]
    path = tmp_path / "members.csv"
    path.write_bytes(case.body)
    mailer_cli("lists", "import", str(path), "--consent", "test rows agreed", check=True)
    before = mailer_cli("lists", "export", "--raw", check=True).stdout
    exported = tmp_path / "exported.csv"
    mailer_cli("lists", "export", "-o", str(exported), check=True)
    assert "'=HYPERLINK(" in exported.read_text(encoding="utf-8")
    again = mailer_cli("lists", "import", "--json", str(exported), "--consent", "as exported", check=True)
    data = json.loads(again.stdout)
    assert (data["added"], data["updated"], data["rejected"]) == (0, 0, 0)
    assert data["unchanged"] == 6
    assert mailer_cli("lists", "export", "--raw", check=True).stdout == before


# ---------------------------------------------------------------------------------------------
# Issue files


def yaml_case(path: Path) -> Case:
    text = path.read_text(encoding="utf-8")
    comments = [line for line in text.splitlines() if line.startswith("#")]
    return Case(path.stem, text.encode("utf-8"), expectations(comments))


def _deep_block(levels: int) -> str:
    lines = ["kind: newsletter", "title: Deep"]
    lines += ["  " * i + f"k{i}:" for i in range(levels)]
    return "\n".join([*lines, "  " * levels + "v", ""])


def generated_yaml_cases() -> list[Case]:
    return [
        Case(
            "generated-600-deep-flow",
            ("kind: newsletter\ntitle: " + "[" * 600 + "]" * 600 + "\n").encode(),
            parse_expect('exit=2 shows="issue.yaml:2:57: values nested more than 50 levels deep"'),
        ),
        Case(
            "generated-600-deep-block",
            _deep_block(600).encode(),
            parse_expect('exit=2 shows="issue.yaml:52:99: values nested more than 50 levels deep"'),
        ),
        Case(
            "generated-11-mb-without-aliases",
            (
                "kind: newsletter\ntitle: Big\nintro: " + "lorem ipsum " * (11 * 1024 * 1024 // 12) + "\n"
            ).encode(),
            parse_expect('exit=2 shows="the issue file is 11 MB; an issue file is at most 2 MB"'),
        ),
        Case(
            "generated-100001-values-without-aliases",
            ("kind: newsletter\ntitle: Many\ncalendar: [" + ",".join(["1"] * 100_001) + "]\n").encode(),
            parse_expect('exit=2 shows="issue.yaml:3:199998: the file holds more than 100,000 values"'),
        ),
    ]


YAML_CASES = [yaml_case(p) for p in sorted((HERE / "yaml").glob("*.yaml"))] + generated_yaml_cases()
# Refused for their size, so never checked against the members: the database cannot change the
# answer, and each takes seconds to read, so they run on one backend.
HUGE = ("generated-11-mb-without-aliases", "generated-100001-values-without-aliases")


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in YAML_CASES if c.name not in HUGE], ids=str)
def test_hostile_issue_files(case: Case, mailer_cli: MailerCli, workspace: Path) -> None:
    check_issue_file(case, mailer_cli, workspace)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("case", [c for c in YAML_CASES if c.name in HUGE], ids=str)
def test_huge_issue_files(case: Case, mailer_cli: MailerCli, workspace: Path) -> None:
    result = check_issue_file(case, mailer_cli, workspace)
    assert case.exit == 2 and "the audience was not checked" in result.stdout + result.stderr


def check_issue_file(case: Case, mailer_cli: MailerCli, workspace: Path) -> CliResult:
    issue = workspace / "campaigns" / case.name / "issue.yaml"
    issue.parent.mkdir(parents=True)
    issue.write_bytes(case.body)
    result = mailer_cli("campaigns", "check", case.name)
    assert_handled(result, case)
    if not any("alias" in text for text in case.expect.get("shows", [])):
        assert "YAML alias" not in result.stdout, "only real alias expansion is reported as an alias bomb"
    return result


# ---------------------------------------------------------------------------------------------
# Segment expressions


def segment_cases() -> list[Case]:
    return block_cases(HERE / "segments" / "expressions.txt", escapes=True)


def generated_segment_cases() -> list[Case]:
    def case(name: str, expression: str, expect: str) -> Case:
        return Case(name, expression.encode(), parse_expect(expect))

    return [
        case(
            "300-nested-parentheses", "(" * 300 + "all" + ")" * 300, 'exit=2 shows="column 51: nested more"'
        ),
        case("1000-nots", "not " * 1000 + "all", 'exit=2 shows="column 201: nested more than 50 levels"'),
        case(
            "1000-term-or-over-10-kb",
            " or ".join(["region:kent"] * 1000),
            'exit=2 shows="characters long; a segment expression is at most 10,000"',
        ),
        case(
            "1000-term-or-under-10-kb",
            " or ".join(["all"] * 1000),
            'exit=2 shows="column 1401: more than 200 conditions"',
        ),
        case("200-term-or-works", " or ".join(['field.x = "y"'] * 199 + ["all"]), "exit=0 stdout=0"),
        case("50-nested-parentheses-work", "(" * 50 + "all" + ")" * 50, "exit=0 stdout=0"),
        case("empty-expression", "", 'exit=2 shows="column 1"'),
    ]


SEGMENT_CASES = segment_cases() + generated_segment_cases()


@pytest.mark.parametrize("case", SEGMENT_CASES, ids=str)
def test_hostile_segment_expressions(case: Case, mailer_cli: MailerCli, workspace: Path) -> None:
    saved = workspace / "lists" / "segments.toml"
    saved.write_text(
        saved.read_text(encoding="utf-8")
        + "\n"
        + (HERE / "segments" / "saved.toml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    result = mailer_cli("lists", "count", case.body.decode())
    assert_handled(result, case)
    if case.exit != 0:
        assert result.stderr.startswith("Error: ")
        assert "\x1b" not in result.stderr, "no terminal escape is printed raw"
        assert len(result.stderr) < 2000, "the error shows the place, not the whole expression"
    if (stdout := case.one("stdout")) is not None:
        assert result.stdout.strip() == stdout


# ---------------------------------------------------------------------------------------------
# Relay URLs


def relay_cases() -> list[Case]:
    return block_cases(HERE / "relays" / "urls.txt", expect='exit=2 shows="relay: " shows="***"')


@pytest.mark.parametrize("case", relay_cases(), ids=str)
def test_hostile_relay_urls(case: Case, mailer_cli: MailerCli, workspace: Path) -> None:
    shutil.copytree(REPO / "campaigns" / ALERT, workspace / "campaigns" / ALERT)
    mailer_cli("lists", "sync", check=True)
    result = mailer_cli(
        "campaigns", "send", ALERT, "--test", "editor@example.org", env={"MAILER_RELAY": case.body.decode()}
    )
    assert_handled(result, case)
    assert result.stderr.startswith("Error: relay: ")
    assert PASSWORD not in result.stdout + result.stderr


def ehlo_name_cases() -> list[Case]:
    return block_cases(
        HERE / "relays" / "ehlo_names.txt",
        expect='exit=2 shows="ehlo_hostname: not a host name for the SMTP greeting"',
    )


@pytest.mark.parametrize("case", ehlo_name_cases(), ids=str)
def test_hostile_greeting_names(case: Case, mailer_cli: MailerCli, workspace: Path) -> None:
    shutil.copytree(REPO / "campaigns" / ALERT, workspace / "campaigns" / ALERT)
    toml = workspace / "mailer.toml"
    text, count = re.subn(
        r"(?m)^ehlo_hostname = .*$",
        lambda _: "ehlo_hostname = " + case.body.decode(),
        toml.read_text(encoding="utf-8"),
    )
    assert count == 1, "mailer init writes the setting"
    toml.write_text(text, encoding="utf-8")
    result = mailer_cli("campaigns", "send", ALERT, "--test", "editor@example.org")
    assert_handled(result, case)
    assert "\r" not in result.stderr and "MAIL FROM" not in result.stderr.partition("\n")[2]
    assert not (workspace / "outbox").exists() or not any((workspace / "outbox").rglob("*.*"))


# ---------------------------------------------------------------------------------------------
# The CLI itself


def boom_cli() -> click.Group:
    """A group like ``mailer``'s (MailerGroup, --debug, MAILER_DEBUG) with one command that fails the
    way a bug would: an exception that is not a MailerError, its message holding a password."""
    from mailer.cli import MailerGroup

    @click.group(cls=MailerGroup)
    @click.option("--debug", is_flag=True, envvar="MAILER_DEBUG")
    def group(debug: bool) -> None:
        pass

    @group.command()
    def boom() -> None:
        raise RuntimeError(f"cannot reach postgresql://user:{PASSWORD}@db.example.org/news\nsecond line")

    @group.command()
    def missing() -> None:
        Path("/nonexistent/folder/file.csv").read_text(encoding="utf-8")

    return group


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback() -> None:
    """A bug is one line and exit 70 (74 for a file that cannot be read), its password redacted;
    --debug or MAILER_DEBUG=1 lets the exception through with its traceback."""
    group = boom_cli()
    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 70
    assert result.stderr == (
        "Error: RuntimeError: cannot reach postgresql://user:***@db.example.org/news "
        "(run with --debug for the traceback)\n"
    )
    missing = CliRunner().invoke(group, ["missing"])
    assert missing.exit_code == 74
    assert missing.stderr.startswith("Error: No such file or directory: /nonexistent/folder/file.csv")
    for debug in (
        CliRunner().invoke(group, ["--debug", "boom"]),
        CliRunner().invoke(group, ["boom"], env={"MAILER_DEBUG": "1"}),
    ):
        assert isinstance(debug.exception, RuntimeError) and debug.exit_code == 1


def test_click_usage_errors_keep_their_exit_code(mailer_cli: MailerCli) -> None:
    usage = mailer_cli("lists", "count")
    assert usage.exit_code == 2 and "Missing argument 'EXPR'" in usage.stderr
    assert "Traceback" not in usage.stderr
    help_text = mailer_cli("--help", check=True).stdout
    assert "--debug" in help_text and "MAILER_DEBUG=1" in help_text


def test_redaction_of_passwords_in_urls() -> None:
    from mailer.redact import redact, redact_url

    assert redact_url("smtp://user:pw@[::1") == "smtp://user:***@[::1"
    assert redact_url("smtp://user:p@ss/w@host:25") == "smtp://user:***@host:25"
    assert redact_url("smtp://user@host") == "smtp://user@host"
    assert redact_url("not a url") == "not a url"
    text = "relays smtp://a:one@h1 and postgresql://b:two@db/x failed; mail c@example.org"
    assert redact(text) == "relays smtp://a:***@h1 and postgresql://b:***@db/x failed; mail c@example.org"
