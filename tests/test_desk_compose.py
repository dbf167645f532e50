"""Composing and previewing on the desk, on the real app and both databases.

The issue file stays the single source of truth: the desk's edits keep the editor's comments and
the order of fields, an issue edited on the desk passes `mailer campaigns check` (the real CLI), a
save over a file changed on disk since it was opened is refused and overwrites nothing, and check's
problems are shown at the field they concern. Previews show each region's copy (the Birmingham
event only in Birmingham's) in a sandboxed frame beside its text, and the variants with their
member counts. Only the issue network's editors and admins compose.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import launch_chromium
from playwright.sync_api import Browser, Page
from sqlalchemy import select
from support.browser import WIDTHS, free_port, live_server
from support.browser import check_page as check_web_page
from support.cli_runner import MailerCli

from mailer.audience.importer import Options, import_csv
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.desk import issuefile, people, sessions
from mailer.desk.issuefile import IssueFile, StaleIssue
from mailer.errors import ContentError, UnknownName
from mailer.issue import load_campaign, read_yaml
from mailer.models import AuditEntry, IssueEdit
from mailer.settings import Settings
from mailer.web import create_app
from mailer.workspace import init_workspace

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8000"
CE = "2025-12-central-england"
NOTE = "# Editor's note: the conference item stays last, whatever else moves."


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The demo workspace: networks Kent and Central England, and their issues."""
    root = tmp_path / "ws"
    init_workspace(root, demo=True)
    return root


def issue_path(workspace: Path, slug: str = CE) -> Path:
    return workspace / "campaigns" / slug / "issue.yaml"


def add_person(
    db: Database, shape: Shape, settings: Settings, email: str, role: str, network: str = "", region: str = ""
) -> int:
    checked = people.check_role(shape, settings, role, network, region)
    with db.session() as s:
        return people.add(s, email, checked, by=None, now=datetime.now(UTC)).person.id


def signed_client(app: Any, db: Database, user_id: int) -> TestClient:
    """A client signed in as ``user_id`` (a session made directly; sign-in itself is tested elsewhere)."""
    with db.session() as s:
        value = sessions.create(s, user_id, now=datetime.now(UTC))
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    client.cookies.set(sessions.PLAIN_COOKIE, value)
    return client


@pytest.fixture
def app(settings: Settings, db: Database, shape: Shape) -> Any:
    return create_app(settings, shape=shape, database=db)


@pytest.fixture
def editor(app: Any, db: Database, shape: Shape, settings: Settings) -> Iterator[TestClient]:
    uid = add_person(db, shape, settings, "ed@example.org", "editor", "central-england")
    with signed_client(app, db, uid) as client:
        yield client


class FormReader(HTMLParser):
    """The fields of the issue's form as a browser would post them (checked boxes only)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[list[str]] = []
        self._text: list[str] | None = None
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and re.fullmatch(r"/desk/issues/[a-z0-9-]+", a.get("action", "")):
            self._inside = True
        if not self._inside:
            return
        if tag == "input" and a.get("type") in ("text", "hidden", "email"):
            self.fields.append([a["name"], a.get("value", "")])
        elif tag == "input" and a.get("type") == "checkbox" and "checked" in a:
            self.fields.append([a["name"], a["value"]])
        elif tag == "textarea":
            self._text = [a["name"], ""]
            self.fields.append(self._text)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._text is not None:
            self._text[1] = self._text[1].removeprefix("\n")
            self._text = None
        if tag == "form":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text[1] += data


def form_of(html: str) -> dict[str, str]:
    reader = FormReader()
    reader.feed(html)
    return {k: v.replace("\n", "\r\n") for k, v in reader.fields}


def post(client: TestClient, slug: str, fields: dict[str, str], action: str = "save") -> Any:
    return client.post(f"/desk/issues/{slug}", data={**fields, "action": action})


def edit_form(client: TestClient, slug: str = CE) -> dict[str, str]:
    page = client.get(f"/desk/issues/{slug}")
    assert page.status_code == 200, page.text
    return form_of(page.text)


# ---------------------------------------------------------------------------------------------
# The library


def test_issuefile_adds_items_and_events_keeping_comments(workspace: Path, shape: Shape) -> None:
    path = issue_path(workspace)
    path.write_text(
        path.read_text(encoding="utf-8").replace("items:\n", f"{NOTE}\nitems:\n", 1), encoding="utf-8"
    )
    opened = IssueFile.open(workspace, CE)
    assert opened.version == issuefile.version_of(path.read_bytes())
    event = {
        "title": "Vigil: yes # no",
        "start": "2025-12-20 18:00",
        "location": "Victoria Square",
        "regions": ["birmingham"],
    }
    v2 = issuefile.add_event(workspace, CE, event, to_item=None, expected_version=opened.version, shape=shape)
    item = {
        "id": "winter-appeal",
        "title": "Winter appeal",
        "highlight": "give a coat",
        "body": "Line one\nline two\n",
    }
    v3 = issuefile.add_item(workspace, CE, item, expected_version=v2, position=1, shape=shape)
    v4 = issuefile.add_event(
        workspace,
        CE,
        {"title": "Drop-in", "start": "2025-12-16"},
        to_item="winter-appeal",
        expected_version=v3,
        shape=shape,
    )
    text = path.read_text(encoding="utf-8")
    assert v4 == issuefile.version_of(text)
    assert NOTE in text and "calendar:   # dated entries with no section of their own" in text
    assert "# It speaks as Central England (lists/networks.toml)" in text
    loaded = load_campaign(workspace, CE, shape)
    assert [i.id for i in loaded.issue.items][:2] == ["peace-week", "winter-appeal"]
    assert loaded.issue.items[1].events[0].title == "Drop-in"
    assert loaded.issue.calendar[-1].title == "Vigil: yes # no"

    with pytest.raises(StaleIssue):
        issuefile.add_item(workspace, CE, {**item, "id": "other"}, expected_version=v3, shape=shape)
    with pytest.raises(ContentError) as bad:  # an invalid item is refused, naming its field
        issuefile.add_item(
            workspace,
            CE,
            {"id": "x", "title": "X", "highlight": "h", "regions": ["atlantis"]},
            expected_version=v4,
            shape=shape,
        )
    assert bad.value.problems[0].field == "items[5].regions[0]"
    with pytest.raises(Exception, match="already"):
        issuefile.add_item(workspace, CE, item, expected_version=v4, shape=shape)
    assert path.read_text(encoding="utf-8") == text, "nothing written by a refused change"


def test_new_issue_from_the_networks_skeleton(
    workspace: Path, shape: Shape, settings: Settings, mailer_cli: MailerCli
) -> None:
    path = issuefile.new_issue(
        workspace,
        "central-england",
        "2026-01-central-england",
        "January: news",
        date(2026, 1, 5),
        shape=shape,
        settings=settings,
    )
    text = path.read_text(encoding="utf-8")
    assert "network: central-england" in text and "The Central England Network\n" in text  # its sign-off
    assert "# Regions you can use:" in text, "the skeleton's comments are kept"
    loaded = load_campaign(workspace, "2026-01-central-england", shape)
    assert loaded.issue.title == "January: news" and loaded.issue.audience == "region:central-england"
    assert mailer_cli("campaigns", "check", "2026-01-central-england").check().exit_code == 0
    with pytest.raises(ContentError):
        issuefile.new_issue(
            workspace, "central-england", "2026-01-central-england", "Again", date(2026, 1, 5), shape=shape
        )
    with pytest.raises(UnknownName):
        issuefile.new_issue(workspace, "central-england", "../escape", "Out", date(2026, 1, 5), shape=shape)
    assert not (workspace / "escape").exists()


def test_record_edit_and_last_editor(db: Database, shape: Shape, settings: Settings) -> None:
    a = add_person(db, shape, settings, "a@example.org", "editor", "central-england")
    b = add_person(db, shape, settings, "b@example.org", "editor", "central-england")
    with db.session() as s:
        assert issuefile.last_editor(s, CE) is None
        issuefile.record_edit(s, CE, a, "1" * 64, now=datetime(2025, 12, 1, 9, tzinfo=UTC))
        issuefile.record_edit(s, CE, b, "2" * 64, now=datetime(2025, 12, 1, 10, tzinfo=UTC))
    with db.session() as s:
        assert issuefile.last_editor(s, CE) == b


# ---------------------------------------------------------------------------------------------
# Compose pages


def test_the_networks_issues_and_a_new_one(editor: TestClient, workspace: Path, db: Database) -> None:
    listed = editor.get("/desk/networks/central-england/issues")
    assert listed.status_code == 200
    assert "Central England Network Newsletter: December 2025" in listed.text and "Draft" in listed.text
    assert "Kent Network Newsletter" not in listed.text, "only the network's own issues"
    csrf = form_of(listed.text).get("csrf") or re.search(r'name="csrf" value="([^"]+)"', listed.text).group(1)  # type: ignore[union-attr]
    bad = editor.post(
        "/desk/networks/central-england/issues/new",
        data={"csrf": csrf, "title": "", "slug": "Bad Name", "date": "soon"},
    )
    assert bad.status_code == 400 and 'aria-invalid="true"' in bad.text
    done = editor.post(
        "/desk/networks/central-england/issues/new",
        data={"csrf": csrf, "title": "January 2026", "slug": "2026-01-central-england", "date": "2026-01-05"},
    )
    assert (
        done.status_code == 303
        and done.headers["location"] == "/desk/issues/2026-01-central-england?done=started"
    )
    assert issue_path(workspace, "2026-01-central-england").is_file()
    again = editor.post(
        "/desk/networks/central-england/issues/new",
        data={"csrf": csrf, "title": "Again", "slug": "2026-01-central-england", "date": "2026-01-05"},
    )
    assert again.status_code == 400 and "already exists" in again.text
    with db.session() as s:
        assert s.scalars(select(IssueEdit.slug)).all() == ["2026-01-central-england"]


def test_the_list_shows_approval_and_an_edit_voids_it(
    editor: TestClient, db: Database, shape: Shape, settings: Settings
) -> None:
    from mailer.desk import approvals

    uid = add_person(db, shape, settings, "ap@example.org", "approver", "central-england")
    with db.session() as s:
        issue = approvals.resolve(s, settings, shape, CE)
        approver = people.person(s, uid)
        assert approver is not None
        approvals.approve(s, issue, approver, seen=issue.fingerprint, now=datetime.now(UTC))
    listed = editor.get("/desk/networks/central-england/issues")
    assert re.search(r"Approved · 2025-12-01<", listed.text)
    fields = edit_form(editor)
    fields["items-0-contact"] = "Email peace@example.org."
    assert post(editor, CE, fields).status_code == 303
    listed = editor.get("/desk/networks/central-england/issues")
    assert "Edited since approval" in listed.text
    with db.session() as s:
        assert issuefile.last_editor(s, CE) == people.by_email(s, "ed@example.org").id  # type: ignore[union-attr]


@pytest.mark.slow
def test_an_issue_edited_on_the_desk_passes_check_with_comments_kept(
    editor: TestClient, workspace: Path, shape: Shape, mailer_cli: MailerCli, db: Database
) -> None:
    path = issue_path(workspace)
    path.write_text(
        path.read_text(encoding="utf-8").replace("items:\n", f"{NOTE}\nitems:\n", 1), encoding="utf-8"
    )
    fields = edit_form(editor)
    assert post(editor, CE, fields).status_code == 303
    assert NOTE in path.read_text(encoding="utf-8")

    fields = edit_form(editor)
    fields["intro"] = "Welcome to December.\r\nA second line, with: a colon.\r\n"
    fields["items-1-title"] = "Write for Rights: the Midlands"
    added = post(editor, CE, fields, "add-item")
    assert added.status_code == 303 and added.headers["location"].endswith("#items-end")
    fields = edit_form(editor)
    fields.update(
        {
            "items-4-id": "winter-appeal",
            "items-4-title": "Winter appeal",
            "items-4-highlight": "give a coat this winter",
            "items-4-body": "Coats and bedding.\r\n",
            "items-4-regions": "coventry, birmingham",
        }
    )
    assert post(editor, CE, fields, "add-event-4").status_code == 303
    fields = edit_form(editor)
    fields.update(
        {
            "items-4-events-0-title": "Coat drop-in",
            "items-4-events-0-start": "2025-12-18 10:00",
            "items-4-events-0-end": "12:00",
            "items-4-events-0-online": "yes",
        }
    )
    assert post(editor, CE, fields, "up-item-4").status_code == 303  # saves, then moves it up
    fields = edit_form(editor)
    assert post(editor, CE, fields, "add-calendar").status_code == 303
    fields = edit_form(editor)
    fields.update(
        {
            "calendar-3-title": "Leicester group social",
            "calendar-3-start": "2025-12-19 19:00",
            "calendar-3-regions": "leicester",
        }
    )
    fields["items-2-report"] = "yes"  # refugee welcome becomes a report
    assert post(editor, CE, fields).status_code == 303
    fields = edit_form(editor)
    assert post(editor, CE, fields, "remove-event-1-1").status_code == 303  # Derby's stall goes

    text = path.read_text(encoding="utf-8")
    assert NOTE in text and "# The Central England Network newsletter for December 2025" in text
    loaded = load_campaign(workspace, CE, shape)
    issue = loaded.issue
    assert [i.id for i in issue.items] == [
        "peace-week",
        "write-for-rights",
        "refugee-welcome",
        "winter-appeal",
        "regional-conference",
    ]
    assert issue.intro == "Welcome to December.\nA second line, with: a colon."
    assert issue.items[1].title == "Write for Rights: the Midlands"
    assert [e.title for e in issue.items[1].events] == [
        "Birmingham Group Write for Rights card-writing evening"
    ]
    assert issue.items[2].highlight is None
    assert issue.items[3].regions == ["coventry", "birmingham"] and issue.items[3].events[0].online
    assert issue.calendar[-1].regions == ["leicester"]
    result = mailer_cli("campaigns", "check", CE)
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output
    with db.session() as s:
        edits = s.scalars(select(IssueEdit).order_by(IssueEdit.id)).all()
        assert edits[-1].content_hash == issuefile.version_of(path.read_bytes())
        assert {e.user_id for e in edits} == {people.by_email(s, "ed@example.org").id}  # type: ignore[union-attr]
        assert "issue.save" in s.scalars(select(AuditEntry.action)).all()


def test_removing_every_item_and_adding_one_back_writes_yaml_that_loads(
    editor: TestClient, workspace: Path, shape: Shape
) -> None:
    path = issue_path(workspace)
    text = path.read_text(encoding="utf-8").replace("items:\n", "items:  # the sections, in order\n", 1)
    path.write_text(text.replace("calendar:", "# the dated entries\ncalendar:", 1), encoding="utf-8")
    for left in range(len(load_campaign(workspace, CE, shape).issue.items), 0, -1):
        confirmed = {**edit_form(editor), "confirmed": "yes"}  # as the confirmation page posts it
        assert post(editor, CE, confirmed, "remove-item-0").status_code == 303
        problems: list[Any] = []
        data, _ = read_yaml(path.read_text(encoding="utf-8"), path, problems)
        assert problems == [] and len(data["items"]) == left - 1, path.read_text(encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert "items: [] # the sections, in order\n" in text and "# the dated entries\ncalendar:" in text
    assert post(editor, CE, edit_form(editor), "add-item").status_code == 303
    fields = edit_form(editor)
    fields.update({"items-0-id": "winter-appeal", "items-0-title": "Winter appeal"})
    fields.update({"items-0-highlight": "give a coat this winter", "items-0-body": "Coats and bedding.\r\n"})
    assert post(editor, CE, fields).status_code == 303
    text = path.read_text(encoding="utf-8")
    assert re.search(r"\nitems: +# the sections, in order\n  - id: winter-appeal\n", text), text
    assert "# the dated entries\ncalendar:" in text
    assert [i.id for i in load_campaign(workspace, CE, shape).issue.items] == ["winter-appeal"]


def test_a_file_changed_on_disk_is_not_overwritten(editor: TestClient, workspace: Path, db: Database) -> None:
    path = issue_path(workspace)
    fields = edit_form(editor)  # the desk has it open
    on_disk = path.read_text(encoding="utf-8").replace(
        "Peace Week: 8 to 14 December", "Peace Week (edited on disk)"
    )
    path.write_text(on_disk, encoding="utf-8")
    fields["items-0-title"] = "Peace Week (edited on the desk)"
    refused = post(editor, CE, fields)
    assert refused.status_code == 409
    assert "changed since you opened it" in refused.text and "Nothing was overwritten" in refused.text
    assert "Peace Week (edited on the desk)" in refused.text, "the editor's unsaved change is shown"
    assert path.read_text(encoding="utf-8") == on_disk
    with db.session() as s:
        assert s.scalars(select(IssueEdit)).all() == []
    again = form_of(refused.text)  # the page is the file as it is now: saving that works
    again["items-0-title"] = "Peace Week (edited on the desk)"
    assert post(editor, CE, again).status_code == 303
    assert "Peace Week (edited on the desk)" in path.read_text(encoding="utf-8")


def test_check_problems_are_shown_at_their_fields(editor: TestClient, workspace: Path) -> None:
    fields = edit_form(editor)
    fields["items-1-events-0-start"] = "next tuesday"
    fields["items-0-regions"] = "birmingam"
    fields["items-3-highlight"] = ""
    saved = post(editor, CE, fields)
    assert saved.status_code == 303, "a save with problems is written: the editor sees them"
    page = editor.get(saved.headers["location"])
    for name in ("items-1-events-0-start", "items-0-regions", "items-3-highlight"):
        found = re.search(rf'<(input|textarea) [^>]*id="{name}"[^>]*>', page.text)
        assert found and 'aria-invalid="true"' in found.group(0), name
        assert f'id="{name}-msg1"' in page.text
    assert "Not a date or a date and time" in page.text and "did you mean &#39;birmingham&#39;" in page.text
    assert '<a href="#items-1-events-0-start">' in page.text


def test_roles(app: Any, db: Database, shape: Shape, settings: Settings, workspace: Path) -> None:
    canterbury = add_person(db, shape, settings, "c@example.org", "contributor", region="canterbury")
    kent = add_person(db, shape, settings, "k@example.org", "editor", "kent")
    approver = add_person(db, shape, settings, "ap@example.org", "approver", "central-england")
    before = issue_path(workspace).read_text(encoding="utf-8")
    for uid in (canterbury, kent):
        with signed_client(app, db, uid) as client:
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/desk/").text).group(1)  # type: ignore[union-attr]
            for url in (
                "/desk/networks/central-england/issues",
                f"/desk/issues/{CE}",
                f"/desk/issues/{CE}/preview",
                f"/desk/issues/{CE}/preview/frame?region=birmingham",
            ):
                assert client.get(url).status_code == 403, url
            assert client.post(f"/desk/issues/{CE}", data={"csrf": csrf, "title": "Mine"}).status_code == 403
            new = {"csrf": csrf, "title": "X", "slug": "2026-02-x", "date": "2026-02-01"}
            assert client.post("/desk/networks/central-england/issues/new", data=new).status_code == 403
    with signed_client(app, db, approver) as client:
        assert client.get("/desk/networks/central-england/issues").status_code == 200
        assert client.get(f"/desk/issues/{CE}/preview").status_code == 200, (
            "an approver looks before approving"
        )
        assert client.get(f"/desk/issues/{CE}").status_code == 403
    editor = add_person(db, shape, settings, "ed@example.org", "editor", "central-england")
    with signed_client(app, db, editor) as client:
        fields = edit_form(client)
        fields.pop("csrf")
        assert post(client, CE, fields).status_code == 403, "no CSRF value: refused"
    with TestClient(app, base_url=BASE, follow_redirects=False) as nobody:
        assert nobody.get(f"/desk/issues/{CE}").status_code == 303
    assert issue_path(workspace).read_text(encoding="utf-8") == before


# ---------------------------------------------------------------------------------------------
# Previews


@pytest.fixture
def members(db: Database, shape: Shape, workspace: Path) -> None:
    with db.session() as s:
        import_csv(s, workspace / "lists" / "members.csv", shape, options=Options(first_name_from_name=True))


def test_preview_birmingham_and_derby(editor: TestClient, members: None) -> None:
    bham = editor.get(f"/desk/issues/{CE}/preview?region=birmingham&interest=write-for-rights")
    assert bham.status_code == 200
    assert "frame-src 'self'" in bham.headers["content-security-policy"]
    assert re.search(
        r'<iframe sandbox="" src="/desk/issues/2025-12-central-england/preview/frame\?[^"]*region=birmingham',
        bham.text,
    )
    assert 'width="375"' in bham.text and "Show at desktop width" in bham.text
    said = " ".join(bham.text.split())  # the text copy's lines are wrapped
    assert "Birmingham Group Write for Rights card-writing evening" in said
    assert "Derby Group Write for Rights stall" not in said
    derby = editor.get(f"/desk/issues/{CE}/preview?region=derby&interest=write-for-rights&width=desktop")
    assert 'width="640"' in derby.text
    said = " ".join(derby.text.split())
    assert "Derby Group Write for Rights stall" in said
    assert "Birmingham Group Write for Rights card-writing evening" not in said

    frame = editor.get(f"/desk/issues/{CE}/preview/frame?region=birmingham&interest=write-for-rights")
    assert frame.status_code == 200
    policy = frame.headers["content-security-policy"]
    assert "sandbox" in policy and "script-src" not in policy and policy.startswith("default-src 'none'")
    assert "frame-ancestors 'self'" in policy
    assert "Birmingham Group Write for Rights" in frame.text and "Derby Group Write" not in frame.text

    table = re.findall(r'<td><a href="\?([^"]+)#copy">[^<]+</a></td><td class="n">(\d+)</td>', bham.text)
    assert len(table) >= 2 and sum(int(n) for _, n in table) == int(
        re.search(r"(\d+) members? in the audience", bham.text).group(1)
    )  # type: ignore[union-attr]


def test_preview_as_a_member(editor: TestClient, members: None, workspace: Path, db: Database) -> None:
    from mailer.models import Member, Region

    with db.session() as s:
        ours = s.scalars(select(Member).join(Region).where(Region.slug == "derby")).first()
        theirs = s.scalars(select(Member).join(Region).where(Region.slug == "canterbury")).first()
        assert ours is not None and theirs is not None
        ours_email, theirs_email, name = ours.email, theirs.email, ours.name
    # The address is posted, never put in a URL (docs/data.md, Audit): the page that shows them is
    # named by a signed token of their id, and the look-up is in the audit log.
    form = editor.get(f"/desk/issues/{CE}/preview")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    posted = editor.post(f"/desk/issues/{CE}/preview", data={"csrf": csrf, "member": ours_email.upper()})
    location = posted.headers["location"]
    assert posted.status_code == 303 and ours_email not in location and "who=" in location
    page = editor.get(location)
    assert page.status_code == 200 and ours_email in page.text
    if name:
        frame = editor.get(location.replace("/preview?", "/preview/frame?"))
        assert name.split()[0] in frame.text
    assert ours_email not in editor.get(f"/desk/issues/{CE}/preview", params={"member": ours_email}).text
    other = editor.post(f"/desk/issues/{CE}/preview", data={"csrf": csrf, "member": theirs_email})
    assert other.status_code == 400 and "No member of this network" in other.text
    assert editor.get(f"/desk/issues/{CE}/preview?who=abc").status_code == 400
    with db.session() as s:
        from mailer.models import AuditEntry

        looked = s.scalars(select(AuditEntry.object).where(AuditEntry.action == "desk.member-lookup")).all()
    assert looked == [ours_email, theirs_email]


# ---------------------------------------------------------------------------------------------
# In Chromium, at 375 and 1280 px


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


@pytest.mark.browser
@pytest.mark.parametrize("width", list(WIDTHS))
def test_compose_and_preview_pages_in_a_browser(
    width: str,
    chromium: Browser,
    settings: Settings,
    db: Database,
    shape: Shape,
    members: None,
    tmp_path: Path,
) -> None:
    from support.axe import check_axe

    port = free_port()
    configured = replace(settings, base_url=f"http://127.0.0.1:{port}")
    uid = add_person(db, shape, configured, "ed@example.org", "editor", "central-england")
    with db.session() as s:
        value = sessions.create(s, uid, now=datetime.now(UTC))
    shots = tmp_path / "shots"
    shots.mkdir()
    w, h = WIDTHS[width]
    with live_server(create_app(configured, shape=shape, database=db), port):
        context = chromium.new_context(viewport={"width": w, "height": h}, java_script_enabled=False)
        context.add_cookies([{"name": sessions.PLAIN_COOKIE, "value": value, "url": configured.base_url}])
        page: Page = context.new_page()
        page.width_name = width  # type: ignore[attr-defined]

        def check(name: str) -> None:
            check_web_page(page, shots, name)
            check_axe(page, name=name)

        page.goto(configured.base_url + "/desk/networks/central-england/issues")
        check("desk-issues")
        page.get_by_role("link", name="Central England Network Newsletter: December 2025", exact=True).click()
        page.get_by_role("heading", name="Check").wait_for()
        check("desk-issue")
        page.get_by_label("Title", exact=True).first.fill("Central England: December 2025")
        page.get_by_role("button", name="Save").first.click()
        page.get_by_text("Saved.").wait_for()
        check("desk-issue-saved")
        page.locator("section.item summary").first.click()  # items are folded under their titles
        links = page.get_by_role("group", name="Links of item 1")
        links.get_by_label("Link 1: text").fill("Book your ticket")
        links.get_by_label("Link 1: address").fill("javascript:alert(1)")
        image = page.get_by_role("group", name="Image of item 1")
        image.get_by_label("Image address or file").fill("https://www.example.org/poster.png")
        image.get_by_label("Width").fill("-5")
        page.get_by_role("button", name="Save").first.click()
        page.get_by_text("Not saved: a link or an image is not right").wait_for()
        check("desk-issue-refused")  # the problems at their fields, the form as posted
        links.get_by_label("Link 1: address").fill("https://www.example.org/tickets")
        image.get_by_label("Alt text").fill("The Peace Week poster")
        image.get_by_label("Width").fill("480")
        page.get_by_role("button", name="Save").first.click()
        page.get_by_text("Saved.").wait_for()
        page.locator("section.item summary").first.click()
        assert links.get_by_label("Link 1: text").input_value() == "Book your ticket"
        assert image.get_by_label("Width").input_value() == "480"
        page.goto(configured.base_url + f"/desk/issues/{CE}/preview")
        page.get_by_label("Region").select_option("birmingham")
        page.get_by_role("button", name="Show this copy").click()
        page.get_by_role("heading", name="As HTML").wait_for()
        frame = page.frame_locator("iframe")
        frame.get_by_text("Birmingham Group monthly meeting").first.wait_for()
        check("desk-preview")
        context.close()


# ---------------------------------------------------------------------------------------------
# An item's links and image


def test_links_and_an_image_added_and_removed_on_the_desk(
    editor: TestClient, workspace: Path, shape: Shape, mailer_cli: MailerCli
) -> None:
    path = issue_path(workspace)
    kept = "    # Peace Week's events come from the regional office: ask before changing them.\n"
    path.write_text(
        path.read_text(encoding="utf-8")
        .replace("to add your event.\n", "to add your event.  # the group's own address\n", 1)
        .replace("    events:\n", kept + "    events:\n", 1),
        encoding="utf-8",
    )
    (path.parent / "poster.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    page = editor.get(f"/desk/issues/{CE}")
    for name in ("items-0-links-0-text", "items-0-links-1-url", "items-0-image-src", "items-0-image-width"):
        assert re.search(rf'<label for="{name}">', page.text), name
    assert "items-0-links-2-text" not in page.text, "two empty rows for an item without links"
    fields = form_of(page.text)
    fields.update(
        {
            "items-0-links-0-text": "Book your ticket",
            "items-0-links-0-url": "https://www.example.org/peace-week/tickets",
            "items-0-links-1-text": "Peace Week: the programme",
            "items-0-links-1-url": "https://www.example.org/peace-week/programme",
            "items-0-image-src": "poster.png",
            "items-0-image-alt": "The Peace Week poster: a dove over the Birmingham skyline",
            "items-0-image-width": "480",
        }
    )
    assert post(editor, CE, fields).status_code == 303
    text = path.read_text(encoding="utf-8")
    assert "# the group's own address" in text and kept in text and NOTE not in text
    assert "# It speaks as Central England (lists/networks.toml)" in text
    item = text.split("  - id: peace-week\n", 1)[1].split("\n  - id: ", 1)[0]
    keys = re.findall(r"^    ([a-z_]+):", item, re.M)
    assert keys == ["title", "highlight", "body", "links", "contact", "image", "events"], keys
    assert text.count("links:") == 1 and text.count("image:") == 1, "no empty links or image elsewhere"
    issue = load_campaign(workspace, CE, shape).issue
    assert [(link.text, link.url) for link in issue.items[0].links] == [
        ("Book your ticket", "https://www.example.org/peace-week/tickets"),
        ("Peace Week: the programme", "https://www.example.org/peace-week/programme"),
    ]
    image = issue.items[0].image
    assert image is not None and (image.src, image.width) == ("poster.png", 480)
    assert mailer_cli("campaigns", "check", CE).check().exit_code == 0

    again = editor.get(f"/desk/issues/{CE}")
    assert 'value="Book your ticket"' in again.text and 'value="poster.png"' in again.text
    assert "items-0-links-3-url" in again.text and "items-0-links-4-url" not in again.text
    frame = editor.get(f"/desk/issues/{CE}/preview/frame?region=birmingham")
    assert frame.status_code == 200
    assert re.search(
        r'<a href="https://www.example.org/peace-week/tickets"[^>]*>Book your ticket</a>', frame.text
    )
    assert "https://www.example.org/peace-week/programme" in frame.text
    assert re.search(
        rf'<img [^>]*alt="The Peace Week poster: a dove[^"]*"[^>]*src="[^"]*/files/{CE}/poster.png"',
        frame.text,
    ) or re.search(rf'<img [^>]*src="[^"]*/files/{CE}/poster.png"[^>]*alt="The Peace Week poster', frame.text)
    preview = " ".join(editor.get(f"/desk/issues/{CE}/preview?region=birmingham").text.split())
    assert "Book your ticket" in preview and "[image: The Peace Week poster" in preview, "the text copy"

    fields = form_of(again.text)
    fields.update({"items-0-links-0-text": "", "items-0-links-0-url": ""})  # the first link goes
    fields["items-0-image-width"] = ""
    assert post(editor, CE, fields).status_code == 303
    issue = load_campaign(workspace, CE, shape).issue
    assert [link.text for link in issue.items[0].links] == ["Peace Week: the programme"]
    assert issue.items[0].image is not None and issue.items[0].image.width is None
    text = path.read_text(encoding="utf-8")
    assert "# the group's own address" in text and kept in text and "width:" not in text

    fields = edit_form(editor)
    fields.update({"items-0-links-0-text": "", "items-0-links-0-url": ""})
    fields.update({"items-0-image-src": "", "items-0-image-alt": ""})
    assert post(editor, CE, fields).status_code == 303
    text = path.read_text(encoding="utf-8")
    assert "links:" not in text and "image:" not in text, "none written: no empty links: []"
    assert "# the group's own address" in text and kept in text


def test_a_wrong_link_or_image_is_shown_at_its_field_and_nothing_is_written(
    editor: TestClient, workspace: Path
) -> None:
    path = issue_path(workspace)
    before = path.read_bytes()
    fields = edit_form(editor)
    fields.update(
        {
            "items-1-title": "Changed, but not saved",
            "items-0-links-0-text": "Book your ticket",
            "items-0-links-0-url": "javascript:alert(1)",
            "items-0-links-1-text": "",
            "items-0-links-1-url": "https://www.example.org/no-text",
            "items-2-image-src": "../../etc/passwd",
            "items-2-image-alt": "   ",
            "items-2-image-width": "-5",
        }
    )
    refused = post(editor, CE, fields)
    assert refused.status_code == 400 and "Not saved: a link or an image is not right" in refused.text
    assert path.read_bytes() == before
    for name in (
        "items-0-links-0-url",
        "items-0-links-1-text",
        "items-2-image-width",
    ):
        found = re.search(rf'<input [^>]*id="{name}"[^>]*>', refused.text)
        assert found and 'aria-invalid="true"' in found.group(0), name
        assert f'id="{name}-msg1"' in refused.text and f'<a href="#{name}">' in refused.text, name
    assert "Not a link: &#39;javascript:alert(1)&#39;" in refused.text
    assert 'value="Changed, but not saved"' in refused.text, "the form comes back as posted"
    fields["items-2-image-width"] = "300"
    refused = post(editor, CE, fields)
    assert refused.status_code == 400 and "Not an image address: &#39;../../etc/passwd&#39;" in refused.text
    fields.update({"items-2-image-src": "poster.png", "items-2-image-alt": "A poster"})
    refused = post(editor, CE, fields)
    assert "Image file &#39;poster.png&#39; not found" in refused.text, "a file in the campaign's folder"
    fields["items-2-image-alt"] = " \t "
    (path.parent / "poster.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    refused = post(editor, CE, fields)
    assert refused.status_code == 400 and "The image has no alt text" in refused.text
    assert path.read_bytes() == before


def test_links_kept_by_hand_keep_their_comments_and_odd_ones_are_left_alone(
    editor: TestClient, workspace: Path, shape: Shape
) -> None:
    path = issue_path(workspace)
    links = (
        "    links:\n"
        "      - text: Old programme\n"
        "        url: htps://www.example.org/old\n"
        "      - text: Tickets\n"
        "        url: https://www.example.org/tickets  # the box office's own page\n"
    )
    odd = "    links: https://www.example.org/not-a-list\n    image: poster.png\n"
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "    contact: Email peace-week@example.org", links + "    contact: Email peace-week@example.org", 1
    )
    text = text.replace(
        "    interests: [write-for-rights, events]\n", odd + "    interests: [write-for-rights, events]\n", 1
    )
    path.write_text(text, encoding="utf-8")

    page = editor.get(f"/desk/issues/{CE}")
    assert "Its links are not a list of text and address: edit them in the file." in page.text
    assert "Its image is not a set of fields" in page.text
    assert "items-1-links-0-text" not in page.text and "items-1-image-src" not in page.text
    assert re.search(r'id="items-1-links-msg1">Error: Input should be a valid list', page.text)
    assert re.search(r'id="items-1-image-msg1">Error: Input should be a valid dictionary', page.text)
    fields = form_of(page.text)
    assert fields["items-0-links-1-text"] == "Tickets" and fields["items-0-links-3-url"] == ""
    fields["items-0-title"] = "Peace Week"
    saved = post(editor, CE, fields)
    assert saved.status_code == 303, "a wrong link as the file has it does not refuse other changes"
    page = editor.get(saved.headers["location"])
    assert re.search(r'id="items-0-links-0-url-msg1">Error: Not a link', page.text), "check shows it"
    fields = form_of(page.text)
    fields.update({"items-0-links-0-text": "", "items-0-links-0-url": ""})
    fields.update({"items-0-links-2-text": "Programme", "items-0-links-2-url": "https://www.example.org/new"})
    assert post(editor, CE, fields).status_code == 303
    text = path.read_text(encoding="utf-8")
    assert "url: https://www.example.org/tickets  # the box office's own page\n" in text, "left as it was"
    assert "Old programme" not in text and odd in text, "the odd ones are left for the file"
    peace = text.split("  - id: peace-week\n", 1)[1].split("\n  - id: ", 1)[0]
    assert peace.index("Tickets") < peace.index("Programme") < peace.index("contact:")
