"""Rendering a variant: Jinja2 (autoescaped) → MJML → HTML with mjml-python, and Jinja2 → plain text.

Templates load from the workspace's ``templates/`` first, then the packaged defaults
(``Settings.template_folders``), so a workspace overrides a template by giving its name. Bodies are Markdown,
rendered by markdown-it-py with raw HTML off and links limited to http, https and mailto: an item
cannot inject script or markup. The plain text is laid out like the seed newsletter, every line at
most 78 characters (a URL longer than that stands alone on its line, indented like its entry).
Headings keep the editor's case (a title's "MPs" stays "MPs"), underlined to their length: ``=``
for the issue's title, ``-`` for sections, ``~`` for headings inside a body. Each section carries
its date lines (as under the section in HTML) and prints its contact line once: not when its body
already gives it.

Nothing personal is rendered: where the member's name and links go, both parts carry the slot
markers in ``SLOTS``, which the message builder fills in per recipient (HTML-escaped for HTML).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import jinja2
import mjml
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

from mailer.compose import CalendarEntry, Loaded, Variant
from mailer.errors import RenderError
from mailer.identity import COLOURS, Identity, band_colours, default_identity
from mailer.issue import Alert, Digest, Event, Item, calendar_text
from mailer.issue.calendar_text import calendar_line, calendar_url, event_uid, place_text, sentence, when_text
from mailer.settings import Settings
from mailer.slots import SLOTS

WIDTH = 78

ALLOWED_SCHEMES = ("http://", "https://", "mailto:")


@dataclass(frozen=True)
class RenderedVariant:
    """One variant's message parts, slot markers still in them."""

    subject: str
    preheader: str
    text: str
    html: str
    variant_key: str = ""


# ---------------------------------------------------------------------------------------------
# URLs


def safe_url(url: str) -> str | None:
    """``url`` if it is an http, https or mailto link, else None (never javascript:, data:, …)."""
    url = url.strip()
    return url if url.lower().startswith(ALLOWED_SCHEMES) else None


def browser_url(settings: Settings, slug: str, variant_key: str) -> str:
    """The "view in browser" link of a variant: ``{base_url}/archive/{slug}/{variant_key}``."""
    return f"{settings.base_url.rstrip('/')}/archive/{slug}/{variant_key}"


def image_url(settings: Settings, slug: str, src: str) -> str:
    """An image's URL: as given if absolute, else ``{base_url}/files/{slug}/{src}`` (the campaign folder)."""
    if src.lower().startswith(("http://", "https://")):
        return src
    return f"{settings.base_url.rstrip('/')}/files/{slug}/{src.lstrip('/')}"


def entry_uid(settings: Settings, slug: str, entry: CalendarEntry) -> str:
    return entry.uid or event_uid(slug, entry.key, settings.list_domain)


# ---------------------------------------------------------------------------------------------
# Markdown: to HTML with raw HTML off, and to wrapped plain text with links listed


def _validate_link(url: str) -> bool:
    return safe_url(url) is not None


def _link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tokens[idx].attrSet("style", f"color:{COLOURS['link']}")
    return self.renderToken(tokens, idx, options, env)


def _image(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env).strip()
    src = str(token.attrGet("src") or "")
    if not alt or not src.lower().startswith(("http://", "https://")):
        return ""  # an image without alt text (or from elsewhere) is left out
    return Markup('<img src="{}" alt="{}" style="max-width:100%;height:auto">').format(src, alt)


def markdown() -> MarkdownIt:
    """CommonMark with raw HTML off, bare URLs and addresses linked, links limited to ``ALLOWED_SCHEMES``."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": True}).enable("linkify")
    md.validateLink = _validate_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    return md


def _wrapper(initial: str = "", subsequent: str = "") -> textwrap.TextWrapper:
    return textwrap.TextWrapper(
        width=WIDTH,
        initial_indent=initial,
        subsequent_indent=subsequent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def wrap(text: str, initial: str = "", subsequent: str = "") -> str:
    """``text`` filled to 78 columns; a word longer than that (a URL) stands alone on its line."""
    lines = []
    for para in text.split("\n"):
        filled = _wrapper(initial, subsequent).wrap(para) or [initial.rstrip()]
        lines.extend(filled)
        initial = subsequent
    return "\n".join(lines)


def labelled(label: str, url: str, indent: str = "", sep: str = ": ") -> str:
    """``Label: url`` on one line if it fits, else the label and then the URL alone on the next,
    both at ``indent`` (an entry's link stays under its entry, however long the URL)."""
    line = f"{indent}{label}{sep}{url}" if label else f"{indent}{url}"
    if len(line) <= WIDTH:
        return line
    if not label:
        return indent + url
    return wrap(f"{label}{sep}".rstrip(), indent, indent) + "\n" + indent + url


def heading(text: str, rule: str = "-") -> str:
    """``text`` in the editor's case, wrapped, over a line of ``rule`` as long as its longest line."""
    lines = wrap(" ".join(text.split())).splitlines()
    if not lines or not lines[0]:
        return ""
    return "\n".join([*lines, rule * max(len(line) for line in lines)])


_CONTACT_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|https?://[^\s<>\"']+")


def said_already(contact: str, body: str) -> bool:
    """Whether ``body`` already gives the contact line ``contact``: every address in it (an email
    address or a link), or, when it has none, its words. Then the text part prints it once."""

    def folded(text: str) -> str:
        return " ".join(text.split()).casefold()

    said = folded(body)
    addresses = [a.rstrip(".,;:!?)") for a in _CONTACT_ADDRESS.findall(contact)]
    if addresses:
        return all(a.casefold() in said for a in addresses)
    words = folded(contact).rstrip(".!?")
    return bool(words) and words in said


@dataclass
class TextBody:
    """Markdown as plain text: wrapped paragraphs, and the URLs of its links, numbered [1], [2], …"""

    text: str
    refs: list[str] = field(default_factory=list)


def _link_text(children: list[Token], refs: list[str]) -> str:
    out: list[str] = []
    href: str | None = None
    start = 0
    for tok in children:
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type == "softbreak":
            out.append(" ")
        elif tok.type == "hardbreak":
            out.append("\n")
        elif tok.type == "image":
            alt = "".join(c.content for c in tok.children or [])
            if alt:
                out.append(f"[image: {alt}]")
        elif tok.type == "link_open":
            href, start = str(tok.attrGet("href") or ""), len(out)
        elif tok.type == "link_close" and href is not None:
            label = "".join(out[start:]).strip()
            if href not in (label, "mailto:" + label, "http://" + label):
                refs.append(href)
                out.append(f" [{len(refs)}]")
            href = None
    return "".join(out)


def markdown_text(md: MarkdownIt, source: str) -> TextBody:
    """Markdown converted to plain text: paragraphs wrapped, bullets as "· ", links as "text [n]",
    headings in their own case over a line of ``~``."""
    refs: list[str] = []
    blocks: list[tuple[str, bool]] = []  # (text, joins the previous block without a blank line)
    lists: list[list[Any]] = []  # [marker kind, counter]
    first_in_item = False
    in_heading = False
    for tok in md.parse(source):
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            start = int(tok.attrGet("start") or 1) if tok.type == "ordered_list_open" else 1
            lists.append(["·" if tok.type == "bullet_list_open" else "n", start - 1])
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif tok.type == "list_item_open":
            lists[-1][1] += 1
            first_in_item = True
        elif tok.type == "heading_open":
            in_heading = True
        elif tok.type == "heading_close":
            in_heading = False
        elif tok.type == "inline":
            text = _link_text(tok.children or [], refs)
            if in_heading:
                blocks.append((heading(text, "~"), False))
            elif lists:
                kind, n = lists[-1]
                marker = "· " if kind == "·" else f"{n}. "
                indent = "  " * (len(lists) - 1)
                hang = indent + " " * len(marker)
                initial = indent + marker if first_in_item else hang
                blocks.append((wrap(text, initial, hang), first_in_item and lists[-1][1] > 1))
                first_in_item = False
            else:
                blocks.append((wrap(text), False))
        elif tok.type in ("fence", "code_block"):
            blocks.append((tok.content.rstrip("\n"), False))
        elif tok.type == "hr":
            blocks.append(("* * *", False))
    out = ""
    for text, tight in blocks:
        out += ("\n" if tight else "\n\n") + text if out else text
    return TextBody(out, refs)


# ---------------------------------------------------------------------------------------------
# What the templates get


@dataclass(frozen=True)
class LinkView:
    text: str
    url: str


@dataclass(frozen=True)
class EntryView:
    """A calendar entry as the templates show it."""

    anchor: str
    when: str
    date_line: str
    title: str
    place: str
    place_sentence: str
    title_end: str
    contact: str
    contact_html: Markup
    line: str
    uid: str
    add_url: str
    add_label: str  # "Add Kent speaker meeting to your calendar": names the event (distinct links)
    rsvp_url: str  # the member's RSVP link (the ``rsvp_token`` slot in it)
    rsvp_label: str  # "Say if you are coming to Kent speaker meeting"
    booking: LinkView | None
    item_anchor: str | None


@dataclass(frozen=True)
class ImageView:
    src: str
    alt: str
    width: int | None


@dataclass(frozen=True)
class SectionView:
    anchor: str
    title: str
    body_html: Markup
    body_text: str
    refs: list[str]
    links: list[LinkView]
    contact: str
    contact_html: Markup
    contact_text: str
    image: ImageView | None
    events: list[EntryView]


@dataclass(frozen=True)
class HighlightView:
    anchor: str
    text: str


def _anchor(item_id: str) -> str:
    return "item-" + re.sub(r"[^A-Za-z0-9_-]", "-", item_id)


# ---------------------------------------------------------------------------------------------
# The renderer


def _autoescape(name: str | None) -> bool:
    return not (name or "").endswith(".txt.j2")


def template_loader(settings: Settings) -> jinja2.BaseLoader:
    """The workspace's ``templates/`` first, then the packaged defaults."""
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(p)) for p in settings.template_folders])


def _template_frame(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """The template file and line of the innermost template frame of a traceback."""
    name: str | None = None
    line: int | None = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2") or filename.endswith(".html"):
            name, line = filename, tb.tb_lineno
        tb = tb.tb_next
    return name, line


class Renderer:
    """Renders variants of issues with one Jinja2 environment, speaking as ``identity`` (footer,
    sign-off, band colour; default: the workspace's single network). ``renders`` counts renders."""

    def __init__(self, settings: Settings, identity: Identity | None = None) -> None:
        self.settings = settings
        self.identity = identity or default_identity(settings)
        self.colours, self.dark = band_colours(self.identity.network)
        self.md = markdown()
        self.env = jinja2.Environment(
            loader=template_loader(settings),
            autoescape=_autoescape,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,  # a renderer lives for one send or preview: no stat of a template per render
        )
        self.env.filters.update(wrap=self.wrap, labelled=self.labelled, heading=self.heading)
        self.renders = 0
        self._lines: dict[tuple[str, ...], str] = {}  # the filters' results (wrap, labelled, heading)
        # Items recur in many variants: their Markdown is converted once per renderer.
        self._html: dict[str, Markup] = {}
        self._inline: dict[str, Markup] = {}
        self._text: dict[str, TextBody] = {}
        # So do calendar entries and whole sections (an item with the events a variant shows of it):
        # each kept with the object it was made from, and made again for another.
        self._entries: dict[tuple[str, str, str | None], tuple[Event, Any, EntryView]] = {}
        self._sections: dict[tuple[str, str, tuple[str, ...]], tuple[Item, list[EntryView], SectionView]] = {}

    def wrap(self, text: str, initial: str = "", subsequent: str = "") -> str:
        """``wrap`` for the text templates, remembered: the same lines recur in many variants."""
        return self._line(wrap, str(text), initial, subsequent)

    def labelled(self, label: str, url: str, indent: str = "", sep: str = ": ") -> str:
        return self._line(labelled, label, url, indent, sep)

    def heading(self, text: str, rule: str = "-") -> str:
        return self._line(heading, text, rule)

    def _line(self, make: Callable[..., str], *args: str) -> str:
        key = (make.__name__, *args)
        if key not in self._lines:
            self._lines[key] = make(*args)
        return self._lines[key]

    def md_html(self, source: str) -> Markup:
        if source not in self._html:
            self._html[source] = Markup(self.md.render(source))
        return self._html[source]

    def md_inline(self, source: str) -> Markup:
        if source not in self._inline:
            self._inline[source] = Markup(self.md.renderInline(source))
        return self._inline[source]

    def md_text(self, source: str) -> TextBody:
        if source not in self._text:
            self._text[source] = markdown_text(self.md, source)
        return self._text[source]

    # -- templates

    def template(self, name: str, context: dict[str, Any]) -> str:
        """Render the template ``name``; a failure is a ``RenderError`` naming the file and line."""
        try:
            return self.env.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                f"template syntax error: {exc.message}",
                path=exc.filename or exc.name or name,
                line=exc.lineno,
                hint="fix the template, or delete the workspace copy to use the default",
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise RenderError(
                f"template not found: {exc.name}",
                path=name,
                hint="templates are looked up in " + " and ".join(map(str, self.settings.template_folders)),
            ) from exc
        except Exception as exc:
            where, line = _template_frame(exc.__traceback__)
            raise RenderError(
                f"template failed: {type(exc).__name__}: {exc}", path=where or name, line=line
            ) from exc

    def to_html(self, mjml_source: str, name: str) -> str:
        """MJML to HTML with mjml-python (comments stripped, no web fonts)."""
        try:
            return mjml.mjml2html(mjml_source, disable_comments=True, fonts={})
        except Exception as exc:
            raise RenderError(f"MJML could not be converted: {exc}", path=name) from exc

    # -- context

    def _entry(self, slug: str, entry: CalendarEntry, today: Any) -> EntryView:
        key = (slug, entry.key, entry.item_id)
        cached = self._entries.get(key)
        if cached is not None and cached[0] is entry.event and cached[1] == today:
            return cached[2]
        view = self._make_entry(slug, entry, today)
        self._entries[key] = (entry.event, today, view)
        return view

    def _make_entry(self, slug: str, entry: CalendarEntry, today: Any) -> EntryView:
        ev = entry.event
        uid = entry_uid(self.settings, slug, entry)
        booking = None
        if ev.booking is not None and (url := safe_url(ev.booking.url)):
            booking = LinkView(ev.booking.text, url)
        when = when_text(ev, today)
        place = place_text(ev)
        return EntryView(
            anchor="cal-" + re.sub(r"[^A-Za-z0-9_-]", "-", entry.key),
            when=when,
            date_line=f"{when}, {place}" if place else when,
            title=ev.title,
            place=place_text(ev),
            place_sentence=sentence(place_text(ev)[:1].upper() + place_text(ev)[1:]),
            title_end="" if ev.title.rstrip()[-1:] in (".", "!", "?") else ".",
            contact=sentence(ev.contact),
            contact_html=self.md_inline(sentence(ev.contact)),
            line=calendar_line(ev, today),
            uid=uid,
            add_url=calendar_url(self.settings.base_url, uid),
            add_label=f"Add {ev.title} to your calendar",
            rsvp_url=calendar_text.rsvp_url(self.settings.base_url, uid, SLOTS["rsvp_token"]),
            rsvp_label=f"Say if you are coming to {ev.title}",
            booking=booking,
            item_anchor=_anchor(entry.item_id) if entry.item_id else None,
        )

    def _section(self, slug: str, item: Item, entries: list[EntryView]) -> SectionView:
        key = (slug, item.id, tuple(e.uid for e in entries))
        cached = self._sections.get(key)
        if (
            cached is not None
            and cached[0] is item
            and all(a is b for a, b in zip(cached[1], entries, strict=True))
        ):
            return cached[2]
        view = self._make_section(slug, item, entries)
        self._sections[key] = (item, entries, view)
        return view

    def _make_section(self, slug: str, item: Item, entries: list[EntryView]) -> SectionView:
        body = self.md_text(item.body)
        links = [LinkView(link.text, url) for link in item.links if (url := safe_url(link.url))]
        image = None
        if item.image is not None and item.image.alt.strip():
            image = ImageView(
                image_url(self.settings, slug, item.image.src), item.image.alt, item.image.width
            )
        contact = sentence(item.contact)
        said = "\n".join([body.text, *body.refs, *(f"{link.text} {link.url}" for link in links)])
        return SectionView(
            anchor=_anchor(item.id),
            title=item.title,
            body_html=self.md_html(item.body),
            body_text=body.text,
            refs=body.refs,
            links=links,
            contact=contact,
            contact_html=self.md_inline(contact),
            contact_text="" if said_already(contact, said) else contact,
            image=image,
            events=entries,
        )

    def context(self, variant: Variant, loaded: Loaded) -> dict[str, Any]:
        """Everything the templates of ``loaded``'s kind get for ``variant``."""
        issue = loaded.issue
        s = self.settings
        common: dict[str, Any] = {
            "kind": issue.kind,
            "slug": loaded.slug,
            "variant": variant,
            "title": issue.title,
            "subject": issue.subject,
            "date": issue.date,
            "organisation": self.identity.sender_name,
            "from_address": self.identity.network.from_address,
            "network": self.identity.network,
            "privacy_url": self.identity.privacy_url(s),
            "browser_url": browser_url(s, loaded.slug, variant.key),
            "slots": SLOTS,
            "colours": self.colours,
            "dark": self.dark,
            "sign_off": issue.sign_off.strip() or self.identity.sign_off,
            "width": WIDTH,
        }
        if isinstance(issue, Alert):
            body = self.md_text(issue.body)
            url = safe_url(issue.button.url)
            common.update(
                preheader=issue.preheader or issue.title,
                body_html=self.md_html(issue.body),
                body_text=body.text,
                refs=body.refs,
                button=LinkView(issue.button.text, url) if url else None,
            )
            return common
        entries = [self._entry(loaded.slug, e, issue.date) for e in variant.calendar]
        intro, preheader = self.md_text(issue.intro), issue.preheader or issue.intro or issue.title
        common |= {"preheader": preheader, "intro_html": self.md_html(issue.intro), "calendar": entries}
        common |= {"intro_text": intro.text, "intro_refs": intro.refs}
        if isinstance(issue, Digest):  # a short list (a line per event), then the events
            return common | {"days": issue.days}
        by_item: dict[str, list[EntryView]] = {}
        for view, entry in zip(entries, variant.calendar, strict=True):
            if entry.item_id is not None:
                by_item.setdefault(entry.item_id, []).append(view)
        common["highlights"] = [HighlightView(_anchor(h.item_id), h.text) for h in variant.highlights]
        common["sections"] = [self._section(loaded.slug, i, by_item.get(i.id, [])) for i in variant.items]
        return common

    # -- rendering

    def mjml(self, variant: Variant, loaded: Loaded) -> str:
        """The MJML of a variant: the Jinja2 step alone."""
        return self.template(f"{loaded.issue.kind}.mjml.j2", self.context(variant, loaded))

    def render(self, variant: Variant, loaded: Loaded) -> RenderedVariant:
        """Subject, preheader, plain text and HTML of ``variant``; called once per variant, not per member."""
        self.renders += 1
        kind = loaded.issue.kind
        context = self.context(variant, loaded)
        source = self.template(f"{kind}.mjml.j2", context)
        html = self.to_html(source, f"{kind}.mjml.j2")
        text = self.template(f"{kind}.txt.j2", context)
        text = "\n".join(line.rstrip() for line in text.splitlines())
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
        return RenderedVariant(
            subject=loaded.issue.subject,
            preheader=str(context["preheader"]),
            text=text,
            html=html,
            variant_key=variant.key,
        )


def long_lines(text: str, width: int = WIDTH) -> list[str]:
    """Lines of ``text`` longer than ``width`` that are not a lone URL (the plain-text rule's exceptions)."""
    bad = []
    for line in text.splitlines():
        if len(line) > width and not (
            " " not in line.strip() and line.strip().lower().startswith(ALLOWED_SCHEMES)
        ):
            bad.append(line)
    return bad
