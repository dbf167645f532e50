"""One member at a time: show, export (subject access), unsubscribe, forget (erasure)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support import hashes
from support.cli_runner import MailerCli
from support.smtp_server import SmtpTestServer

from mailer.audience import members
from mailer.audience.importer import Options, import_csv
from mailer.audience.shape import Shape
from mailer.audience.suppression import is_suppressed
from mailer.db import Database
from mailer.errors import UnknownName
from mailer.models import ConsentEvent, Member, MemberField, MemberInterest, Suppression

REPO = Path(__file__).resolve().parent.parent
CSV = (
    "email,name,postcode,region,interests,consent_source,consent_date,student\n"
    "zoe@example.org,Zoë Ó Briain,ME14 1HH,,refugees;schools,signup,2024-03-01,no\n"
    "ann@example.org,Ann,,kent,,,,yes\n"
)


@pytest.fixture
def people(db: Database, shape: Shape, tmp_path: Path) -> Database:
    path = tmp_path / "people.csv"
    path.write_text(CSV, encoding="utf-8")
    with db.session() as session:
        import_csv(session, path, shape, options=Options(consent="test members agreed"))
    return db


def test_show_gives_the_member_with_region_interests_fields(people: Database) -> None:
    with people.session() as session:
        zoe = members.show(session, "ZOE@example.org")
    assert (zoe.email, zoe.name, zoe.postcode) == ("zoe@example.org", "Zoë Ó Briain", "ME14 1HH")
    assert zoe.region == "maidstone-medway-swale"
    assert zoe.region_label == "South East › Kent › Maidstone, Medway & Swale"
    assert zoe.interests == ["refugees", "schools"] and zoe.fields == {"student": "no"}
    assert not zoe.suppressed
    json.dumps(zoe.as_dict())


def test_unknown_addresses_are_named_with_a_hint(people: Database) -> None:
    with people.session() as session:
        with pytest.raises(UnknownName, match=r"no member has the address 'nobody@example\.org'") as err:
            members.show(session, "nobody@example.org")
        assert err.value.problem.hint
        with pytest.raises(UnknownName, match="not a valid address"):
            members.export(session, "nobody")
        with pytest.raises(UnknownName):
            members.unsubscribe(session, "nobody@example.org")
        with pytest.raises(UnknownName):
            members.forget(session, "nobody@example.org")


def test_unsubscribe_suppresses_and_keeps_the_member(people: Database) -> None:
    with people.session() as session:
        assert members.unsubscribe(session, "ann@example.org", campaign="2025-11-newsletter")
        assert not members.unsubscribe(session, "ann@example.org")
    with people.session() as session:
        ann = members.show(session, "ann@example.org")
        assert ann.suppression is not None
        assert (ann.suppression.reason, ann.suppression.source, ann.suppression.campaign) == (
            "unsubscribe",
            "admin",
            "2025-11-newsletter",
        )


def test_export_holds_everything_about_the_person(people: Database) -> None:
    with people.session() as session:
        members.unsubscribe(session, "zoe@example.org")
        data = members.export(session, "zoe@example.org")
    json.dumps(data)  # serialisable as it is
    assert data["address"] == "zoe@example.org"
    assert data["address_hash"] == hashes.hash_of("zoe@example.org")
    assert data["member"]["name"] == "Zoë Ó Briain" and data["member"]["fields"] == {"student": "no"}
    assert data["suppression"]["reason"] == "unsubscribe"
    assert [e["action"] for e in data["consent_log"]] == ["subscribe", "unsubscribe"]
    assert data["consent_log"][0]["source"] == "signup"
    assert "2024-03-01" in data["consent_log"][0]["detail"]


def test_forget_erases_personal_data_and_keeps_the_hash(people: Database) -> None:
    with people.session() as session:
        zoe_id = members.show(session, "zoe@example.org").id
        report = members.forget(session, "Zoe@Example.org")
    assert (report.interests_removed, report.fields_removed, report.consent_events_kept) == (2, 1, 2)
    assert report.address_hash == hashes.hash_of("zoe@example.org") and report.newly_suppressed
    with people.session() as session:
        assert session.scalar(select(Member).where(Member.email == "zoe@example.org")) is None
        for model in (MemberInterest, MemberField):
            assert (
                session.scalar(select(func.count()).select_from(model).where(model.member_id == zoe_id)) == 0
            )
        log = session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.address_hash == report.address_hash)
            .order_by(ConsentEvent.id)
        ).all()
        assert [(e.action, e.member_id) for e in log] == [("subscribe", None), ("erase", None)]
        assert session.get(Suppression, report.address_hash).reason == "erasure"  # type: ignore[union-attr]
        assert is_suppressed(session, "zoe@example.org")
        with pytest.raises(UnknownName, match="erased"):
            members.show(session, "zoe@example.org")
        data = members.export(session, "zoe@example.org")
        assert data["member"] is None and data["suppression"]["reason"] == "erasure"
        assert "Zoë" not in json.dumps(data, ensure_ascii=False)
        assert members.show(session, "ann@example.org").name == "Ann"  # others untouched


def test_cli_members_commands(mailer_cli: MailerCli, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(CSV, encoding="utf-8")
    assert mailer_cli("lists", "import", str(path), "--consent", "test members agreed").exit_code == 0

    shown = mailer_cli("members", "show", "zoe@example.org")
    assert shown.exit_code == 0 and "Zoë Ó Briain" in shown.stdout and "subscribed" in shown.stdout
    data = json.loads(mailer_cli("members", "show", "zoe@example.org", "--json").stdout)
    assert data["region"] == "maidstone-medway-swale" and data["suppressed"] is False

    out = mailer_cli("members", "unsubscribe", "ann@example.org", "--json")
    assert json.loads(out.stdout) == {
        "email": "ann@example.org",
        "suppressed": True,
        "newly_suppressed": True,
    }
    assert "suppressed: unsubscribe via admin" in mailer_cli("members", "show", "ann@example.org").stdout

    export = json.loads(mailer_cli("members", "export", "ann@example.org").stdout)
    assert [e["action"] for e in export["consent_log"]] == ["subscribe", "unsubscribe"]

    refused = mailer_cli("members", "forget", "zoe@example.org", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.stderr
    assert mailer_cli("members", "show", "zoe@example.org").exit_code == 0  # still there

    confirmed = mailer_cli("members", "forget", "zoe@example.org", input="y\n")
    assert confirmed.exit_code == 0 and "erased" in confirmed.stdout
    gone = mailer_cli("members", "show", "zoe@example.org")
    assert gone.exit_code == 2 and "erased" in gone.stderr

    forgot = json.loads(mailer_cli("members", "forget", "ann@example.org", "--yes", "--json").stdout)
    assert forgot["erased"] is True and forgot["newly_suppressed"] is False  # already unsubscribed

    unknown = mailer_cli("members", "forget", "nobody@example.org", "--yes")
    assert unknown.exit_code == 2 and "nothing is held about 'nobody@example.org'" in unknown.stderr

    # A later import of the same file brings neither back.
    report = json.loads(
        mailer_cli("lists", "import", str(path), "--consent", "test members agreed", "--json").stdout
    )
    assert (report["added"], report["suppressed"], report["not_added"]) == (0, 2, 2)


ALERT = "2025-11-echr-alert"


def test_show_says_which_campaigns_reached_a_member_even_after_they_left(
    mailer_cli: MailerCli, workspace: Path, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    """`members show` used to end a suppressed member's status with "never mailed", whoever had been
    mailed; it now says how many campaigns were sent to them and the last one."""
    shutil.copytree(REPO / "campaigns" / ALERT, workspace / "campaigns" / ALERT)
    path = tmp_path / "people.csv"
    path.write_text("email,name,region,interests\nann@example.org,Ann,kent,mp-advocacy\n", encoding="utf-8")
    mailer_cli("lists", "import", str(path), "--consent", "test members agreed", check=True)
    before = mailer_cli("members", "show", "ann@example.org", check=True).stdout
    assert "  mailed:    no campaign yet\n" in before

    relay = {"MAILER_RELAY": smtp_server.url}
    mailer_cli("campaigns", "send", ALERT, "--in-process", "--yes", env=relay, check=True)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ann@example.org"]]
    mailer_cli("members", "unsubscribe", "ann@example.org", "--campaign", ALERT, check=True)

    shown = mailer_cli("members", "show", "ann@example.org", check=True).stdout
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert f"  mailed:    1 campaign(s), the last {ALERT} on {today}\n" in shown
    assert f"suppressed: unsubscribe via admin (campaign {ALERT}) on {today}; no further mail" in shown
    assert "never" not in shown
    data = json.loads(mailer_cli("members", "show", "ann@example.org", "--json", check=True).stdout)
    assert (data["mailed"], data["last_mailed"], data["suppressed"]) == (1, ALERT, True)
    assert data["last_mailed_at"].startswith(today)
