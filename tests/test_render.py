"""Rendering: golden files of the seed issue, HTML and text rules, safety, templates, previews.

Golden files live in tests/golden/<slug>/<variant>.{txt,html}; their input is a copy of the seed
issue in tests/fixtures/campaigns/<slug>/, not the demo's campaign. After a deliberate change to the
templates or that copy, rewrite them and review the diff:

    MAILER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render.py

Without that variable a missing or different golden file fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import TEST_SECRET
from sqlalchemy import select
from support.cli_runner import MailerCli
from support.hashes import address_hash
from support.rendering import Colours, check_golden, contrast
from support.seed import SEED_HIGHLIGHTS

from mailer.audience.shape import Shape, load_shape
from mailer.compose import compose, compose_all
from mailer.db import Database
from mailer.errors import RenderError
from mailer.identity import Identity
from mailer.issue import Alert, Item, Link, LoadedIssue, Newsletter, load_issue
from mailer.models import Interest, Member, MemberInterest, Region, Suppression
from mailer.preview import PreviewRequest, preview, watch, watched_files
from mailer.render import RenderedVariant, Renderer, long_lines, markdown, markdown_text, said_already
from mailer.settings import PACKAGED_TEMPLATES, Settings
from mailer.slots import SLOTS, fill_slots

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SEED_SLUG = "2025-11-kent-network"
# The golden files' input: a copy of the demo's newsletter, so that editing the demo leaves them alone.
SEED_PATH = Path(__file__).resolve().parent / "fixtures" / "campaigns" / SEED_SLUG / "issue.yaml"
ALERT_PATH = REPO / "campaigns" / "2025-11-echr-alert" / "issue.yaml"

VARIANTS = {
    # golden name: (region, interests)
    "kent-no-interests": ("kent", frozenset[str]()),
    "maidstone-refugees": ("maidstone-medway-swale", frozenset({"refugees"})),
    "canterbury-schools": ("canterbury", frozenset({"schools"})),
}

# The seed's nine calendar entries, sorted by date and time, as the plain text writes them.
SEED_CALENDAR = [
    "Tuesday 18 November at 7:30pm: Kent Network speaker meeting with Steve Wilkins, Kent Stand Up To "
    "Racism. Online. Email speakers@example.org for a link.",
    "Saturday 22 November at noon: Human Rights Solidarity Stand Up at Trafalgar Square to mark the "
    "International Day for the Elimination of Violence Against Women. Trafalgar Square, London. Contact "
    "Ceyda Kemanci at stand-up@example.org.",
    "Tuesday 25 November from 6:00pm to 7:30pm: Online training session on Direct Action. Online.",
    "Tuesday 25 November at 6:30pm: London launch of Student Action Network’s Defend Dissent Campaign. "
    "Sheikh Zayed Theatre, London School of Economics, 54 Lincoln's Inn Fields, London, WC2A 3LJ.",
    "Thursday 27 November at 6:30pm: Online launch of Student Action Network’s Defend Dissent Campaign. "
    "On Zoom – details after you register.",
    "Saturday 29 November: Write for Rights stall at Faversham market. Email faversham-stall@example.org.",
    "Saturday 29 November at 10:45am: Soroptimist International Canterbury march to raise awareness of "
    "domestic violence against women and girls. Starting at The Buttermarket, Canterbury.",
    "Monday 1 December from 7:30pm to 9:00pm: Maidstone, Medway and Swale Group meeting. Maidstone "
    "Community Support Centre, 39-48 Marsham Street, Maidstone, ME14 1HH, and online. Email "
    "mmands-group@example.org.",
    "Wednesday 3 December from 1:00pm to 3:00pm: Monthly Guantanamo vigil. Outside the Houses of "
    "Parliament, London. Email vigil@example.org.",
]


@pytest.fixture
def golden_settings(tmp_path: Path) -> Settings:
    """Fixed settings for golden output: the packaged templates and a fixed base URL."""
    root = tmp_path / "golden-ws"
    (root / "templates").mkdir(parents=True)
    return Settings(workspace=root, base_url="https://kent.example.org", organisation="Kent Network")


@pytest.fixture
def seed(shape: Shape) -> LoadedIssue:
    return load_issue(SEED_PATH, shape)


@pytest.fixture
def renderer(golden_settings: Settings) -> Renderer:
    """The seed speaks as the demo's Kent Network (lists/networks.toml: its footer's postal
    address, charity line and privacy notice)."""
    kent = load_shape(Path(__file__).resolve().parent.parent / "lists").networks["kent"]
    return Renderer(golden_settings, Identity(kent))


def render_named(renderer: Renderer, seed: LoadedIssue, shape: Shape, name: str) -> RenderedVariant:
    region, interests = VARIANTS[name]
    return renderer.render(compose(seed.issue, shape, region, interests), seed)


# ---------------------------------------------------------------------------------------------
# Golden files


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_golden_text_and_html(renderer: Renderer, seed: LoadedIssue, shape: Shape, name: str) -> None:
    rendered = render_named(renderer, seed, shape, name)
    check_golden(GOLDEN / SEED_SLUG / f"{name}.txt", rendered.text)
    check_golden(GOLDEN / SEED_SLUG / f"{name}.html", rendered.html)


def test_golden_variants_differ_as_targeted(renderer: Renderer, seed: LoadedIssue, shape: Shape) -> None:
    kent = render_named(renderer, seed, shape, "kent-no-interests").text
    medway = render_named(renderer, seed, shape, "maidstone-refugees").text
    schools = render_named(renderer, seed, shape, "canterbury-schools").text
    assert "\nRefugees\n--------\n" in medway and "\nRefugees\n" not in kent
    assert "Write for Rights stall at Faversham market" in medway
    calendar = "\nCalendar\n--------\n"
    assert "Faversham market" not in kent and "Faversham market" not in schools.split(calendar)[1]
    assert "\nWorking with schools\n" in schools and "\nWorking with schools\n" not in medway
    assert "Soroptimist International Canterbury march" in schools.split(calendar)[1]


# ---------------------------------------------------------------------------------------------
# The full issue's text: every highlight and every calendar entry of the seed


def section(text: str, start: str, end_marker: str) -> list[str]:
    lines = text.splitlines()
    i = lines.index(start)
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(end_marker))
    return lines[i + 1 : j]


#: The labels of an entry's links, which name its event ("Say if you are coming to …", "Add … to
#: your calendar").
LINK_LABELS = ("  Say if you are coming to ", "  Add ")


def bullets(lines: list[str]) -> list[str]:
    """ "· " lines joined with their indented continuation lines (stopping at link lines)."""
    out: list[str] = []
    open_ = False
    for line in lines:
        if line.startswith("· "):
            out.append(line[2:])
            open_ = True
        elif line.startswith(LINK_LABELS):
            open_ = False
        elif open_ and line.startswith("  ") and not line.rstrip().endswith(":") and "://" not in line:
            out[-1] += " " + line.strip()
        else:
            open_ = False
    return out


def test_full_issue_text_has_all_highlights_and_the_calendar(renderer: Renderer, seed: LoadedIssue) -> None:
    text = renderer.render(compose_all(seed.issue), seed).text
    title = "Amnesty International Kent Network Newsletter: November 2025"
    assert text.startswith(f"{title}\n{'=' * len(title)}\n")
    highlights = bullets(section(text, "This month you can:", "Next speaker meeting"))
    assert highlights == SEED_HIGHLIGHTS
    calendar = bullets(section(text, "Calendar", "All the best"))
    assert calendar == SEED_CALENDAR
    assert "Add to calendar" not in text  # each link names its event
    assert text.count("\n  Add ") == 9 and text.count("\n  Say if you are coming to ") == 9
    for title in ("\nSouth East regional gathering: 18 October\n", "\nProtect the Protest\n"):
        assert title in text  # reports: sections with no highlight
    assert "All the best\nGraham\n" in text


# ---------------------------------------------------------------------------------------------
# Plain-text rules


def all_rendered(renderer: Renderer, seed: LoadedIssue, shape: Shape) -> list[RenderedVariant]:
    alert = load_issue(ALERT_PATH, shape)
    out = [render_named(renderer, seed, shape, name) for name in VARIANTS]
    out.append(renderer.render(compose_all(seed.issue), seed))
    out.append(renderer.render(compose_all(alert.issue), alert))
    return out


def test_text_lines_at_most_78_except_lone_urls(renderer: Renderer, seed: LoadedIssue, shape: Shape) -> None:
    for rendered in all_rendered(renderer, seed, shape):
        assert long_lines(rendered.text) == []
        for line in rendered.text.splitlines():
            assert len(line) <= 78 or re.fullmatch(r" *(https?|mailto):\S+", line), line


def test_long_lines_rule_and_its_exception() -> None:
    url = "https://www.example.org/" + "a" * 90
    assert long_lines(f"short\n{url}\n") == []
    assert long_lines("word " * 20) == ["word " * 20]
    assert long_lines(f"see {url}") == [f"see {url}"]
    md = markdown()
    body = markdown_text(md, f"Read [the long report]({url}) and then {url} too, as ever, once more.")
    assert body.refs == [url]
    for line in body.text.splitlines():
        assert len(line) <= 78 or line == url


def test_text_keeps_every_link(renderer: Renderer, seed: LoadedIssue) -> None:
    text = renderer.render(compose_all(seed.issue), seed).text
    urls = set(re.findall(r"https?://[^\s)\]]+", SEED_PATH.read_text(encoding="utf-8")))
    assert isinstance(seed.issue, Newsletter)
    urls -= {item.image.src for item in seed.issue.items if item.image}  # images are not links
    assert urls, "the seed issue has links"
    for url in urls:
        assert url in text, f"{url} lost from the plain text"


def test_markdown_to_text_lists_links_and_bullets() -> None:
    md = markdown()
    body = markdown_text(
        md,
        "Intro with [a link](https://example.org/a) and <https://example.org/b> and x@example.org:\n\n"
        "- one\n- two [more](https://example.org/c)\n\n1. first\n2. second\n",
    )
    assert body.refs == ["https://example.org/a", "https://example.org/c"]
    assert body.text == (
        "Intro with a link [1] and https://example.org/b and x@example.org:\n\n"
        "· one\n· two more [2]\n\n1. first\n2. second"
    )


def test_markdown_headings_keep_their_case() -> None:
    body = markdown_text(markdown(), "## Links with MPs\n\nWrite to your MP.")
    assert body.text == "Links with MPs\n~~~~~~~~~~~~~~\n\nWrite to your MP."


def section_text(text: str, title: str) -> str:
    """The text of the section headed ``title`` (its underline and what follows, to the next heading)."""
    start = text.index(f"\n{title}\n") + len(title) + 2
    lines = text[start:].splitlines()
    end = next(i for i in range(2, len(lines)) if re.fullmatch(r"-{3,}", lines[i]))
    return "\n".join(lines[: end - 1])


def test_text_titles_keep_the_editors_case_under_a_rule(
    renderer: Renderer, seed: LoadedIssue, shape: Shape
) -> None:
    """'Links with MPs' became 'LINKS WITH MPS': the text part upper-cased every title."""
    text = render_named(renderer, seed, shape, "kent-no-interests").text
    mps = renderer.render(compose(seed.issue, shape, "kent", frozenset({"mp-advocacy"})), seed).text
    assert "\nLinks with MPs\n--------------\n" in mps and "MPS" not in mps
    title = "Amnesty International Kent Network Newsletter: November 2025"
    assert text.startswith(f"{title}\n{'=' * len(title)}\n\n")
    assert "\nHighlights\n----------\n" in text and "\nCalendar\n--------\n" in text
    # A title longer than a line wraps, and its rule is as long as its longest line.
    canterbury = render_named(renderer, seed, shape, "canterbury-schools").text
    assert (
        "\nOur friends’ events: march with Soroptimist International Canterbury, 29\nNovember\n"
        + "-" * 72
        + "\n"
    ) in canterbury
    alert = load_issue(ALERT_PATH, shape)
    assert isinstance(alert.issue, Alert)
    alert_text = renderer.render(compose_all(alert.issue), alert).text
    assert alert_text.startswith(f"{alert.issue.title}\n{'=' * len(alert.issue.title)}\n")
    assert alert.issue.button.text in alert_text  # the button's words in its case, not upper-cased


def test_text_calendar_links_stay_indented_under_their_entry(
    renderer: Renderer, seed: LoadedIssue, shape: Shape
) -> None:
    for rendered in all_rendered(renderer, seed, shape):
        lines = rendered.text.splitlines()
        for i, line in enumerate(lines):
            if line.strip() in ("Add to calendar:", "Register for the direct action training:"):
                assert line.startswith("  ") and lines[i + 1].startswith("  https://"), lines[i : i + 2]
        assert not [line for line in lines if line.startswith("https://") and "/calendar/event/" in line]


def test_text_sections_carry_their_date_lines_and_one_contact_line(
    renderer: Renderer, seed: LoadedIssue, shape: Shape
) -> None:
    text = renderer.render(compose_all(seed.issue), seed).text
    speaker = section_text(text, "Next speaker meeting: Stand Up to Racism: 18 November")
    assert "\n· Tuesday 18 November at 7:30pm, online\n" in speaker
    assert speaker.count("Email speakers@example.org for a link.") == 1
    dissent = section_text(text, "Student Action Network: Defend Dissent")
    assert (
        "· Tuesday 25 November at 6:30pm, Sheikh Zayed Theatre, London School of\n"
        "  Economics, 54 Lincoln's Inn Fields, London, WC2A 3LJ\n"
        "  Book your ticket for the London launch:\n"
        "  https://www.amnesty.org.uk/events/defend-dissent-london-launch\n"
    ) in dissent
    assert "· Thursday 27 November at 6:30pm, On Zoom – details after you register\n" in dissent
    # The same dates as the HTML shows under the section.
    html = renderer.render(compose_all(seed.issue), seed).html
    assert "<strong>Tuesday 18 November at 7:30pm</strong>, online" in html
    # A booking link the body already lists is not printed again under its date.
    training = section_text(text, "Training: direct action")
    assert training.count("https://www.amnesty.org.uk/events/direct-action-training") == 1
    # The contact line is printed once: not when the body already gives it.
    stand_up = section_text(text, "Our friends’ events: Stand Up at Trafalgar Square, 22 November")
    assert stand_up.count("stand-up@example.org") == 1
    schools = section_text(text, "Working with schools")
    assert schools.count("schools-team@example.org") == 1
    assert "Email faversham-stall@example.org for details of the Faversham event." in text
    assert said_already("Email a@example.org.", "write to a@example.org today")
    assert not said_already("Email a@example.org or b@example.org.", "write to a@example.org")
    assert said_already("Ask at the stall.", "Just ask at the  stall on Saturday.")
    assert not said_already("Ask at the stall.", "Come to the stall.")


def test_html_sections_print_their_contact_line_once(renderer: Renderer, seed: LoadedIssue) -> None:
    """As the text part does: a section whose body gives its contact already does not repeat it."""
    html = renderer.render(compose_all(seed.issue), seed).html

    def section(item_id: str) -> str:
        start = html.index(f'<h2 id="item-{item_id}">')
        return html[start : html.index("</div>", start)]

    for item in seed.issue.items:
        if not item.contact.strip():
            continue
        body = section(item.id)
        shown = re.findall(r"<p>[^<]*(?:<a [^>]*>[^<]*</a>[^<]*)*</p>", body)
        contact_paragraphs = [p for p in shown if re.sub(r"<[^>]+>", "", p).strip() in item.contact]
        said = said_already(item.contact, item.body + " " + " ".join(f"{x.text} {x.url}" for x in item.links))
        assert len(contact_paragraphs) == (0 if said else 1), (item.id, contact_paragraphs)
    speaker = section("speaker-meeting")
    assert speaker.count(">speakers@example.org</a>") == 1


PEACE_WEEK = """
kind: newsletter
title: Peace
subject: Peace
date: 2025-11-17
audience: region:kent
items:
  - id: peace-week
    title: Peace Week
    highlight: join Peace Week
    body: A week of vigils and talks.
    events:
      - title: Peace Week
        start: 2025-12-08
        end: 2025-12-14
        location: Canterbury
calendar:
  - {title: Winter gathering, start: 2025-11-30, end: 2025-12-02}
  - {title: New Year peace walk, start: 2025-12-31, end: 2026-01-02}
  - {title: Vigil, start: 2025-12-10 18:00}
"""


def test_an_event_over_several_days_in_html_and_text(
    renderer: Renderer, shape: Shape, tmp_path: Path
) -> None:
    path = tmp_path / "peace" / "issue.yaml"
    path.parent.mkdir()
    path.write_text(PEACE_WEEK, encoding="utf-8")
    loaded = load_issue(path, shape)
    rendered = renderer.render(compose_all(loaded.issue), loaded)
    week = "Monday 8 – Sunday 14 December"
    assert f"<strong>{week}</strong>, Canterbury" in rendered.html  # under its section
    assert f"<strong>{week}</strong>: " in rendered.html  # in the calendar
    assert f"\n· {week}, Canterbury\n" in rendered.text  # under its section
    calendar = bullets(rendered.text.split("\nCalendar\n--------\n")[1].split("\n--\n")[0].splitlines())
    assert calendar == [
        "Sunday 30 November – Tuesday 2 December: Winter gathering.",
        f"{week}: Peace Week. Canterbury.",
        "Wednesday 10 December at 6:00pm: Vigil.",
        "Wednesday 31 December 2025 – Friday 2 January 2026: New Year peace walk.",
    ]  # by first day; the vigil on the 10th after the week that started on the 8th
    # Shown until its last day is over: an issue dated in the middle of the week still lists it.
    later = path.parent.parent / "later" / "issue.yaml"
    later.parent.mkdir()
    later.write_text(PEACE_WEEK.replace("date: 2025-11-17", "date: 2025-12-14"), encoding="utf-8")
    loaded_later = load_issue(later, shape)
    keys = [e.key for e in compose_all(loaded_later.issue).calendar]
    assert keys == ["peace-week-1", "calendar-2"]  # the week ends that day; the new year is to come
    assert [w.field for w in loaded_later.warnings] == ["calendar[0].end", "calendar[2].start"]


# ---------------------------------------------------------------------------------------------
# HTML rules


class Outline(HTMLParser):
    """Headings, images, ids, links and scripts of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.images: list[dict[str, str | None]] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.scripts = 0
        self.lang: str | None = None
        self._heading: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "img":
            self.images.append(a)
        if tag == "a" and a.get("href") is not None:
            self.hrefs.append(str(a["href"]))
        if tag == "script":
            self.scripts += 1
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = tag
            self.headings.append((tag, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._heading:
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading:
            tag, text = self.headings[-1]
            self.headings[-1] = (tag, text + data)


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


def test_html_of_the_seed(renderer: Renderer, seed: LoadedIssue, shape: Shape) -> None:
    for name in VARIANTS:
        rendered = render_named(renderer, seed, shape, name)
        doc = outline(rendered.html)
        assert doc.lang == "en-GB"
        assert doc.scripts == 0 and "<script" not in rendered.html.lower()
        assert len(rendered.html.encode("utf-8")) < 100_000
        assert all((img.get("alt") or "").strip() for img in doc.images)
        # Headings in order: one h1 (the title), then h2 for highlights, each section and the calendar.
        levels = [tag for tag, _ in doc.headings]
        assert levels[0] == "h1" and levels.count("h1") == 1 and set(levels[1:]) == {"h2"}
        assert doc.headings[1][1] == "Highlights" and doc.headings[-1][1] == "Calendar"
        # Every highlight links to a section that exists.
        internal = [h[1:] for h in doc.hrefs if h.startswith("#")]
        assert internal and all(target in doc.ids for target in internal)
        # An "add to calendar" link per calendar entry, and the footer's links.
        ics = {h for h in doc.hrefs if h.endswith(".ics")}
        variant = compose(seed.issue, shape, *VARIANTS[name])
        assert len(ics) == len(variant.calendar)
        assert all(h.startswith("https://kent.example.org/calendar/event/2025-11-kent-network-") for h in ics)
        assert SLOTS["unsubscribe_url"] in doc.hrefs and SLOTS["preferences_url"] in doc.hrefs
        assert f"https://kent.example.org/archive/{SEED_SLUG}/{variant.key}" in doc.hrefs
        assert "<p>[[mailer:greeting]]</p>" in rendered.html and "\n[[mailer:greeting]]\n" in rendered.text
        assert "Sent by Kent Network" in rendered.html
        assert rendered.subject == "Kent Network newsletter: November 2025"
        assert rendered.preheader and rendered.preheader in rendered.html


def test_full_issue_html_has_the_image_with_alt(renderer: Renderer, seed: LoadedIssue) -> None:
    rendered = renderer.render(compose_all(seed.issue), seed)
    doc = outline(rendered.html)
    assert len(doc.images) == 1
    assert (
        doc.images[0]["alt"]
        == "Cover of the Refugee Council guide: ten practical tips for talking about refugees"
    )
    assert len(rendered.html.encode("utf-8")) < 100_000


# Contrast: every text colour against the background it sits on, WCAG AA (4.5:1).


def test_colours_have_enough_contrast(renderer: Renderer, seed: LoadedIssue, shape: Shape) -> None:
    for rendered in all_rendered(renderer, seed, shape):
        parser = Colours()
        parser.feed(rendered.html)
        assert len(parser.pairs) >= 3  # text on white, on the yellow band, in the grey footer
        for fg, bg in parser.pairs:
            assert contrast(fg, bg) >= 4.5, f"{fg} on {bg}: {contrast(fg, bg):.2f}"
    assert contrast("#777777", "#ffffff") < 4.5  # the check can fail


def test_no_text_under_14_px_and_a_hidden_preheader_without_colour(
    renderer: Renderer, seed: LoadedIssue, shape: Shape
) -> None:
    """Every font size the templates set is at least 14px (0px only on MJML's layout cells, which
    hold no text); the preheader is hidden with display:none and sets no colour of its own (white
    on the page colour is what SpamAssassin's HTML_FONT_LOW_CONTRAST scores); dark mode is offered."""
    for rendered in all_rendered(renderer, seed, shape):
        sizes = {int(n) for n in re.findall(r"font-size:\s*(\d+)px", rendered.html)}
        assert sizes and all(n == 0 or n >= 14 for n in sizes), sorted(sizes)
        assert "<mj-preview" not in rendered.html and "color:#ffffff;line-height:1px" not in rendered.html
        hidden = re.findall(r'<div style="(display:none[^"]*)"[^>]*>([^<]*)</div>', rendered.html)
        assert [text for _, text in hidden] == [rendered.preheader]
        assert "color" not in hidden[0][0]
        assert '<meta name="color-scheme" content="light dark"' in rendered.html
        assert "@media (prefers-color-scheme: dark)" in rendered.html


# What Chromium draws: every visible text's colour against the background behind it, and its size.
PAINTED = """() => {
  const rgba = c => c.match(/[\\d.]+/g).map(Number);
  const behind = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      const p = rgba(c);
      if (p.length < 4 || p[3] > 0) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const texts = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].filter(n => n.nodeType === 3 && n.textContent.trim());
    if (!own.length || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    texts.push({text: own[0].textContent.trim().slice(0, 40), color: style.color, behind: behind(el),
                size: parseFloat(style.fontSize)});
  }
  const buttons = [...document.querySelectorAll('.mailer-button td[bgcolor]')].map(td => ({
    fill: getComputedStyle(td).backgroundColor, border: getComputedStyle(td).borderTopColor,
    around: behind(td.closest('table').parentElement)}));
  return {texts, buttons};
}"""


def rgb_hex(css: str) -> str:
    r, g, b = (int(float(x)) for x in re.findall(r"[\d.]+", css)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


@pytest.mark.browser
def test_every_text_and_the_button_keep_4_5_to_1_in_light_and_dark_mode_in_chromium(
    renderer: Renderer, seed: LoadedIssue, shape: Shape
) -> None:
    from conftest import launch_chromium

    alert = load_issue(ALERT_PATH, shape)
    pages = [
        (renderer.render(compose_all(seed.issue), seed), False),
        (renderer.render(compose_all(alert.issue), alert), True),
    ]
    values = {"name": "Ann Lee", "email": "ann@example.org", "unsubscribe_url": "https://x.org/u/t"}
    values["preferences_url"] = "https://x.org/p/t"
    with launch_chromium() as chromium:
        page = chromium.new_page()
        for rendered, has_button in pages:
            page.set_content(fill_slots(rendered.html, values, html=True))
            seen_fills = set()
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                painted = page.evaluate(PAINTED)
                assert len(painted["texts"]) > 10
                for t in painted["texts"]:
                    fg, bg = rgb_hex(t["color"]), rgb_hex(t["behind"])
                    assert contrast(fg, bg) >= 4.5, f"{scheme}: {t['text']!r}: {fg} on {bg}"
                    assert t["size"] >= 14, f"{scheme}: {t['text']!r} is {t['size']}px"
                assert len(painted["buttons"]) == int(has_button)
                for b in painted["buttons"]:
                    fill, edge, around = rgb_hex(b["fill"]), rgb_hex(b["border"]), rgb_hex(b["around"])
                    assert max(contrast(fill, around), contrast(edge, around)) >= 4.5, (scheme, b)
                    seen_fills.add(fill)
            assert len(seen_fills) == 2 * int(has_button)  # dark mode really changed the button


# ---------------------------------------------------------------------------------------------
# Safety: an item cannot inject script or markup


def hostile_issue() -> Newsletter:
    item = Item.model_construct(
        id="evil",
        title="<b>Bold</b> title",
        highlight="<script>alert('h')</script> highlight",
        body=(
            "Hello <script>alert(1)</script> and <img src=x onerror=alert(2)>.\n\n"
            "[click](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=) "
            "[vb](vbscript:msgbox) [ok](https://example.org/ok) ![](https://example.org/no-alt.png)\n\n"
            '<a href="javascript:alert(3)">raw</a>'
        ),
        links=[Link.model_construct(text="bad link", url="javascript:alert(4)")],
        contact="<i>me</i>",
        image=None,
        regions=[],
        interests=[],
        events=[],
    )
    return Newsletter.model_construct(
        kind="newsletter",
        title="Test <script>",
        subject="Test",
        preheader="",
        date=date(2025, 11, 17),
        audience="all",
        intro="",
        items=[item],
        calendar=[],
        sign_off="",
    )


def test_item_cannot_inject_script_or_markup(renderer: Renderer, tmp_path: Path) -> None:
    issue = hostile_issue()
    loaded = LoadedIssue(slug="evil", path=tmp_path / "issue.yaml", issue=issue, warnings=[])
    rendered = renderer.render(compose_all(issue), loaded)
    html = rendered.html.lower()
    doc = outline(rendered.html)
    assert doc.scripts == 0 and "<script" not in html
    assert "javascript:" not in " ".join(doc.hrefs).lower()
    assert not any(h.lower().startswith(("data:", "vbscript:")) for h in doc.hrefs)
    assert "onerror" not in "".join(f"{k}" for img in doc.images for k in img)
    assert "<b>bold</b>" not in html and "<i>me</i>" not in html
    assert "&lt;script&gt;" in html  # shown as text, harmless
    assert "https://example.org/ok" in doc.hrefs
    assert all((img.get("alt") or "").strip() for img in doc.images)  # the alt-less image is dropped
    assert "javascript:" not in " ".join(re.findall(r"\[\d+\] (\S+)", rendered.text))
    assert "bad link: javascript" not in rendered.text


def test_markdown_validates_links() -> None:
    md = markdown()
    assert md.validateLink("https://example.org") and md.validateLink("mailto:a@example.org")
    for bad in (
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "ftp://x",
    ):
        assert not md.validateLink(bad)


# ---------------------------------------------------------------------------------------------
# Alerts


def test_alert_has_title_body_one_button_and_footer(renderer: Renderer, shape: Shape) -> None:
    alert = load_issue(ALERT_PATH, shape)
    assert isinstance(alert.issue, Alert)
    rendered = renderer.render(compose_all(alert.issue), alert)
    doc = outline(rendered.html)
    assert doc.lang == "en-GB"
    assert [t for t, _ in doc.headings] == ["h1"]
    assert doc.hrefs.count(alert.issue.button.url) == 1
    assert alert.issue.button.text in rendered.html
    assert alert.issue.button.url in rendered.text
    assert SLOTS["unsubscribe_url"] in rendered.text and SLOTS["unsubscribe_url"] in doc.hrefs
    assert long_lines(rendered.text) == []


# ---------------------------------------------------------------------------------------------
# Templates: workspace overrides, errors with file and line


def test_workspace_template_overrides_the_default(golden_settings: Settings, seed: LoadedIssue) -> None:
    (golden_settings.path("templates") / "newsletter.txt.j2").write_text(
        "{{ title }} for {{ slots.name }}\n", encoding="utf-8"
    )
    rendered = Renderer(golden_settings).render(compose_all(seed.issue), seed)
    assert rendered.text == f"{seed.issue.title} for [[mailer:name]]\n"
    assert "<h2" in rendered.html  # the HTML still comes from the default


def test_the_default_templates_sit_at_the_top_of_the_repository(golden_settings: Settings) -> None:
    """In a checkout the defaults are the repository's templates/ (installed: mailer/templates/, see
    the wheel test below). The repository root is a workspace too: its templates/ is the default
    set, looked up once; another workspace's own templates come first, the defaults after."""
    assert PACKAGED_TEMPLATES == REPO / "templates"
    assert (REPO / "templates" / "newsletter.mjml.j2").is_file()
    assert not (REPO / "mailer" / "templates").exists()
    assert golden_settings.template_folders == [golden_settings.path("templates"), PACKAGED_TEMPLATES]
    root = Settings(workspace=REPO)
    assert root.template_folders == [PACKAGED_TEMPLATES]
    seed = load_issue(SEED_PATH, None)
    rendered = Renderer(root).render(compose_all(seed.issue), seed)
    assert seed.issue.title in rendered.text and "<h2" in rendered.html
    watched = watched_files(root, SEED_PATH)
    assert len(watched) == len(set(watched)), "the defaults are watched once"
    assert REPO / "templates" / "web" / "base.html" in watched


@pytest.mark.load
def test_the_wheel_installs_the_templates_where_the_package_finds_them(tmp_path: Path) -> None:
    """``pip wheel .`` puts templates/ at mailer/templates/ (pyproject.toml's force-include), every
    file byte for byte, and the package unpacked from the wheel finds them there."""
    import sysconfig
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "-w", str(tmp_path), "--no-deps", "-q"],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("mailer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for path in (p for p in (REPO / "templates").rglob("*") if p.is_file()):
            name = "mailer/templates/" + path.relative_to(REPO / "templates").as_posix()
            assert name in names and archive.read(name) == path.read_bytes(), name
        assert not any(n.startswith("templates/") for n in names)
        archive.extractall(tmp_path / "site")
    # -S: without the site module the editable install's import hook stays out of the way, and the
    # unpacked wheel is the only mailer on the path (the dependencies come from the environment's).
    path = os.pathsep.join([str(tmp_path / "site"), sysconfig.get_paths()["purelib"]])
    found = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import mailer.settings as s; print(s.__file__); print(s.PACKAGED_TEMPLATES)",
        ],
        env={**os.environ, "PYTHONPATH": path},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert found == [
        str(tmp_path / "site" / "mailer" / "settings.py"),
        str(tmp_path / "site" / "mailer" / "templates"),
    ]


def test_template_syntax_error_names_file_and_line(golden_settings: Settings, seed: LoadedIssue) -> None:
    path = golden_settings.path("templates") / "newsletter.txt.j2"
    path.write_text("line one\nline two\n{% for x in %}\n", encoding="utf-8")
    with pytest.raises(RenderError) as err:
        Renderer(golden_settings).render(compose_all(seed.issue), seed)
    assert err.value.line == 3
    assert str(err.value.path).endswith("newsletter.txt.j2")
    assert str(path) in str(err.value) or "newsletter.txt.j2:3" in str(err.value)


def test_template_runtime_error_names_file_and_line(golden_settings: Settings, seed: LoadedIssue) -> None:
    path = golden_settings.path("templates") / "newsletter.txt.j2"
    path.write_text("ok\n\n{{ no_such_value }}\n", encoding="utf-8")
    with pytest.raises(RenderError) as err:
        Renderer(golden_settings).render(compose_all(seed.issue), seed)
    assert err.value.line == 3 and str(err.value.path) == str(path)
    assert "no_such_value" in str(err.value)


def test_broken_mjml_is_a_render_error(golden_settings: Settings, seed: LoadedIssue) -> None:
    (golden_settings.path("templates") / "newsletter.mjml.j2").write_text("<mjml><mj-body>", encoding="utf-8")
    with pytest.raises(RenderError) as err:
        Renderer(golden_settings).render(compose_all(seed.issue), seed)
    assert str(err.value.path) == "newsletter.mjml.j2"


def test_fill_slots_escapes_for_html() -> None:
    text = "Dear [[mailer:name]], [[mailer:unsubscribe_url]] [[mailer:other]]"
    values = {"name": "Ann & <Bob>", "unsubscribe_url": "https://x.org/u?a=1&b=2"}
    assert (
        fill_slots(text, values, html=False) == "Dear Ann & <Bob>, https://x.org/u?a=1&b=2 [[mailer:other]]"
    )
    assert fill_slots(text, values, html=True) == (
        "Dear Ann &amp; &lt;Bob&gt;, https://x.org/u?a=1&amp;b=2 [[mailer:other]]"
    )


# ---------------------------------------------------------------------------------------------
# Previews


def seed_workspace(settings: Settings) -> Path:
    folder = settings.workspace / "campaigns" / SEED_SLUG
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED_PATH, folder / "issue.yaml")
    return folder / "issue.yaml"


def test_preview_region_and_interest(golden_settings: Settings, shape: Shape, tmp_path: Path) -> None:
    issue_path = seed_workspace(golden_settings)
    loaded = load_issue(issue_path, shape)
    request = PreviewRequest(region="maidstone-medway-swale", interests=("refugees",))
    result = preview(golden_settings, shape, loaded, request, tmp_path / "out")
    assert [p.suffix for p in result.paths] == [".html", ".txt"]
    text = result.paths[1].read_text(encoding="utf-8")
    assert "Dear Alex," in text and "[[mailer:" not in text
    assert "\nRefugees\n--------\n" in text
    assert result.label == "Maidstone, Medway & Swale · refugees"


def test_preview_member_and_index_from_the_database(
    db: Database, settings: Settings, shape: Shape, mailer_cli: MailerCli
) -> None:
    seed_workspace(settings)
    with db.session() as session:
        regions = {r.slug: r.id for r in session.scalars(select(Region))}
        refugees = session.scalars(select(Interest).where(Interest.slug == "refugees")).one()
        for email, name, region in [
            ("ann@example.org", "Ann Lee", "maidstone-medway-swale"),
            ("bob@example.org", "Bob Roe", "kent"),
            ("cat@example.org", "Cat Poe", "thanet"),
        ]:
            m = Member(
                email=email,
                address_hash=address_hash(email),
                name=name,
                first_name=name.split()[0],
                region_id=regions[region],
            )
            session.add(m)
            session.flush()
            if email == "ann@example.org":
                session.add(MemberInterest(member_id=m.id, interest_id=refugees.id))
    base = ["-w", str(settings.workspace), "campaigns", "preview", SEED_SLUG]
    out = settings.workspace / "out"
    result = mailer_cli(*base, "--member", "Ann@Example.org", "-o", str(out), "--format", "text")
    assert result.exit_code == 0, result.output
    (written,) = out.glob("member-*.txt")
    text = written.read_text(encoding="utf-8")
    assert "Dear Ann," in text and "\nRefugees\n" in text

    result = mailer_cli(*base)
    assert result.exit_code == 0, result.output
    folder = settings.workspace / "preview" / SEED_SLUG
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert "2 variants for 3 members" in index
    keys = re.findall(r'href="([0-9a-f]{12})\.html"', index)
    assert len(keys) == 2 and all(
        (folder / f"{k}.html").exists() and (folder / f"{k}.txt").exists() for k in keys
    )

    missing = mailer_cli(*base, "--member", "nobody@example.org")
    assert missing.exit_code != 0 and "no member 'nobody@example.org'" in missing.output


def test_preview_member_warns_when_a_send_would_not_reach_them(
    db: Database, settings: Settings, mailer_cli: MailerCli
) -> None:
    seed_workspace(settings)
    with db.session() as session:
        regions = {r.slug: r.id for r in session.scalars(select(Region))}
        for email, region in [
            ("kim@example.org", "canterbury"),  # in the audience (region:kent)
            ("sue@example.org", "brighton-hove"),  # Sussex: outside it
            ("gone@example.org", "kent"),  # unsubscribed
        ]:
            session.add(Member(email=email, address_hash=address_hash(email), region_id=regions[region]))
        session.add(
            Suppression(address_hash=address_hash("gone@example.org"), reason="unsubscribe", source="link")
        )
    base = ["-w", str(settings.workspace), "campaigns", "preview", SEED_SLUG, "--format", "text"]

    inside = mailer_cli(*base, "--member", "kim@example.org")
    assert inside.exit_code == 0, inside.output
    assert inside.stderr == ""
    assert json.loads(mailer_cli(*base, "--member", "kim@example.org", "--json").stdout)["warnings"] == []

    outside = mailer_cli(*base, "--member", "sue@example.org")
    assert outside.exit_code == 0, outside.output  # the preview is still written
    assert "wrote " in outside.stdout and "warning" not in outside.stdout
    assert outside.stderr.startswith("warning: sue@example.org is not in the audience 'region:kent'")
    assert "a send of this issue will not reach them" in outside.stderr
    data = json.loads(mailer_cli(*base, "--member", "sue@example.org", "--json").stdout)
    assert len(data["warnings"]) == 1 and "not in the audience 'region:kent'" in data["warnings"][0]
    assert data["paths"] and data["paths"][0].endswith(".txt")

    gone = mailer_cli(*base, "--member", "gone@example.org", "--json")
    assert gone.exit_code == 0, gone.output
    (warning,) = json.loads(gone.stdout)["warnings"]
    assert warning.startswith("gone@example.org is suppressed (unsubscribe, ")
    assert "no issue is sent to them" in warning and warning in gone.stderr


def test_preview_rejects_unknown_names_and_bad_combinations(
    golden_settings: Settings, tmp_path: Path
) -> None:
    root = golden_settings.workspace
    shutil.copytree(REPO / "lists", root / "lists", ignore=shutil.ignore_patterns("members.csv"))
    seed_workspace(golden_settings)
    mailer_cli = MailerCli(os.environ)
    base = ["-w", str(root), "campaigns", "preview", SEED_SLUG, "-o", str(tmp_path / "o")]
    bad = mailer_cli(*base, "--region", "kentt")
    assert bad.exit_code == 2 and "did you mean 'kent'" in bad.output
    both = mailer_cli(*base, "--all", "--member", "a@example.org")
    assert both.exit_code == 2 and "cannot be combined" in both.output


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def edit_title(issue_path: Path, new: str) -> None:
    text = issue_path.read_text(encoding="utf-8")
    text = re.sub(r"^title: .*$", f'title: "{new}"', text, count=1, flags=re.M)
    issue_path.write_text(text, encoding="utf-8")


def test_watch_rerenders_after_an_edit_in_a_thread(
    golden_settings: Settings, shape: Shape, tmp_path: Path
) -> None:
    issue_path = seed_workspace(golden_settings)
    out = tmp_path / "watch"
    request = PreviewRequest(full=True, formats=("text",))
    errors: list[str] = []

    def rebuild() -> None:
        preview(golden_settings, shape, load_issue(issue_path, shape), request, out)

    rebuild()
    target = out / "all.txt"
    assert target.read_text(encoding="utf-8").startswith("Amnesty International")
    stop = threading.Event()
    counts: list[int] = []
    thread = threading.Thread(
        target=lambda: counts.append(
            watch(
                lambda: watched_files(golden_settings, issue_path),
                rebuild,
                stop,
                interval=0.05,
                on_error=lambda e: errors.append(str(e)),
            )
        )
    )
    thread.start()
    try:
        time.sleep(0.2)  # let the watcher take its first snapshot
        issue_path.write_text(
            issue_path.read_text(encoding="utf-8").replace("kind: newsletter", "kind: nope")
        )
        assert wait_until(lambda: bool(errors)), "a broken file is reported, and watching goes on"
        issue_path.write_text(SEED_PATH.read_text(encoding="utf-8"), encoding="utf-8")
        edit_title(issue_path, "Kent Network Newsletter: December 2025")
        assert wait_until(
            lambda: target.read_text(encoding="utf-8").startswith("Kent Network Newsletter: December")
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive() and counts and counts[0] >= 1


@pytest.mark.slow
def test_preview_watch_command_rerenders_after_an_edit(golden_settings: Settings, tmp_path: Path) -> None:
    root = golden_settings.workspace
    shutil.copytree(REPO / "lists", root / "lists", ignore=shutil.ignore_patterns("members.csv"))
    issue_path = seed_workspace(golden_settings)
    out = tmp_path / "watched"
    env = dict(os.environ, MAILER_WORKSPACE=str(root), MAILER_SECRET=TEST_SECRET)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailer",
            "campaigns",
            "preview",
            SEED_SLUG,
            "--all",
            "--watch",
            "-o",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        target = out / "all.txt"
        assert wait_until(lambda: target.exists() and target.stat().st_size > 0), "first render"
        assert proc.stdout is not None
        line = ""
        while "watching" not in line:  # the watcher has taken its snapshot after this line
            line = proc.stdout.readline()
            assert line, "the command ended early"
        time.sleep(0.5)
        edit_title(issue_path, "Edited while watching")
        assert wait_until(lambda: target.read_text(encoding="utf-8").startswith("Edited while watching"))
        assert proc.poll() is None  # still watching
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_watched_files_leave_out_the_preview_output(golden_settings: Settings) -> None:
    issue_path = seed_workspace(golden_settings)
    folder = issue_path.parent
    (folder / "poster.png").write_bytes(b"png")
    assert folder / "poster.png" in watched_files(golden_settings, issue_path)
    # Previews written into the campaign's own folder (-o campaigns/SLUG) never trigger another.
    (folder / "all.txt").write_text("x", encoding="utf-8")
    files = watched_files(golden_settings, issue_path, exclude=folder)
    assert issue_path in files and folder / "all.txt" not in files
    assert any(p.name == "newsletter.mjml.j2" for p in files)
