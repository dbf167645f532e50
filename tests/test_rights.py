"""Members' rights (docs/data.md): subject access finds a person everywhere mailer holds them,
erasure leaves no plain occurrence of their address, name or postcode in the database (the file
after its checkpoint; a pg_dump), the workspace's files or the logs it owns, and retention deletes
exactly what is past its time and nothing that proves consent. On both databases."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.cli_runner import MailerCli
from support.rights import ADDRESS, NAME, OTHER, POSTCODE, database_bytes, held, occurrences, workspace_bytes

from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.models import AuditEntry, ConsentEvent, Member, Suppression, User, utcnow
from mailer.rights import access, erasure, retention
from mailer.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def story(db: Database, settings: Settings, shape: Shape, workspace: Path) -> Settings:
    return held(db, settings, shape, workspace)


def test_export_lists_every_record_and_file_of_the_person(db: Database, story: Settings) -> None:
    with db.session() as session:
        found = access.subject_access(session, story, " AnnaBel.Q@Example.ORG\t")
    data = found.as_dict()
    json.dumps(data)
    assert data["address"] == ADDRESS
    assert data["member"]["name"] == NAME and data["member"]["postcode"] == POSTCODE
    assert [m["status"] for m in data["mailings"]] == ["sent"]
    assert [(b["kind"], b["status"]) for b in data["bounces"]] == [("soft", "5.2.2")]
    assert ADDRESS in data["bounces"][0]["diagnostic"]
    assert [m["kind"] for m in data["inbound"]] == ["soft-bounce"]
    assert data["consent_log"] and data["consent_log"][0]["source"] == "signup"
    desk = data["desk"]
    assert desk["account"]["name"] == NAME and [r["role"] for r in desk["roles"]] == ["admin"]
    assert "Firefox" in desk["sessions"][0]["user_agent"] and desk["audit"] == []
    kinds = {f["kind"] for f in data["files"]}
    assert {"outbox", "processed", "quarantine", "csv"} <= kinds, data["files"]
    assert any(f["path"] == "members.rejected.csv" and f["lines"] == 1 for f in data["files"])
    assert any(m["table"] == "audit_log" for m in data["mentions"])  # the desk's person.add
    assert [r["answer"] for r in data["rsvps"]] == ["yes"] and data["rsvps"][0]["name"] == NAME
    assert data["not_held_here"]
    page = access.to_html(found, story.organisation)
    assert "Bounces and complaints" in page and "5.2.2" in page and "<script" not in page


def test_a_desk_only_person_is_found_too(db: Database, settings: Settings, shape: Shape) -> None:
    from mailer.desk import people

    with db.session() as session:
        people.add(
            session, "ed@example.org", people.check_role(shape, settings, "admin"), by=None, now=utcnow()
        )
    with db.session() as session:
        data = access.subject_access(session, settings, "ED@example.org").as_dict()
    assert data["member"] is None and data["desk"]["account"]["email"] == "ed@example.org"


def test_forget_leaves_no_plain_occurrence_anywhere(
    db: Database, story: Settings, workspace: Path, database_url: str
) -> None:
    report = erasure.forget(db, story, f"  {ADDRESS.upper()} ", actor="Jo (data protection)")
    assert report.found and report.member_erased and report.desk_account_anonymised
    assert report.rsvps_removed == 1
    assert report.newly_suppressed  # a soft bounce does not suppress; the erasure does
    assert {"bounce_events", "audit_log"} <= set(report.rows_scrubbed), report
    assert any("outbox" in p for p in report.files_removed)
    assert any(".quarantine" in p for p in report.files_removed)
    assert any(".processed" in p for p in report.files_removed)
    assert {"members.csv", "members.rejected.csv"} <= set(report.files_rewritten)
    assert report.not_reached and not report.files_unreachable
    for path, data in workspace_bytes(workspace).items():
        assert not occurrences(data), f"{path} still holds {occurrences(data)}"
    assert (workspace / "members.csv").read_text().count("\n") == 2  # the header and the other member
    with db.session() as session:
        assert session.scalar(select(Member.email).where(Member.email == OTHER)) == OTHER
        held_hash = session.scalar(select(Suppression.address_hash).where(Suppression.reason == "erasure"))
        assert held_hash == report.address_hash and len(held_hash) == 64
        lines = session.scalars(select(ConsentEvent).where(ConsentEvent.address_hash == held_hash)).all()
        assert lines and all(line.detail in ("", "personal data erased on request") for line in lines)
        assert session.scalar(select(User.email).where(User.email.like("erased-%")))
        forget_line = session.scalars(select(AuditEntry).where(AuditEntry.action == "members.forget")).one()
        assert forget_line.actor == "Jo (data protection)" and ADDRESS not in forget_line.object
    stored = database_bytes(db, database_url)
    assert not occurrences(stored), occurrences(stored)
    assert OTHER.encode() in stored  # the check can see an address at all


def test_the_suppression_holds_after_forget_and_a_second_forget_changes_nothing(
    db: Database, story: Settings
) -> None:
    erasure.forget(db, story, ADDRESS, actor="dpo")
    with db.session() as session:
        from mailer.audience import suppression

        assert suppression.is_suppressed(session, ADDRESS.upper())
        before = session.scalar(select(func.count()).select_from(ConsentEvent))
    again = erasure.forget(db, story, ADDRESS, actor="dpo")
    assert not again.found and again.already_erased_at is not None
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == before


def _counts(db: Database) -> dict[str, int]:
    from mailer.models import Base

    with db.session() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def test_purge_deletes_what_is_past_its_time_and_never_what_proves_consent(
    db: Database, story: Settings
) -> None:
    erasure.forget(db, story, OTHER, actor="dpo")  # a person no longer a member, suppressed
    now = utcnow()
    nothing = retention.purge(db, story, now=now, dry_run=True)
    assert {k.kind: k.count for k in nothing.kinds if k.count} == {}
    later = now + timedelta(days=800)
    before = _counts(db)
    dry = retention.purge(db, story, now=later, dry_run=True)
    assert _counts(db) == before  # a dry run deletes nothing
    counts = {k.kind: k.count for k in dry.kinds}
    assert counts["deliveries"] == before["deliveries"] and counts["deliveries"] >= 2
    assert counts["inbound"] == 1 and counts["bounces"] == 1 and counts["sessions"] == 1
    assert counts["audit"] == before["audit_log"] and counts["consent"] == 0
    # The other person's outbox copy went with their erasure; the rest is past its time on disk.
    assert (counts["processed"], counts["quarantine"], counts["outbox"]) == (1, 1, 1)
    done = retention.purge(db, story, now=later)
    assert {k.kind: k.count for k in done.kinds} == counts
    after = _counts(db)
    assert after["deliveries"] == after["inbound_messages"] == after["bounce_events"] == 0
    assert after["suppressions"] == before["suppressions"] and after["members"] == before["members"]
    assert after["consent_log"] == before["consent_log"]
    assert retention.purge(db, story, now=later, dry_run=True).total == 0  # nothing left to go
    # Six years on, the other person's subscribe line goes; the line that proves their suppression
    # stays, and a member's own lines stay while they are a member.
    much_later = now + timedelta(days=story.retain_consent_days + 10)
    gone = {k.kind: k.count for k in retention.purge(db, story, now=much_later).kinds}
    assert gone["consent"] == 1
    with db.session() as session:
        actions = session.scalars(select(ConsentEvent.action).where(ConsentEvent.member_id.is_(None))).all()
        assert actions == ["erase"]
        own = select(func.count()).select_from(ConsentEvent).where(ConsentEvent.member_id.is_not(None))
        assert session.scalar(own) == before["consent_log"] - 2  # the member's own lines, all kept
        assert session.scalar(select(func.count()).select_from(Suppression)) == before["suppressions"]


def test_cli_export_forget_purge_and_their_audit(
    mailer_cli: MailerCli, db: Database, story: Settings, tmp_path: Path, env: dict[str, str]
) -> None:
    env["MAILER_INBOUND_MAILDIR"] = "inbox"
    page = tmp_path / "annabel.html"
    out = mailer_cli("members", "export", ADDRESS, "--html", str(page), "--as", "Jo (DPO)", check=True)
    assert json.loads(out.stdout)["member"]["name"] == NAME
    assert page.stat().st_mode & 0o777 == 0o600 and NAME in page.read_text()
    mailer_cli("lists", "export", "-o", str(tmp_path / "all.csv"), "--as", "Jo (DPO)", check=True)
    mailer_cli("members", "unsubscribe", OTHER, check=True)
    gone = mailer_cli("members", "forget", ADDRESS, "--yes", "--json", check=True)
    assert json.loads(gone.stdout)["found"] is True
    unknown = mailer_cli("members", "forget", "nobody@example.org", "--yes")
    assert unknown.exit_code == 2 and "nothing changed" in unknown.stderr
    dry = mailer_cli("purge", "--dry-run", "--now", "2099-01-01", "--json", check=True)
    assert json.loads(dry.stdout)["dry_run"] is True
    with db.session() as session:
        lines = session.execute(select(AuditEntry.action, AuditEntry.actor, AuditEntry.object)).all()
    actions = {(a, actor) for a, actor, _o in lines}
    assert {("members.export", "Jo (DPO)"), ("lists.export", "Jo (DPO)")} <= actions
    assert any(a == "members.unsubscribe" and actor.endswith("(command line)") for a, actor in actions)
    assert any(a == "members.forget" for a, _ in actions)
    assert not any(ADDRESS in (o or "") for _a, _actor, o in lines)  # the export's line was scrubbed
    rotated = json.loads(mailer_cli("secret", "rotate-address-key", "--json", check=True).stdout)
    assert rotated["keys"] == 2 and rotated["members_rehashed"] >= 1


def test_a_new_address_key_rehashes_members_and_keeps_erased_suppressions(
    db: Database, settings: Settings, shape: Shape, tmp_path: Path, workspace: Path
) -> None:
    from mailer.audience import addresses, suppression
    from mailer.audience.importer import import_csv
    from mailer.db import open_database

    path = tmp_path / "two.csv"
    path.write_text(
        "email,name,consent_source\nkeep@example.org,Keep,signup\ngone@example.org,Gone,signup\n", "utf-8"
    )
    with db.session() as session:
        import_csv(session, path, shape)
    erasure.forget(db, settings, "gone@example.org", actor="dpo")
    with db.session() as session:
        suppression.suppress(session, "keep@example.org", reason="unsubscribe", source="admin")
        old = addresses.hash_of(session, "keep@example.org")
    rotated = replace(
        settings,
        address_key="Nw7dQ2kR9vXm4pLs8TbYc1HjG6fAe3uZo5iKr0EqWtB_-UyPgVhMzJaOnSlFxCD," + settings.address_key,
    )
    second = open_database(rotated)
    try:
        with second.session() as session:
            new = addresses.hash_of(session, "keep@example.org")
            assert new != old
            assert (
                session.scalar(select(Member.address_hash).where(Member.email == "keep@example.org")) == new
            )
            assert session.get(Suppression, new) is not None and session.get(Suppression, old) is None
            assert suppression.is_suppressed(session, "GONE@example.org")  # under the older key
    finally:
        second.dispose()
