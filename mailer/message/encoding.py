"""The wire encoding of messages: quoted-printable bodies whose slot markers sit on lines of their
own, RFC 5322 headers folded within 78 octets (RFC 2047 encoded words for non-ASCII), and the chunk
builder that turns both into static byte chunks with slots between them.

Every choice here serves :mod:`mailer.message.template`: see its docstring for why no encoded line
starts with a dot and why a filled value can be spliced in without re-encoding its neighbours.
"""

from __future__ import annotations

import base64
import functools
import html
import re

from mailer.audience.addresses import clean_name
from mailer.errors import InvalidInput, Problem
from mailer.slots import MARKER_PATTERN


class ChunkBuilder:
    """Collects static text, merging neighbours, and slot positions."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.slots: list[tuple[int, str]] = []
        self._pending: list[str] = []

    def static(self, text: str) -> None:
        self._pending.append(text)

    def slot(self, kind: str) -> None:
        self._flush()
        self.slots.append((len(self.chunks), kind))
        self.chunks.append(b"")  # filled per recipient

    def _flush(self) -> None:
        if self._pending:
            self.chunks.append("".join(self._pending).encode("ascii"))
            self._pending = []

    def finish(self) -> None:
        self._flush()


# -- quoted-printable ---------------------------------------------------------------------------------

_LITERAL = frozenset(chr(c) for c in range(33, 127)) - {"="}
_LINE_START_ESCAPED = {".": "=2E", "F": "=46"}
_MAX_QP = 75  # characters before the soft break's "=": 76 in all, as RFC 2045 allows
_SAFE_LINE = re.compile(r"[!-\-/-<>-EG-~](?:[ !-<>-~]{0,73}[!-<>-~])?")
_SAFE_VALUE = re.compile(r"[ !-\-/-<>-EG-~][ !-<>-~]{0,74}")
_PLAIN_RUN = re.compile(r"[ -~]+")  # printable ASCII


class QPWriter:
    """Quoted-printable encoding that wraps at 76 and never starts a line with "." or "F"."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.col = 0

    def write(self, text: str, *, eol: bool) -> None:
        if eol and self.col == 0 and _SAFE_LINE.fullmatch(text):
            self.out.append(text + "\r\n")
            return
        last = len(text) - 1
        # Runs of characters written as they are (a space only when it does not end the line)
        # are cut into lines a slice at a time; every other character is encoded one by one.
        end = last if eol and text.endswith(" ") else len(text)
        pos = 0
        while pos <= last:
            run = _PLAIN_RUN.match(text, pos, end)
            if run is not None:
                self._plain(run.group())
                pos = run.end()
                continue
            self._char(text[pos], eol and pos == last)
            pos += 1
        if eol:
            self.out.append("\r\n")
            self.col = 0

    def _plain(self, run: str) -> None:
        """Printable ASCII, wrapped as ``_char`` would wrap it one character at a time: each "="
        is written "=3D", and what lies between is written a slice at a time."""
        for n, part in enumerate(run.split("=")):
            if n:
                if self.col > _MAX_QP - 3:
                    self.out.append("=\r\n")
                    self.col = 0
                self.out.append("=3D")
                self.col += 3
            if part:
                self._literal(part)

    def _literal(self, run: str) -> None:
        out, col, at, size = self.out, self.col, 0, len(run)
        while at < size:
            if col >= _MAX_QP:
                out.append("=\r\n")
                col = 0
            if col == 0 and run[at] in _LINE_START_ESCAPED:
                out.append(_LINE_START_ESCAPED[run[at]])
                col, at = 3, at + 1
                continue
            take = min(_MAX_QP - col, size - at)
            out.append(run[at : at + take])
            col, at = col + take, at + take
        self.col = col

    def _char(self, ch: str, line_end: bool) -> None:
        if ch in _LITERAL:
            token = ch
        elif ch == " " and not line_end:
            token = " "
        else:
            token = "".join(f"={b:02X}" for b in ch.encode("utf-8"))
        if self.col + len(token) > _MAX_QP:
            self.out.append("=\r\n")
            self.col = 0
        if self.col == 0 and token in _LINE_START_ESCAPED:
            token = _LINE_START_ESCAPED[token]
        self.out.append(token)
        self.col += len(token)

    def soft_break(self) -> None:
        if self.col:
            self.out.append("=\r\n")
            self.col = 0

    def take(self) -> str:
        text = "".join(self.out)
        self.out = []
        return text


def encode_body(builder: ChunkBuilder, body: str, prefix: str) -> None:
    """Encode ``body`` into ``builder``, each marker becoming a slot on encoded lines of its own."""
    for line in body.split("\n")[:-1]:  # the body ends with "\n"
        pieces = MARKER_PATTERN.split(line)
        for i in range(0, len(pieces) - 1, 2):
            builder.static(_encoded(pieces[i], False))
            builder.slot(prefix + pieces[i + 1])
        builder.static(_encoded(pieces[-1], True))


@functools.lru_cache(maxsize=16384)
def _encoded(text: str, eol: bool) -> str:
    """``text`` encoded from the start of a line, then a line break (``eol``) or a soft break.

    Every piece of a body starts at the start of a line (after a line break, or after the soft break
    before a slot), so this is a function of the piece alone, and the variants of an issue, which
    share most of their lines, encode each once."""
    writer = QPWriter()
    writer.write(text, eol=eol)
    if not eol:
        writer.soft_break()
    return writer.take()


def qp_value(text: str) -> bytes:
    """A slot value as quoted-printable lines that each end with a soft line break."""
    if _SAFE_VALUE.fullmatch(text):
        return text.encode("ascii") + b"=\r\n"
    if not text:
        return b""
    writer = QPWriter()
    writer.write(text, eol=False)
    writer.soft_break()
    return writer.take().encode("ascii")


# -- headers ----------------------------------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ATOM = re.compile(rf"{_ATEXT}+")
_ATOM_PHRASE = re.compile(rf"{_ATEXT}+(?: {_ATEXT}+)*")
_QUOTABLE = re.compile(r"[ -~]+")
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_LOCAL = r'"(?:[ !#-\[\]-~]|\\[ -~])*"'
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})+"
ADDR_RE = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED_LOCAL})@{_DOMAIN}")
DOMAIN_RE = re.compile(_DOMAIN)
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")
URL_RE = re.compile(r"https?://[!#-;=?-~]+")  # printable ASCII without space, quotes and angle brackets
_EW_BYTES = 42  # 56 base64 characters: encoded words of 68, so "Reply-To: " + one fits 78


def clean(name: str) -> str:
    """``clean_name``, faster for the usual name that has no control or separator characters."""
    if name.isprintable():
        return " ".join(name.split())
    return clean_name(name)


def addr_spec(address: str) -> str:
    if len(address) <= 254 and ADDR_RE.fullmatch(address):
        return address
    if not address.isascii():
        reason = "it is not ASCII, and a non-ASCII local part needs SMTPUTF8, which mailer does not use"
    else:
        reason = "it is not a valid address (dot-atom or quoted local part, and a domain)"
    raise InvalidInput(
        [
            Problem(
                f"cannot send to {address!r}: {reason}",
                field="email",
                hint="correct the member's address, or remove the member",
            )
        ]
    )


def checked_token(token: str) -> str:
    if not TOKEN_RE.fullmatch(token):
        raise InvalidInput([Problem(f"not a link token: {token[:40]!r}", field="token")])
    return token


def encoded_words(text: str) -> list[str]:
    words = []
    chunk = bytearray()
    for ch in text:
        data = ch.encode("utf-8")
        if len(chunk) + len(data) > _EW_BYTES:
            words.append(bytes(chunk))
            chunk = bytearray()
        chunk += data
    words.append(bytes(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words]


def phrase(name: str) -> list[str]:
    """A display name as header words that folding may separate: atoms, a quoted string cut at its
    spaces, or, when the name has non-ASCII text or ``=?``, atoms mixed with RFC 2047 encoded words
    for each run of words that are not atoms (spaces inside a run are encoded with it)."""
    if not name:
        return []
    words = name.split(" ")
    if "=?" not in name and all(len(w) <= 70 for w in words):
        if _ATOM_PHRASE.fullmatch(name):
            return words
        if _QUOTABLE.fullmatch(name):
            pieces = name.replace("\\", "\\\\").replace('"', '\\"').split(" ")
            pieces[0] = '"' + pieces[0]
            pieces[-1] += '"'
            return pieces
    out: list[str] = []
    run: list[str] = []
    for word in words:
        if len(word) <= 70 and "=?" not in word and _ATOM.fullmatch(word):
            if run:
                out += encoded_words(" ".join(run))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out += encoded_words(" ".join(run))
    return out


def fold(label: str, words: list[str]) -> str:
    """A header of ``words`` separated by spaces, folded before a word that would pass 78 octets."""
    lines = []
    line = label + ":"
    for word in words:
        if len(line) + 1 + len(word) > 78 and line != label + ":":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def address_header(label: str, name: str, addr: str) -> str:
    if not name:
        return f"{label}: {addr}\r\n"
    line = f"{label}: {name} <{addr}>"
    if len(line) <= 78 and _ATOM_PHRASE.fullmatch(name) and "=?" not in name:
        return line + "\r\n"
    return fold(label, [*phrase(name), f"<{addr}>"])


def unstructured_header(label: str, text: str) -> str:
    words = text.split(" ") if text else []
    if _QUOTABLE.fullmatch(text) and "=?" not in text and all(len(w) <= 70 for w in words):
        return fold(label, words)
    return fold(label, encoded_words(text) if text else [])


# -- content ----------------------------------------------------------------------------------------

_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_PREHEADER_STYLE = (
    "display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;"
    "overflow:hidden;mso-hide:all"
)


def with_preheader(html_text: str, preheader: str) -> str:
    if not preheader:
        return html_text
    block = f'<div style="{_PREHEADER_STYLE}">{html.escape(preheader)}</div>'
    match = _BODY_OPEN.search(html_text)
    at = match.end() if match else 0
    return html_text[:at] + block + html_text[at:]


def normalise_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def slug(text: str, default: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or default
