"""Whether a person's reply asks to leave (docs/decisions.md, Replies asking to leave). Pure.

Members answer a newsletter with "Please unsubscribe me", "STOP" or "Tynnwch fi oddi ar y rhestr",
or mail UNSUBSCRIBE to the From address. ``asks_to_leave(msg, subject)`` finds such a request, in
English or Welsh, in the **subject** or the **first lines of the body above any quoted text**:

- the body read is the first text/plain part (else the first text/html one, its tags dropped), at
  most ``MAX_LINES`` non-empty lines, stopping at the first line that starts a quotation or a
  signature: a line quoted with ``>``, "On … wrote:" (or Welsh "Ar … ysgrifennodd"), "-----Original
  Message-----", a "From:" header block, or the ``--`` that opens our own footer and a signature.
  So a quoted copy of our footer ("Unsubscribe: https://…") never counts;
- lines holding a web or mail address are skipped too (an unquoted copy of a footer's link);
- **phrases** count anywhere in what is read: unsubscribe (me), remove me, take me off, opt (me)
  out, no more emails, stop sending / emailing / mailing, don't send / email me; dad-danysgrifio,
  tynnwch fi, tynnu fi, dim mwy o negeseuon / e-byst, stopiwch anfon; each unless a negation stands
  just before it ("please don't unsubscribe me", "peidiwch â …");
- **single words** that are often a request but also often not (stop, stopiwch, remove, cancel,
  unsubscribe, dim mwy) count only as the whole subject or the whole first line ("STOP",
  "Unsubscribe"), so "we must stop the deportation flights" is no request.

The answer is the words that matched (for the record and the desk), or "" for none.
"""

from __future__ import annotations

import html
import re
from email.message import Message
from typing import Final

from mailer.inbound.parse import part_text, walk

MAX_LINES: Final = 8
#: Longest line read: a request is short; a long line is a paragraph of something else.
MAX_LINE: Final = 400

_PHRASES: Final = (
    r"un-?subscribe(?!d)",
    r"remove (me|us|my (e-?mail|address|name))",
    r"take (me|us|my (e-?mail|address|name)) off",
    r"opt (me |us )?out",
    r"no (more|further) (e-?mails?|mails?|messages|newsletters)",
    r"stop (sending|e-?mailing|mailing|contacting|the (e-?mails?|newsletters?))",
    r"(do not|don'?t|never) (send|e-?mail|mail|contact) (me|us)",
    r"dad-?d?anysgrif\w*",
    r"datdanysgrif\w*",
    r"tynnwch (fi|ni|fy)",
    r"tynnu (fi|ni|fy)",
    r"dim mwy o (negeseuon|e-?byst|ebost|e-?bost|gylchlythyrau)",
    r"stopiwch (anfon|e-?bostio)",
    r"peidiwch (ag?|â) (anfon|e-?bostio)",
)
_WORDS: Final = (
    r"stop",
    r"stopiwch",
    r"remove",
    r"cancel",
    r"unsubscribe",
    r"opt[ -]?out",
    r"dad-?danysgrifio",
    r"dim mwy",
    r"end",
    r"quit",
)
_PHRASE_RE = re.compile(r"(?<![\w-])(" + "|".join(_PHRASES) + r")(?![\w-])")
_WORD_RE = re.compile(r"(please |plis |os gwelwch yn dda )?(" + "|".join(_WORDS) + r")( please| plis)?")
#: A negation just before a phrase (up to two words between): the reply says the opposite.
_NEGATION_RE = re.compile(
    r"(?<![\w-])(not|don'?t|do not|never|no need to|peidiwch( â| ag?)?|nid|na)( \w+){0,3} $"
)
#: The phrase ``peidiwch ag anfon`` is itself a request ("do not send"): never read as a negation.
_NEGATION_EXEMPT = re.compile(r"^peidiwch")
_QUOTE_START = re.compile(
    r"^(>|on .{0,200} wrote:?$|ar .{0,200} ysgrifennodd|-{2,} ?original message ?-{2,}|-{5,}|_{5,}|"
    r"from: |sent: |oddi wrth: |-- ?$|--$|sent from my )",
)
_LINK = re.compile(r"https?://|www\.|\S@\S|mailto:", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|ateb|ymateb|atb)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]{0,2000}>", re.IGNORECASE | re.DOTALL)
_BLOCK_END = re.compile(r"</?(p|div|br|li|tr|h\d|blockquote)\b[^>]*>", re.IGNORECASE)


def asks_to_leave(msg: Message, subject: str) -> str:
    """The words by which ``msg`` asks to leave, or "" if it does not (see the module docstring)."""
    lines = first_lines(msg)
    subject_text = _normal(_REPLY_PREFIX.sub("", subject))
    for text in (subject_text, *lines[:1]):
        if text and _WORD_RE.fullmatch(text.strip(" .!")):
            return text.strip(" .!")[:120]
    for text in (subject_text, *lines):
        found = _phrase(text)
        if found:
            return found
    return ""


def first_lines(msg: Message) -> list[str]:
    """The first non-empty lines the person wrote, above any quotation or signature, normalised
    (lower case, one space, straight apostrophes); lines with a web or mail address left out."""
    out: list[str] = []
    for raw_line in _body(msg).splitlines():
        line = _normal(raw_line)
        if not line:
            continue
        if _QUOTE_START.match(line):
            break
        if _LINK.search(raw_line) or len(line) > MAX_LINE:
            continue
        out.append(line)
        if len(out) >= MAX_LINES:
            break
    return out


def _phrase(text: str) -> str:
    for found in _PHRASE_RE.finditer(text):
        before = text[: found.start()]
        if _NEGATION_RE.search(before) and not _NEGATION_EXEMPT.match(found.group(0)):
            continue
        return found.group(0)[:120]
    return ""


def _body(msg: Message) -> str:
    """The text of the first text/plain part, else of the first text/html part without its tags."""
    plain = html_part = None
    for part, _depth in walk(msg):
        if part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = part
        elif kind == "text/html" and html_part is None:
            html_part = part
    if plain is not None:
        return part_text(plain)[:20_000]
    if html_part is not None:
        text = part_text(html_part)[:100_000]
        text = re.split(r"<blockquote\b|<div[^>]*(gmail_quote|divRplyFwdMsg|moz-cite)", text, maxsplit=1)[0]
        return html.unescape(_TAG.sub(" ", _BLOCK_END.sub("\n", text)))[:20_000]
    return ""


def _normal(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    return " ".join(text.lower().split())
