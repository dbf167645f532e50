"""The desk's people and roles as a library and as ``mailer users``, on both databases.

``can`` follows the desk's rules (admin everything, of one network or of all; editor composes,
test-sends, schedules and sends once approved; approver approves, never an issue they edited last;
contributor submits to their region's network only); roles are checked against the workspace's
networks and regions with a did-you-mean; every change is in the audit log.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from support.cli_runner import MailerCli
from support.desk import networks_workspace

from mailer.audience.shape import Shape, load_shape
from mailer.db import Database
from mailer.desk import audit, people, sessions
from mailer.desk.people import Person, Role, can, may_approve, may_send
from mailer.errors import InvalidInput, UnknownName
from mailer.models import AuditEntry, DeskSession, User
from mailer.settings import Settings
from mailer.workspace import init_workspace

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

__all__ = ["networks_workspace"]  # a fixture: the workspace with the demo's two networks


def someone(*roles: Role, id: int = 1, disabled: bool = False) -> Person:
    return Person(
        id=id,
        email=f"p{id}@example.org",
        name="",
        roles=roles,
        created_at=NOW,
        disabled_at=NOW if disabled else None,
    )


# ---------------------------------------------------------------------------------------------
# The rules


def test_an_admin_of_every_network_may_do_everything() -> None:
    admin = someone(Role("admin", ""))
    for network in ("kent", "central-england", ""):
        assert all(can(admin, action, network) for action in people.ACTIONS)
    assert admin.admin_of_all and admin.is_admin


def test_an_admin_of_one_network_is_an_admin_there_only() -> None:
    kate = someone(Role("admin", "kent"))
    assert all(can(kate, action, "kent") for action in people.ACTIONS)
    assert not any(can(kate, action, "central-england") for action in people.ACTIONS)
    assert not can(kate, "manage-people", ""), "not an admin of every network"
    assert kate.is_admin and not kate.admin_of_all


def test_an_editor_composes_and_sends_once_approved() -> None:
    ed = someone(Role("editor", "central-england"))
    for action in ("view", "review", "compose", "test-send", "schedule", "send"):
        assert can(ed, action, "central-england"), action
    for action in ("approve", "submit", "manage-people"):
        assert not can(ed, action, "central-england"), action
    assert not can(ed, "compose", "kent")
    assert may_send(ed, "central-england", approved=True)
    assert not may_send(ed, "central-england", approved=False)
    assert not may_send(ed, "kent", approved=True)
    assert not may_approve(ed, "central-england", last_editor_id=None), "an editor does not approve"


def test_an_approver_never_approves_what_they_edited_last() -> None:
    ann = someone(Role("approver", "central-england"), id=7)
    assert can(ann, "approve", "central-england")
    assert not can(ann, "compose", "central-england") and not can(ann, "send", "central-england")
    assert may_approve(ann, "central-england", last_editor_id=3)
    assert may_approve(ann, "central-england", last_editor_id=None)
    assert not may_approve(ann, "central-england", last_editor_id=7)
    assert not may_approve(ann, "kent", last_editor_id=3)
    both = someone(Role("editor", "kent"), Role("approver", "kent"), id=9)
    assert not may_approve(both, "kent", last_editor_id=9), "an editor cannot approve her own issue"
    root = someone(Role("admin", ""), id=1)
    assert not may_approve(root, "kent", last_editor_id=1), "nor can an admin"
    assert may_approve(root, "kent", last_editor_id=2)


def test_a_contributor_submits_to_their_regions_network_only(shape: Shape) -> None:
    cat = someone(Role("contributor", "kent", "canterbury"))
    assert can(cat, "submit", "kent")
    assert can(cat, "submit", "kent", "canterbury", shape=shape)
    assert not can(cat, "submit", "kent", "thanet", shape=shape), "another local group"
    assert not can(cat, "submit", "central-england")
    assert not can(cat, "submit", "central-england", "birmingham", shape=shape)
    for action in ("review", "compose", "test-send", "schedule", "send", "approve", "manage-people"):
        assert not can(cat, action, "kent"), action
    west = someone(Role("contributor", "central-england", "west-midlands"))
    assert can(west, "submit", "central-england", "birmingham", shape=shape), "a region's groups too"
    assert not can(west, "submit", "central-england", "derby", shape=shape)


def test_a_disabled_person_may_do_nothing() -> None:
    gone = someone(Role("admin", ""), disabled=True)
    assert not any(can(gone, action, "kent") for action in people.ACTIONS)
    assert not gone.is_admin


def test_an_unknown_action_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        can(someone(Role("admin", "")), "delete-everything", "kent")


# ---------------------------------------------------------------------------------------------
# Checking roles against the workspace


def test_roles_are_checked_against_networks_and_regions(shape: Shape, settings: Settings) -> None:
    check = people.check_role
    assert check(shape, settings, "Editor", "central-england") == Role("editor", "central-england")
    assert check(shape, settings, "contributor", "", "birmingham") == Role(
        "contributor", "central-england", "birmingham"
    )
    assert check(shape, settings, "admin") == Role("admin", "")
    assert check(shape, settings, "admin", "kent") == Role("admin", "kent")
    with pytest.raises(UnknownName, match="did you mean 'editor'"):
        check(shape, settings, "edtor", "kent")
    with pytest.raises(UnknownName, match="did you mean 'central-england'"):
        check(shape, settings, "editor", "central-englnd")
    with pytest.raises(UnknownName, match="did you mean 'birmingham'"):
        check(shape, settings, "contributor", "", "birmingam")
    with pytest.raises(InvalidInput, match="works for one network"):
        check(shape, settings, "approver")
    with pytest.raises(InvalidInput, match="needs a region"):
        check(shape, settings, "contributor", "kent")
    with pytest.raises(InvalidInput, match="belongs to network 'kent'"):
        check(shape, settings, "contributor", "central-england", "canterbury")
    with pytest.raises(InvalidInput, match="only a contributor has a region"):
        check(shape, settings, "editor", "kent", "canterbury")
    with pytest.raises(InvalidInput, match="belongs to no network"):
        check(shape, settings, "contributor", "", "lewes")


def test_a_workspace_without_networks_has_one(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "single"
    init_workspace(root)
    shape = load_shape(root / "lists")
    assert shape.networks == {}
    assert people.check_role(shape, settings, "editor") == Role("editor", "")
    assert people.check_role(shape, settings, "editor", "kent-network") == Role("editor", "")
    assert people.check_role(shape, settings, "contributor", "", "birmingham") == Role(
        "contributor", "", "birmingham"
    )
    with pytest.raises(UnknownName, match="one network, 'kent-network'"):
        people.check_role(shape, settings, "editor", "central-england")


# ---------------------------------------------------------------------------------------------
# Adding and removing, with the audit log


def test_add_remove_and_the_audit_log(db: Database, shape: Shape, settings: Settings) -> None:
    editor = people.check_role(shape, settings, "editor", "central-england")
    approver = people.check_role(shape, settings, "approver", "central-england")
    with db.session() as s:
        first = people.add(s, "  Ed@Example.ORG ", editor, name="Ed\r\nBcc: x", by=None, now=NOW, via="cli")
        again = people.add(s, "ed@example.org", editor, by=None, now=NOW)
        both = people.add(s, "ed@example.org", approver, by=first.person.id, now=NOW)
    assert first.new_person and first.new_role and first.person.email == "ed@example.org"
    assert first.person.name == "Ed Bcc: x", "no line breaks in a name"
    assert not again.new_person and not again.new_role
    assert [r.role for r in both.person.roles] == ["approver", "editor"]
    with db.session() as s:
        link = sessions.issue_link(s, first.person.id, now=NOW)
        value = sessions.create(s, first.person.id, now=NOW, user_agent="test\x00agent")
        removed = people.remove(s, "ed@example.org", role="approver", by=None, now=NOW)
        assert [r.role for r in removed] == ["approver"]
        assert sessions.lookup(s, value, now=NOW) is not None, "removing one role signs nobody out"
        with pytest.raises(UnknownName, match="their roles: editor of central-england"):
            people.remove(s, "ed@example.org", role="approver", by=None, now=NOW)
        with pytest.raises(UnknownName, match="nobody with the address"):
            people.remove(s, "nobody@example.org", by=None, now=NOW)
        everything = people.remove(s, "ed@example.org", by=None, now=NOW + timedelta(minutes=1))
        assert [r.role for r in everything] == ["editor"]
        assert sessions.lookup(s, value, now=NOW + timedelta(minutes=2)) is None, "signed out everywhere"
        assert sessions.consume_link(s, link, now=NOW + timedelta(minutes=2)) is None, "links stop working"
        found = people.by_email(s, "ed@example.org")
        assert found is not None and not found.active and found.roles == ()
        agent = s.scalars(select(DeskSession.user_agent)).one()
        assert "\x00" not in agent
    with db.session() as s:
        lines = [(line.action, line.object, line.by) for line in reversed(audit.recent(s))]
        by_ids = s.scalars(select(AuditEntry.user_id).order_by(AuditEntry.id)).all()
    assert [a for a, _, _ in lines] == [
        "person.add",
        "role.add",
        "role.add",
        "role.remove",
        "role.remove",
        "person.disable",
        "sessions.revoke",
    ]
    assert all(o == "ed@example.org" for _, o, _ in lines)
    assert by_ids[2] == first.person.id, "the audit log names who did it"
    assert lines[0][2] == "" and by_ids[0] is None, "the command line is nobody"
    with db.session() as s:  # adding a removed person again enables them
        back = people.add(s, "ed@example.org", editor, by=None, now=NOW)
        assert back.person.active


def test_links_and_sessions(db: Database, shape: Shape, settings: Settings) -> None:
    role = people.check_role(shape, settings, "editor", "kent")
    with db.session() as s:
        user = people.add(s, "ed@example.org", role, by=None, now=NOW).person.id
        token = sessions.issue_link(s, user, now=NOW)
    assert sessions.well_formed(token)
    with db.session() as s:
        assert sessions.link_user(s, token, now=NOW) is not None
        assert sessions.link_user(s, token[:-1] + ("A" if token[-1] != "A" else "B"), now=NOW) is None
        assert sessions.link_user(s, token, now=NOW + sessions.LINK_LIFETIME) is None
        assert sessions.consume_link(s, token, now=NOW + timedelta(minutes=1)) == user
        assert sessions.consume_link(s, token, now=NOW + timedelta(minutes=1)) is None
        value = sessions.create(s, user, now=NOW)
        current = sessions.lookup(s, value, now=NOW)
        assert current is not None and current.user_id == user
        stored = s.get(DeskSession, current.id)
        assert stored is not None and value not in stored.id
        assert sessions.lookup(s, stored.id[:43], now=NOW) is None, "the stored hash is no cookie"
        assert sessions.lookup(s, value, now=NOW + sessions.IDLE) is None
        sessions.touch(s, current.id, now=NOW + timedelta(hours=11))
        assert sessions.lookup(s, value, now=NOW + sessions.IDLE) is not None
        assert sessions.revoke(s, current.id, now=NOW)
        assert sessions.lookup(s, value, now=NOW) is None
        assert not sessions.revoke(s, current.id, now=NOW)
        user_row = s.get(User, user)
        assert user_row is not None


# ---------------------------------------------------------------------------------------------
# mailer users


def test_users_add_list_remove_revoke(mailer_cli: MailerCli, db: Database) -> None:
    added = mailer_cli(
        "users", "add", "ed@example.org", "--role", "editor", "--network", "central-england", "--name", "Ed"
    )
    assert added.exit_code == 0, added.output
    assert "ed@example.org: added, now editor of central-england" in added.stdout
    mailer_cli(
        "users", "add", "bea@example.org", "--role", "contributor", "--region", "birmingham", check=True
    )
    data = json.loads(
        mailer_cli("users", "add", "root@example.org", "--role", "admin", "--json", check=True).stdout
    )
    assert data["added_person"] and data["role"] == {"role": "admin", "network": "", "region": ""}
    same = mailer_cli("users", "add", "ed@example.org", "--role", "editor", "--network", "central-england")
    assert "already editor of central-england; unchanged" in same.stdout

    listed = mailer_cli("users", "list", check=True).stdout
    assert "ed@example.org (Ed)" in listed and "editor of central-england" in listed
    assert "contributor of central-england/birmingham" in listed
    everyone = json.loads(mailer_cli("users", "list", "--json", check=True).stdout)
    assert [p["email"] for p in everyone] == ["bea@example.org", "ed@example.org", "root@example.org"]
    assert everyone[0]["roles"] == [
        {"role": "contributor", "network": "central-england", "region": "birmingham"}
    ]

    with db.session() as s:
        ed = people.by_email(s, "ed@example.org")
        assert ed is not None
        value = sessions.create(s, ed.id, now=datetime.now(UTC))
    revoked = json.loads(mailer_cli("users", "revoke", "ed@example.org", "--json", check=True).stdout)
    assert revoked == {"email": "ed@example.org", "sessions_ended": 1}
    with db.session() as s:
        assert sessions.lookup(s, value, now=datetime.now(UTC)) is None

    one = mailer_cli("users", "remove", "bea@example.org", "--role", "contributor", "--json", check=True)
    assert json.loads(one.stdout)["removed"] == [
        {"role": "contributor", "network": "central-england", "region": "birmingham"}
    ]
    gone = mailer_cli("users", "remove", "ed@example.org", check=True)
    assert "removed from the desk; cannot sign in" in gone.stdout
    final = json.loads(mailer_cli("users", "list", "--json", check=True).stdout)
    assert [(p["email"], p["disabled_at"] is not None) for p in final] == [
        ("bea@example.org", False),
        ("root@example.org", False),
        ("ed@example.org", True),
    ]
    with db.session() as s:
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        details = s.scalars(select(AuditEntry.detail)).all()
    assert actions.count("role.add") == 3 and "sessions.revoke" in actions and "person.disable" in actions
    assert all("via cli" in d for d in details)


def test_users_errors_name_the_fix(mailer_cli: MailerCli, tmp_path: Path) -> None:
    bad_role = mailer_cli("users", "add", "x@example.org", "--role", "edtor", "--network", "kent")
    assert bad_role.exit_code == 2 and "did you mean 'editor'?" in bad_role.stderr
    bad_network = mailer_cli("users", "add", "x@example.org", "--role", "editor", "--network", "kentt")
    assert bad_network.exit_code == 2 and "did you mean 'kent'?" in bad_network.stderr
    bad_region = mailer_cli(
        "users", "add", "x@example.org", "--role", "contributor", "--region", "brimingham"
    )
    assert bad_region.exit_code == 2 and "did you mean 'birmingham'" in bad_region.stderr
    wrong = mailer_cli(
        "users",
        "add",
        "x@example.org",
        "--role",
        "contributor",
        "--region",
        "canterbury",
        "--network",
        "central-england",
    )
    assert wrong.exit_code == 2 and "use --network kent" in wrong.stderr
    bad_address = mailer_cli("users", "add", "not-an-address", "--role", "admin")
    assert bad_address.exit_code == 2 and "invalid address" in bad_address.stderr
    unknown = mailer_cli("users", "remove", "nobody@example.org")
    assert unknown.exit_code == 2 and "mailer users list" in unknown.stderr
    assert mailer_cli("users", "revoke", "nobody@example.org").exit_code == 2
    assert mailer_cli("users", "remove", "x@example.org", "--role", "boss").exit_code == 2
    remove_network = mailer_cli("users", "remove", "x@example.org", "--network", "centrl-england")
    assert remove_network.exit_code == 2 and "did you mean 'central-england'?" in remove_network.stderr
    assert json.loads(mailer_cli("users", "list", "--json", check=True).stdout) == []

    single = tmp_path / "single"
    init_workspace(single)
    env = {"MAILER_WORKSPACE": str(single)}
    one = mailer_cli(
        "users", "add", "x@example.org", "--role", "editor", "--network", "central-england", env=env
    )
    assert one.exit_code == 2 and "one network, 'kent-network'" in one.stderr
    ok = mailer_cli("users", "add", "x@example.org", "--role", "editor", env=env, check=True)
    assert "now editor of the network" in ok.stdout
