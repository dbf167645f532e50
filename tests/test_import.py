"""Importing members from CSV: validation, merging, suppression kept, atomicity, the CLI."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from support import hashes
from support.cli_runner import MailerCli

import mailer.audience.importer as importer
from mailer.audience import addresses, members
from mailer.audience.importer import HELD, Options, fast_normalise, import_csv, rejected_path_for
from mailer.audience.shape import Shape
from mailer.audience.suppression import is_suppressed
from mailer.audience.synthetic import generate, write_csv
from mailer.db import Database
from mailer.errors import InvalidInput
from mailer.models import ConsentEvent, Interest, Member, MemberField, MemberInterest, Region, Suppression

REPO = Path(__file__).resolve().parent.parent
DEMO_MEMBERS = REPO / "lists" / "members.csv"
HEADER = "email,name,postcode,region,interests,consent_source,consent_date,student\n"


def dump(session: Session) -> dict[str, Any]:
    """Everything an import can touch, in a comparable form."""
    slug_of = {id_: slug for id_, slug in session.execute(select(Region.id, Region.slug))}
    people = {
        m.id: (m.email, m.address_hash, m.name, m.postcode, slug_of.get(m.region_id), m.updated_at)
        for m in session.scalars(select(Member))
    }
    interests: dict[str, set[str]] = {}
    for member_id, slug in session.execute(
        select(MemberInterest.member_id, Interest.slug).join(
            Interest, Interest.id == MemberInterest.interest_id
        )
    ):
        interests.setdefault(people[member_id][0], set()).add(slug)
    fields: dict[str, dict[str, str]] = {}
    for f in session.scalars(select(MemberField)):
        fields.setdefault(people[f.member_id][0], {})[f.name] = f.value
    consent = session.execute(
        select(ConsentEvent.action, ConsentEvent.source, func.count()).group_by(
            ConsentEvent.action, ConsentEvent.source
        )
    )
    return {
        "members": sorted(people.values()),
        "interests": interests,
        "fields": fields,
        "consent": sorted(tuple(r) for r in consent),
        "suppressions": sorted(
            tuple(r) for r in session.execute(select(Suppression.address_hash, Suppression.reason))
        ),
    }


AGREED = ("--consent", "test members agreed")  # the basis `--consent` states, for files without one


def run_import(db: Database, path: Path, shape: Shape, **kw: Any) -> Any:
    # These files test everything but consent: the basis is stated, as `--consent` would.
    kw.setdefault("options", Options(consent="test members agreed"))
    with db.session() as session:
        return import_csv(session, path, shape, **kw)


def snapshot(db: Database) -> dict[str, Any]:
    with db.session() as session:
        return dump(session)


@pytest.fixture
def demo_csv(tmp_path: Path) -> Path:
    path = tmp_path / "members.csv"
    shutil.copy(DEMO_MEMBERS, path)
    return path


def test_importing_the_demo_members_twice_gives_the_same_database(
    db: Database, shape: Shape, demo_csv: Path
) -> None:
    first = run_import(db, demo_csv, shape)
    assert (first.rows, first.added, first.updated, first.rejected) == (500, 500, 0, 0)
    after_first = snapshot(db)
    second = run_import(db, demo_csv, shape)
    assert (second.added, second.updated, second.unchanged, second.rejected) == (0, 0, 500, 0)
    assert snapshot(db) == after_first
    assert len(after_first["members"]) == 500
    assert after_first["consent"] == [("subscribe", s, n) for _a, s, n in after_first["consent"]]
    assert sum(n for _a, _s, n in after_first["consent"]) == 500
    assert not rejected_path_for(demo_csv).exists()


def test_the_demo_members_arrive_as_the_csv_says(db: Database, shape: Shape, demo_csv: Path) -> None:
    run_import(db, demo_csv, shape)
    with demo_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    state = snapshot(db)
    by_email = {m[0]: m for m in state["members"]}
    for row in rows:
        email = addresses.normalise(row["email"])
        _e, _h, name, postcode, region, _u = by_email[email]
        assert name == row["name"] and postcode == row["postcode"]
        expected_region = row["region"] or shape.region_for_postcode(row["postcode"])
        assert region == expected_region
        assert state["interests"].get(email, set()) == {s for s in row["interests"].split(";") if s}
        assert state["fields"][email] == {"student": row["student"], "joined": row["joined"]}
    assert any(not row["region"] and row["postcode"] for row in rows)  # postcode assignment exercised
    assert any(any(ord(c) > 127 for c in row["name"]) for row in rows)


BAD_ROWS = (
    HEADER
    + "ann@example.org,Ann Smith,ME14 1HH,,refugees,signup,2024-03-01,no\n"  # 2: good (region from ME)
    + "not-an-address,Bad Address,,kent,,,,\n"  # 3: invalid address
    + ",No Address,,kent,,,,\n"  # 4: no address
    + "ANN@Example.ORG,,,,schools,,,yes\n"  # 5: duplicate of line 2: merged
    + 'bob@example.org,"Bob\r\nEvil: injected",CT1 2AB,,,,,\n'  # 6-7: CR/LF in the name: cleaned
    + "cat@example.org,Cat,,atlantis,,,,\n"  # 8: unknown region
    + "dan@example.org,Dan,,kent,knitting,,,\n"  # 9: unknown interest
    + "eve@example.org,Eve,,Kent,Refugees; mp-advocacy,,01/02/2023,\n"  # 10: names accepted
    + "fay@example.org,Fay,,kent,,,yesterday,\n"  # 11: bad consent date
    + "gus@foo.test,Gus,,kent,,,,\n"  # 12: special-use domain
)


def test_bad_rows_are_reported_by_line_and_every_good_row_is_kept(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(BAD_ROWS, encoding="utf-8", newline="")
    report = run_import(db, path, shape)
    rejected = {r.row: r for r in report.rejections}
    assert sorted(rejected) == [3, 4, 8, 9, 11, 12]
    assert "not-an-address" in rejected[3].email and "@" in rejected[3].reason
    assert rejected[4].reason == "no email address"
    assert "unknown region 'atlantis'" in rejected[8].reason
    assert "unknown interest 'knitting'" in rejected[9].reason
    assert "consent_date 'yesterday'" in rejected[11].reason
    assert (report.added, report.merged, report.cleaned, report.rejected) == (3, 1, 1, 6)

    state = snapshot(db)
    by_email = {m[0]: m for m in state["members"]}
    assert set(by_email) == {"ann@example.org", "bob@example.org", "eve@example.org"}
    assert by_email["ann@example.org"][2:5] == ("Ann Smith", "ME14 1HH", "maidstone-medway-swale")
    assert state["interests"]["ann@example.org"] == {"refugees", "schools"}  # unioned
    assert state["fields"]["ann@example.org"] == {"student": "yes"}  # the later row wins
    assert by_email["bob@example.org"][2] == "Bob Evil: injected"  # cleaned, never raw
    assert by_email["bob@example.org"][4] == "canterbury"
    assert by_email["eve@example.org"][4] == "kent"
    assert state["interests"]["eve@example.org"] == {"refugees", "mp-advocacy"}

    out = rejected_path_for(path)
    assert out == tmp_path / "crm.rejected.csv" and report.rejected_path == out
    with out.open(newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert [int(r["row"]) for r in written] == [3, 4, 8, 9, 11, 12]
    assert written[2]["region"] == "atlantis" and written[2]["email"] == "cat@example.org"
    assert written[2]["reason"] == rejected[8].reason
    # Fixing the file and importing again clears the stale list.
    path.write_text(HEADER + "ann@example.org,Ann,,,,,,\n", encoding="utf-8")
    assert run_import(db, path, shape).rejected_path is None and not out.exists()


def test_a_suppressed_address_stays_suppressed_whatever_the_import_says(
    db: Database, shape: Shape, demo_csv: Path
) -> None:
    run_import(db, demo_csv, shape)
    with demo_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    left, erased = addresses.normalise(rows[0]["email"]), addresses.normalise(rows[1]["email"])
    with db.session() as session:
        assert members.unsubscribe(session, left, source="one-click", campaign="2025-11-newsletter")
        members.forget(session, erased)
    before = snapshot(db)
    # The CRM export still has both as ordinary rows; the one who left has a new name too.
    rows[0]["name"] = "New Name"
    path = demo_csv.parent / "crm-export.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = run_import(db, path, shape)
    assert (report.suppressed, report.not_added, report.updated, report.added) == (2, 1, 1, 0)
    assert {n.email for n in report.kept_suppressed} == {left, erased}
    after = snapshot(db)
    assert after["suppressions"] == before["suppressions"]
    assert after["consent"] == before["consent"]  # nothing appended, nothing rewritten
    with db.session() as session:
        assert is_suppressed(session, left) and is_suppressed(session, erased)
        assert members.show(session, left).name == "New Name"
        assert session.scalar(select(Member).where(Member.email == erased)) is None
    # And again: still nothing comes back.
    again = run_import(db, path, shape)
    assert (again.added, again.not_added, again.suppressed) == (0, 1, 2)
    assert snapshot(db)["suppressions"] == before["suppressions"]


def test_the_report_names_exactly_the_members_it_added(db: Database, shape: Shape, tmp_path: Path) -> None:
    """``added_ids``: the new members (what ``lists import --welcome`` mails), never one updated,
    unchanged, merged twice, suppressed or rejected; none on a dry run; not in the JSON report."""
    first = tmp_path / "first.csv"
    first.write_text(
        HEADER
        + "ann@example.org,Ann,,kent,,,,\nbob@example.org,Bob,,kent,,,,\ngone@example.org,Gone,,,,,,\n",
        encoding="utf-8",
    )
    assert len(run_import(db, first, shape).added_ids) == 3
    with db.session() as session:
        members.forget(session, "gone@example.org")  # suppressed, no member record: never added again
    second = tmp_path / "second.csv"
    second.write_text(
        HEADER
        + "ann@example.org,Ann Updated,,kent,,,,\n"  # updated
        + "bob@example.org,Bob,,kent,,,,\n"  # unchanged
        + "cat@example.org,Cat,,derby,,,,\n"  # new
        + "gone@example.org,Gone,,,,,,\n"  # suppressed: not added
        + "not-an-address,Nobody,,,,,,\n"  # rejected
        + "dan@example.org,Dan,,,,,,\n"  # new, on two rows: merged, added once
        + "DAN@example.org,,,kent,,,,\n",
        encoding="utf-8",
    )
    dry = run_import(db, second, shape, dry_run=True)
    assert dry.added == 2 and dry.added_ids == []
    report = run_import(db, second, shape)
    assert (report.added, report.updated, report.unchanged, report.merged) == (2, 1, 1, 1)
    assert (report.not_added, report.rejected) == (1, 1)
    with db.session() as session:
        query = select(Member.email, Member.id).where(
            Member.email.in_(["cat@example.org", "dan@example.org"])
        )
        new = {email: id_ for email, id_ in session.execute(query)}
        assert len(new) == 2
        assert sorted(report.added_ids) == sorted(new.values())
        assert session.scalar(select(func.count()).select_from(Member)) == 4
    assert "added_ids" not in report.as_dict() and report.as_dict()["added"] == 2
    json.dumps(report.as_dict())  # the --json report as before


def test_dry_run_changes_nothing(db: Database, shape: Shape, demo_csv: Path) -> None:
    empty = snapshot(db)
    report = run_import(db, demo_csv, shape, dry_run=True)
    assert report.dry_run and report.added == 500
    assert snapshot(db) == empty
    # Nothing beside the input either: no list of rejected rows, and a stale one stays as it was.
    folder = demo_csv.parent
    before = sorted(p.name for p in folder.iterdir())
    crm = folder / "crm.csv"
    crm.write_text(BAD_ROWS, encoding="utf-8", newline="")
    report = run_import(db, crm, shape, dry_run=True)
    assert (report.rejected, report.rejected_path) == (6, None) and len(report.rejections) == 6
    assert sorted(p.name for p in folder.iterdir()) == sorted([*before, "crm.csv"])
    stale = rejected_path_for(crm)
    stale.write_text("an earlier run's list\n", encoding="utf-8")
    run_import(db, crm, shape, dry_run=True)
    assert stale.read_text(encoding="utf-8") == "an earlier run's list\n"
    assert snapshot(db) == empty
    run_import(db, demo_csv, shape)
    full = snapshot(db)
    changed = demo_csv.read_text(encoding="utf-8").replace(",no,", ",maybe,")
    demo_csv.write_text(changed, encoding="utf-8")
    report = run_import(db, demo_csv, shape, dry_run=True)
    assert report.updated > 0
    assert snapshot(db) == full


def test_an_import_that_fails_part_way_leaves_the_database_as_it_was(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    write_csv(path, generate(300, shape, seed=5))
    run_import(db, path, shape)
    before = snapshot(db)
    write_csv(path, generate(4500, shape, seed=5))  # the same 300 first, then 4,200 new

    calls: list[tuple[str, int, int]] = []

    def interrupt(stage: str, done: int, total: int) -> None:
        calls.append((stage, done, total))
        if stage == "write" and done > 2000:
            raise KeyboardInterrupt  # a person pressing ctrl-C half way through the writing

    with pytest.raises(KeyboardInterrupt):
        run_import(db, path, shape, progress=interrupt)
    # Written a chunk of 2,000 rows at a time, all in one transaction: the first chunk was written.
    assert [c for c in calls if c[0] == "write"] == [("write", 2000, 4500), ("write", 4000, 4500)]
    assert snapshot(db) == before
    report = run_import(db, path, shape)
    assert (report.added, report.unchanged) == (4200, 300)


def test_a_database_error_part_way_rolls_back_the_whole_import(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    """The database refuses a row in the second chunk: the first chunk's rows go too."""
    held = tmp_path / "held.csv"
    held.write_text("email,name\nheld@example.org,Held\n", encoding="utf-8")
    run_import(db, held, shape)  # a member already held: each chunk is looked up in the database
    path = tmp_path / "big.csv"
    rows = list(generate(3000, shape, seed=9))
    write_csv(path, rows)
    before = snapshot(db)
    clash = addresses.normalise(rows[2500]["email"])
    calls: list[tuple[str, int]] = []

    def sneak_in(stage: str, done: int, total: int) -> None:
        calls.append((stage, done))
        # After the second chunk was compared with the database and before it is written, a member
        # with an address from it appears (as if another process had added them): the unique index
        # refuses the import's row.
        if stage == "check" and done == 3000:
            session.execute(insert(Member).values(email=clash, address_hash=hashes.address_hash(clash)))

    with pytest.raises(IntegrityError), db.session() as session:
        import_csv(session, path, shape, progress=sneak_in)
    assert ("write", 2000) in calls and ("check", 3000) in calls
    assert snapshot(db) == before


def test_malformed_files_are_refused_naming_the_file_and_line(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    before = snapshot(db)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"email,name\nann@example.org,Ann\nzoe@example.org,Zo\xeb\n")
    with pytest.raises(InvalidInput) as err:
        run_import(db, latin1, shape)
    assert err.value.problems[0].line == 3 and "latin1.csv:3" in str(err.value) and "UTF-8" in str(err.value)

    no_email = tmp_path / "no-email.csv"
    no_email.write_text("name,postcode\nAnn,ME1 1AA\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"no-email.csv:1: no email column"):
        run_import(db, no_email, shape)

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("email,name\nann@example.org,Ann\nbob@example.org,Bob,Extra\ncat@example.org\n")
    with pytest.raises(InvalidInput) as err:
        run_import(db, ragged, shape)
    assert [p.line for p in err.value.problems] == [3, 4]
    assert "ragged.csv:3" in str(err.value)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="empty"):
        run_import(db, empty, shape)
    assert snapshot(db) == before


def test_updates_follow_the_rules_for_empty_cells_fields_and_interests(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "Email,Name,Postcode,Region,Interests,Date Joined\nann@example.org,Ann,ME1 1AA,,refugees,2020\n",
        encoding="utf-8",
    )
    first = run_import(db, path, shape)
    assert first.fields == ["joined"]
    path.write_text(
        "email,name,postcode,region,interests,date joined,team\nANN@example.org,,,,schools,,press\n",
        encoding="utf-8",
    )
    report = run_import(db, path, shape)
    assert report.updated == 1
    with db.session() as session:
        ann = members.show(session, "ann@example.org")
    assert (ann.name, ann.postcode, ann.region) == ("Ann", "ME1 1AA", "maidstone-medway-swale")
    assert ann.interests == ["refugees", "schools"]  # added to, never taken away
    assert ann.fields == {"joined": "2020", "team": "press"}


def test_a_small_file_into_a_large_database(db: Database, shape: Shape, demo_csv: Path) -> None:
    """Only the file's addresses are looked up (in chunks) when the database holds many more."""
    run_import(db, demo_csv, shape)
    with demo_csv.open(newline="", encoding="utf-8") as fh:
        emails = [addresses.normalise(row["email"]) for row in csv.DictReader(fh)]
    with db.session() as session:
        for email in emails[:10]:
            members.unsubscribe(session, email)
    path = demo_csv.parent / "few.csv"
    path.write_text(
        f"email,name,interests\n{emails[0]},Renamed,\n{emails[20]},,events\nnew@example.org,New,\n",
        encoding="utf-8",
    )
    report = run_import(db, path, shape)
    assert (report.added, report.updated, report.suppressed, report.not_added) == (1, 2, 1, 0)
    with db.session() as session:
        assert members.show(session, emails[0]).name == "Renamed"
        assert members.show(session, emails[0]).suppressed
        assert "events" in members.show(session, emails[20]).interests
        assert not members.show(session, "new@example.org").suppressed


def test_the_fast_address_check_agrees_with_email_validator() -> None:
    """Every address the fast path accepts, email-validator accepts and normalises the same way."""
    rng = random.Random(7)
    pieces = ["a", "Z", "9", ".", "-", "+", "_", "'", "..", "--", "xn--", "é", " ", "@", "!", "#", '"']
    tlds = ["org", "ORG", "uk", "test", "local", "localhost", "x", "c0m", "1", "onion", "arpa", "co.uk"]
    corpus = [row["email"] for row in csv.DictReader(DEMO_MEMBERS.open(encoding="utf-8"))]
    for _ in range(4000):
        local = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        host = "".join(rng.choice(pieces[:6]) for _ in range(rng.randint(1, 5)))
        corpus.append(f"{local}@{host}.{rng.choice(tlds)}")
    corpus += ["a" * 64 + "@example.org", "a" * 65 + "@example.org", "x@" + "a" * 63 + ".org"]
    corpus += ["x@" + "a" * 64 + ".org", "x@" + ".".join(["abcdefghi"] * 26) + ".org", "ab--cd@ab--cd.org"]
    accepted = 0
    for raw in corpus:
        fast = fast_normalise(raw)
        if fast is None:
            continue
        accepted += 1
        assert addresses.normalise(raw) == fast, raw
    assert accepted > 600


def test_cli_import_reports_as_text_and_json(mailer_cli: MailerCli, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "crm.csv"
    path.write_text(BAD_ROWS, encoding="utf-8", newline="")
    dry = mailer_cli("lists", "import", str(path), *AGREED, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    data = json.loads(dry.stdout)
    assert data["dry_run"] is True and data["added"] == 3 and data["rejected"] == 6
    assert data["rejected_path"] is None and sorted(p.name for p in folder.iterdir()) == ["crm.csv"]
    assert data["columns"][:2] == [{"column": "email", "to": "email"}, {"column": "name", "to": "name"}]
    assert data["columns"][-1] == {"column": "student", "to": "field.student"}
    assert mailer_cli("lists", "count", "--json", "all").stdout.strip() == '{"count": 0}'
    text = mailer_cli("lists", "import", str(path), *AGREED, "--dry-run")
    assert "(dry run: nothing changed)" in text.stdout and "rejected rows written" not in text.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["crm.csv"]

    done = mailer_cli("lists", "import", str(path), *AGREED)
    assert done.exit_code == 0, done.stderr
    assert "added:     3" in done.stdout and "rejected:  6" in done.stdout
    assert "line 8: cat@example.org: unknown region 'atlantis'" in done.stdout
    assert f"rejected rows written to {folder / 'crm.rejected.csv'}" in done.stdout
    assert "cleaned:   1" in done.stdout and "merged:    1" in done.stdout

    again = json.loads(mailer_cli("lists", "import", str(path), *AGREED, "--json").stdout)
    assert (again["added"], again["unchanged"], again["rejected"]) == (0, 3, 6)
    assert again["rejections"][0] == {
        "row": 3,
        "email": "not-an-address",
        "reason": again["rejections"][0]["reason"],
    }

    bad = tmp_path / "bad.csv"
    bad.write_text("name\nAnn\n", encoding="utf-8")
    refused = mailer_cli("lists", "import", str(bad), *AGREED)
    assert refused.exit_code == 2 and "bad.csv:1: no email column" in refused.stderr


def test_cli_generate_writes_members_that_import_cleanly(mailer_cli: MailerCli, tmp_path: Path) -> None:
    out = tmp_path / "synthetic.csv"
    made = mailer_cli("lists", "generate", "40", "--seed", "3", "-o", str(out))
    assert made.exit_code == 0, made.stderr
    again = mailer_cli("lists", "generate", "40", "--seed", "3")
    assert again.stdout == out.read_text(encoding="utf-8")
    report = json.loads(mailer_cli("lists", "import", str(out), *AGREED, "--json").stdout)
    assert (report["added"], report["rejected"]) == (40, 0)


def test_a_non_ascii_local_part_is_rejected_with_its_line(db: Database, shape: Shape, tmp_path: Path) -> None:
    """mailer sends without SMTPUTF8: such a member would be skipped at every send, so the import
    refuses them with the reason. An ASCII local part at an internationalised domain is fine."""
    path = tmp_path / "members.csv"
    path.write_text(
        "email,name\nok@example.org,Ok\njosé@example.org,José\nanna@bücher.example,Anna\n", encoding="utf-8"
    )
    report = run_import(db, path, shape)
    assert (report.added, report.rejected) == (2, 1)
    (rejection,) = report.rejections
    assert (rejection.row, rejection.email) == (3, "josé@example.org")
    assert rejection.reason == addresses.NON_ASCII_LOCAL_PART
    assert "non-ASCII local part" in rejection.reason and "SMTPUTF8" in rejection.reason
    with db.session() as session:
        assert members.show(session, "anna@bücher.example").email == "anna@xn--bcher-kva.example"
    with pytest.raises(InvalidInput, match="non-ASCII local part"):
        addresses.mailable("josé@example.org")
    assert addresses.normalise("josé@example.org") == "josé@example.org"  # still a valid address


def test_cells_a_safe_export_quoted_import_back_as_they_were(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    path = tmp_path / "members.csv"
    path.write_text(
        "email,name,phone\n'=x@example.org,'=HYPERLINK(1),'+44 20 7946 0000\nplain@example.org,'Quoted',\n",
        encoding="utf-8",
    )
    report = run_import(db, path, shape)
    assert report.added == 2
    with db.session() as session:
        shown = members.show(session, "=x@example.org")
        assert (shown.name, shown.fields) == ("=HYPERLINK(1)", {"phone": "+44 20 7946 0000"})
        assert members.show(session, "plain@example.org").name == "'Quoted'"  # not an export's quote


def test_rejected_rows_are_written_spreadsheet_safe(db: Database, shape: Shape, tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text('email,name\n=cmd|calc,"=HYPERLINK(""http://evil.example"")"\n', encoding="utf-8")
    report = run_import(db, path, shape)
    assert report.rejected == 1 and report.rejected_path is not None
    rows = list(csv.reader(report.rejected_path.open(encoding="utf-8", newline="")))
    assert rows[1][:2] == ["'=cmd|calc", '\'=HYPERLINK("http://evil.example")']


# ---------------------------------------------------------------------------------------------
# Column mapping: CRM headers and --map

CRM = (
    "Email Address,First Name,Last Name,Post Code,Phone Number\n"
    "Ann.Smith@Example.org,Ann,Smith,me14 1hh,01632 960000\n"
    "bob@example.org,Bob,,CT1 2AB,\n"
    "cat@example.org,,Jones,,\n"
)


def test_a_crm_export_imports_without_map(db: Database, shape: Shape, tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(CRM, encoding="utf-8")
    report = run_import(db, path, shape)
    assert (report.added, report.rejected) == (3, 0)
    assert report.columns == [
        ("Email Address", "email"),
        ("First Name", "first_name"),
        ("Last Name", "last_name"),
        ("Post Code", "postcode"),
        ("Phone Number", "field.phone_number"),
    ]
    assert report.mapping == (
        "Email Address → email, First Name → first_name, Last Name → last_name, "
        "Post Code → postcode, Phone Number → field.phone_number"
    )
    assert report.fields == ["phone_number"]
    with db.session() as session:
        ann = members.show(session, "ann.smith@example.org")
        assert (ann.name, ann.postcode, ann.region) == ("Ann Smith", "ME14 1HH", "maidstone-medway-swale")
        assert ann.fields == {"phone_number": "01632 960000"}
        assert members.show(session, "bob@example.org").name == "Bob"
        assert members.show(session, "cat@example.org").name == "Jones"


@pytest.mark.parametrize(
    "header",
    [
        "E-mail,Full Name,ZIP,Region,Interests",
        "email_address,name,Postal Code,REGION,interest",
        "EMAIL,Name,Zip Code,region,Topics",
        "Email,Full_Name,Postcode,Region,interests",
    ],
)
def test_common_headers_are_recognised_whatever_their_case_and_punctuation(
    db: Database, shape: Shape, tmp_path: Path, header: str
) -> None:
    path = tmp_path / "members.csv"
    path.write_text(f"{header}\nann@example.org,Ann Smith,ME1 1AA,kent,refugees\n", encoding="utf-8")
    report = run_import(db, path, shape)
    targets = [target for _cell, target in report.columns]
    assert targets == ["email", "name", "postcode", "region", "interests"]
    assert report.fields == []
    with db.session() as session:
        ann = members.show(session, "ann@example.org")
    assert (ann.name, ann.postcode, ann.region) == ("Ann Smith", "ME1 1AA", "kent")
    assert ann.interests == ["refugees"]


def test_a_name_column_wins_over_first_and_last_name(db: Database, shape: Shape, tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(
        "email,Name,First Name,Last Name\nann@example.org,Ann S.,Ann,Smith\nbob@example.org,,Bob,Jones\n",
        encoding="utf-8",
    )
    run_import(db, path, shape)
    with db.session() as session:
        assert members.show(session, "ann@example.org").name == "Ann S."
        assert members.show(session, "bob@example.org").name == "Bob Jones"  # the name cell is empty


def test_map_names_other_columns_overrides_and_leaves_out(db: Database, shape: Shape, tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(
        "Email,Home e-mail,Supporter,Notes,Branch\n"
        "ann@work.example,ann@example.org,Ann,do not call,Canterbury\n",
        encoding="utf-8",
    )
    mapping = (
        "home email=email",  # matched whatever the case and punctuation
        "Email=field.work_email",
        "Supporter=name",
        "Notes=-",
        "Branch=field.group",
    )
    report = run_import(db, path, shape, mapping=mapping)
    assert report.columns == [
        ("Email", "field.work_email"),
        ("Home e-mail", "email"),
        ("Supporter", "name"),
        ("Notes", "-"),
        ("Branch", "field.group"),
    ]
    assert "Notes → (left out)" in report.mapping
    with db.session() as session:
        ann = members.show(session, "ann@example.org")
    assert ann.name == "Ann" and ann.fields == {"work_email": "ann@work.example", "group": "Canterbury"}


def test_mapping_problems_are_refused_naming_the_columns(db: Database, shape: Shape, tmp_path: Path) -> None:
    before = snapshot(db)
    path = tmp_path / "members.csv"
    path.write_text("Email,E-mail Address,Name\nann@example.org,ann@example.org,Ann\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        run_import(db, path, shape)
    assert "members.csv:1: email: columns 'Email', 'E-mail Address' both map to email" in str(err.value)
    assert '--map "E-mail Address=-"' in str(err.value)
    # Saying which one settles it.
    report = run_import(db, path, shape, dry_run=True, mapping=["E-mail Address=-"])
    assert report.added == 1

    with pytest.raises(InvalidInput, match=r"members.csv:1: --map 'Name=nom': 'nom' is not a column"):
        run_import(db, path, shape, mapping=["E-mail Address=-", "Name=nom"])
    with pytest.raises(InvalidInput, match=r"members.csv:1: --map 'Phone=field.phone': the file has no"):
        run_import(db, path, shape, mapping=["E-mail Address=-", "Phone=field.phone"])
    with pytest.raises(InvalidInput, match=r"--map 'Name' is not HEADER=TARGET"):
        run_import(db, path, shape, mapping=["Name"])
    assert snapshot(db) == before


def test_cli_import_reports_the_mapping_and_takes_map(mailer_cli: MailerCli, tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(CRM, encoding="utf-8")
    shown = mailer_cli("lists", "import", str(path), *AGREED, "--dry-run")
    assert shown.exit_code == 0, shown.stderr
    assert (
        "  columns:   Email Address → email, First Name → first_name, Last Name → last_name, "
        "Post Code → postcode, Phone Number → field.phone_number\n"
    ) in shown.stdout
    done = mailer_cli("lists", "import", str(path), *AGREED, "--map", "Phone Number=-", "--json")
    assert done.exit_code == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["added"] == 3 and data["fields"] == []
    assert data["columns"][-1] == {"column": "Phone Number", "to": "-"}
    assert "Phone Number → (left out)" in data["mapping"]
    refused = mailer_cli("lists", "import", str(path), *AGREED, "--map", "Phone Number=telephone")
    assert refused.exit_code == 2
    assert "crm.csv:1: --map 'Phone Number=telephone': 'telephone' is not a column" in refused.stderr


# ---------------------------------------------------------------------------------------------
# Streaming: the file is read a chunk at a time


@pytest.mark.slow
def test_an_address_repeated_chunks_apart_is_merged_as_before(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    rows = list(generate(4500, shape, seed=3))
    first, later = dict(rows[1]), dict(rows[4400])
    later.update(email=first["email"].upper(), name="", interests="events", student="yes")
    later.update(consent_source="", consent_date="")
    rows[4400] = later
    path = tmp_path / "members.csv"
    write_csv(path, rows)
    report = run_import(db, path, shape)
    assert (report.rows, report.added, report.merged, report.rejected) == (4500, 4499, 1, 0)
    email = addresses.normalise(first["email"])
    state = snapshot(db)
    assert state["interests"][email] == {s for s in first["interests"].split(";") if s} | {"events"}
    assert state["fields"][email]["student"] == "yes"  # the later non-empty cell wins
    assert [m[2] for m in state["members"] if m[0] == email] == [first["name"]]  # an empty one never does
    with db.session() as session:
        (detail,) = session.scalars(
            select(ConsentEvent.detail).where(ConsentEvent.address_hash == hashes.hash_of(email))
        )
    assert detail.startswith("imported from members.csv line 3")  # the first row's line


def test_two_exports_run_together_are_merged_group_by_group(
    db: Database, shape: Shape, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More addresses on several rows than are held at a time (HELD): they are merged in groups,
    one more reading of the file each, with the same result as merging them all at once. HELD is
    lowered to 300 here, so that two groups take 301 members rather than 10,001."""
    monkeypatch.setattr(importer, "HELD", 300)
    assert importer.HELD < HELD
    count = importer.HELD + 1
    first = list(generate(count, shape, seed=4))
    second = [dict(r, name="", interests="events", student="yes", consent_source="") for r in first]
    path = tmp_path / "together.csv"
    write_csv(path, first + second)
    report = run_import(db, path, shape)
    assert (report.rows, report.added, report.merged, report.rejected) == (2 * count, count, count, 0)
    state = snapshot(db)
    assert len(state["members"]) == count
    some = first[:: count // 7]
    names = {m[0]: m[2] for m in state["members"]}
    for row in some:
        email = addresses.normalise(row["email"])
        assert names[email] == row["name"]  # the later, empty cell never wins
        assert state["interests"][email] == {s for s in row["interests"].split(";") if s} | {"events"}
        assert state["fields"][email]["student"] == "yes"
    with db.session() as session:
        details = session.scalars(select(ConsentEvent.detail)).all()
    assert len(details) == count and all(" line " in d for d in details)
    assert max(int(d.split(" line ")[1].split(";")[0]) for d in details) == count + 1  # first rows only


def test_many_rejected_rows_are_counted_and_written_and_the_first_thousand_listed(
    mailer_cli: MailerCli, tmp_path: Path
) -> None:
    path = tmp_path / "in" / "bad.csv"
    path.parent.mkdir()
    lines = ["email,region"] + [f"m{i}@example.org,atlantis" for i in range(1200)] + ["ok@example.org,kent"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = json.loads(mailer_cli("lists", "import", str(path), *AGREED, "--json", check=True).stdout)
    assert (data["added"], data["rejected"], len(data["rejections"])) == (1, 1200, 1000)
    with rejected_path_for(path).open(encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [int(r["row"]) for r in written] == list(range(2, 1202))
    text = mailer_cli("lists", "import", str(path), *AGREED, check=True).stdout
    assert f"  … and 200 more rejected row(s) (in {rejected_path_for(path)})" in text


def test_a_byte_that_is_not_utf8_far_into_the_file_is_found_by_line(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    good = b"".join(b"m%d@example.org,Name %d\n" % (i, i) for i in range(60_000))  # over 1 MB
    path.write_bytes(b"email,name\n" + good + b"zoe@example.org,Zo\xeb\n")
    with pytest.raises(InvalidInput) as err:
        run_import(db, path, shape)
    assert err.value.problems[0].line == 60_002 and "not UTF-8 text (byte 0xeb)" in str(err.value)
    assert snapshot(db)["members"] == []
