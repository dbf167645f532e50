"""Messages: MIME built once per variant, per-recipient slots filled in by splicing bytes.

``MessageTemplate.build`` encodes a variant's subject, text and HTML once into ready-to-send bytes
with holes ("slots") for what differs per recipient: the To header, Date, the delivery id in the
Message-ID, the unsubscribe token in List-Unsubscribe, and the body markers ``[[mailer:name]]``,
``[[mailer:email]]``, ``[[mailer:unsubscribe_url]]`` and ``[[mailer:preferences_url]]``.
``template.fill(recipient)`` then costs a few microseconds: it encodes only the short per-recipient
values and joins precomputed byte chunks.

The layout (CRLF line endings, 7-bit, no line over 78 octets except a long address in To)::

    [DKIM-Signature]  From  To  Reply-To  Subject  Date  Message-ID  MIME-Version  List-Id
    List-Unsubscribe  List-Unsubscribe-Post  Content-Type: multipart/alternative
      text/plain; charset="utf-8", quoted-printable
      text/html; charset="utf-8", quoted-printable

Both bodies are quoted-printable (RFC 2045), with two choices that make the splicing sound:

- every slot marker sits on encoded lines of its own: the template forces a soft line break
  (``=`` CRLF) before each marker, and each filled value is encoded into lines that each end with a
  soft break, so a value of any length can be spliced in without re-encoding its neighbours;
- no encoded line ever starts with ``.`` (nor with ``F``, against mbox "From " mangling): a line
  starting so writes it as ``=2E`` (``=46``). Header lines start with a name or white space and
  MIME boundaries with ``--``, so **no line of a filled message starts with a dot**: the
  dot-stuffed SMTP DATA payload is the message followed by ``.`` CRLF, which is what
  ``fill_wire`` returns, with nothing to scan or stuff per recipient.

Values are escaped for HTML (``html.escape``) in the HTML part and inserted as they are in the text
part. Names and the subject are cleaned of control characters (CR and LF included: they become a
space), so they can never start a header; non-ASCII names and subjects are RFC 2047 encoded words.
Addresses must be ASCII (a non-ASCII local part would need SMTPUTF8, which mailer does not use):
dot-atom or quoted local parts, such as ``jo+news@example.org`` or ``"john smith"@example.org``.

The envelope sender is the VERP address ``bounces+<delivery id>@<list domain>``
(``template.return_path(recipient)``); no Return-Path header is written (the receiving server adds
it). ``reference_message`` builds the same message with the ``email`` package, for tests.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from mailer.audience.addresses import clean_name
from mailer.errors import ConfigError, InvalidInput, Problem, RenderError
from mailer.settings import Settings
from mailer.slots import MARKER_PATTERN, SLOT_NAMES, fill_slots, unknown_markers
from mailer.tokens import LINK_PATHS, MAILTO_PREFIX

#: The per-recipient markers a renderer may write, literally, in the text and HTML parts.

VERP_PREFIX = "bounces+"
#: Headers the DKIM signature covers; those in DKIM_OVERSIGNED are signed once more than they occur,
#: so that nobody can add a second one without breaking the signature.
DKIM_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
DKIM_OVERSIGNED = (
    "From",
    "To",
    "Subject",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


@dataclass(frozen=True)
class MessageParts:
    """One variant's content, as the renderer produced it, with slot markers in ``text`` and ``html``.

    ``preheader``, when given, goes into a hidden block at the start of the HTML body (leave it empty
    when the HTML already has one, e.g. from ``<mj-preview>``).
    """

    subject: str
    text: str
    html: str
    preheader: str = ""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One delivery's personal values. ``email`` is the address as stored (normalised)."""

    delivery_id: int
    member_id: int
    email: str
    name: str
    unsubscribe_token: str
    preferences_token: str


@dataclass(frozen=True)
class DkimKey:
    """A DKIM signing key: ``private_key`` is PEM (PKCS#1 or PKCS#8) for rsa-sha256, or the base64
    seed for ed25519-sha256; the public key is published at ``{selector}._domainkey.{domain}``."""

    selector: str
    domain: str
    private_key: bytes
    algorithm: str = "rsa-sha256"


# -- small public helpers ---------------------------------------------------------------------------


def verp_address(delivery_id: int, list_domain: str) -> str:
    """The envelope sender naming a delivery: ``bounces+<delivery_id>@<list_domain>``."""
    return f"{VERP_PREFIX}{int(delivery_id)}@{list_domain}"


def delivery_id_from_verp(address: str, list_domain: str) -> int | None:
    """The delivery id in a VERP address (any case, with or without angle brackets), or None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if domain.lower() != list_domain.lower() or not local.lower().startswith(VERP_PREFIX):
        return None
    digits = local[len(VERP_PREFIX) :]
    return int(digits) if digits.isascii() and digits.isdigit() else None


def message_id(delivery_id: int, campaign_slug: str, list_domain: str) -> str:
    """The Message-ID of a delivery, stable across retries and resumed sends."""
    return f"<d{int(delivery_id)}.{_slug(campaign_slug, 'campaign')}@{list_domain}>"


def list_id(list_name: str, list_slug: str | None, list_domain: str) -> str:
    """The List-Id identifier: ``<list_slug>.<list_domain>`` (list_slug defaults from list_name)."""
    return f"{_slug(list_slug or list_name, 'list').lower()}.{list_domain}"


# -- the template -----------------------------------------------------------------------------------


class MessageTemplate:
    """A variant's message, encoded once, with slots filled per recipient. Build with ``build``."""

    def __init__(
        self,
        chunks: list[bytes],
        slots: list[tuple[int, str]],
        *,
        list_domain: str,
        base_url: str,
        default_name: str,
        dkim: DkimKey | None,
    ) -> None:
        self._chunks = chunks
        self._slots = slots
        kinds = {kind for _, kind in slots}
        self._text_slots = [name for name in SLOT_NAMES if "t:" + name in kinds]
        self._html_slots = [name for name in SLOT_NAMES if "h:" + name in kinds]
        self._list_domain = list_domain
        self._unsubscribe_prefix = base_url + LINK_PATHS["unsubscribe"]
        self._preferences_prefix = base_url + LINK_PATHS["preferences"]
        self._default_name = default_name
        self._dkim = dkim
        self._dkim_headers = [h.lower().encode() for h in (*DKIM_HEADERS, *DKIM_OVERSIGNED)]
        self._date_second = -1
        self._date_line = b""

    @classmethod
    def build(
        cls,
        parts: MessageParts,
        *,
        settings: Settings,
        campaign_slug: str,
        list_name: str,
        list_slug: str | None = None,
        default_name: str = "",
        dkim: DkimKey | None = None,
    ) -> MessageTemplate:
        """Encode ``parts`` once. ``campaign_slug`` goes into Message-IDs; ``list_name`` and
        ``list_slug`` (default: from the name) make ``List-Id: list_name <list_slug.list_domain>``;
        ``default_name`` fills ``[[mailer:name]]`` for a member without a name. Raises ConfigError
        for unusable settings (addresses, list domain, base URL, DKIM key) and RenderError for an
        unknown slot marker."""
        domain, base_url, from_addr, reply_addr = _checked_settings(settings)
        for part, text in (("text", parts.text), ("html", parts.html)):
            unknown = unknown_markers(text)
            if unknown:
                raise RenderError(
                    f"unknown slot marker [[mailer:{unknown[0]}]] in the {part} part",
                    field=part,
                    hint="known slots: " + ", ".join(SLOT_NAMES),
                )
        text = _normalise_text(parts.text)
        html_text = _normalise_text(_with_preheader(parts.html, parts.preheader))
        boundary = "=_mailer_" + hashlib.sha256((text + "\0" + html_text).encode()).hexdigest()[:24]
        org = clean_name(settings.organisation)
        mid = message_id(0, campaign_slug, domain)
        builder = _ChunkBuilder()
        builder.static(_address_header("From", org, from_addr))
        builder.slot("to")
        builder.static(_address_header("Reply-To", org, reply_addr))
        builder.static(_unstructured_header("Subject", clean_name(parts.subject)))
        builder.slot("date")
        builder.static("Message-ID: <d")
        builder.slot("delivery")
        builder.static(mid[mid.index(".") :] + "\r\nMIME-Version: 1.0\r\n")
        builder.static(
            _fold("List-Id", [*_phrase(clean_name(list_name)), f"<{list_id(list_name, list_slug, domain)}>"])
        )
        builder.static(f"List-Unsubscribe: <{base_url}{LINK_PATHS['unsubscribe']}")
        builder.slot("token")
        builder.static(f">,\r\n <mailto:{MAILTO_PREFIX}")
        builder.slot("token")
        builder.static(f"@{domain}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        builder.static(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n')
        # Each body ends with CRLF; the CRLF before a boundary belongs to the boundary (RFC 2046).
        for prefix, subtype, body in (("t:", "plain", text), ("h:", "html", html_text)):
            builder.static(
                f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            )
            _encode_body(builder, body, prefix)
            builder.static("\r\n")
        builder.static(f"--{boundary}--\r\n")
        builder.finish()
        template = cls(
            builder.chunks,
            builder.slots,
            list_domain=domain,
            base_url=base_url,
            default_name=clean_name(default_name),
            dkim=dkim,
        )
        template._check_invariants()
        if dkim is not None:
            template._check_dkim()
        return template

    # -- per recipient ------------------------------------------------------------------------------

    def fill(self, recipient: Recipient, *, date: datetime | None = None) -> bytes:
        """The message for ``recipient``: CRLF line endings, ready for SMTP DATA before dot-stuffing.

        ``date`` (aware) sets the Date header; by default the current second. Raises InvalidInput for
        an address mailer cannot send to or a token that is not a token."""
        out = self._assemble(recipient, date)
        message = b"".join(out)
        return self._sign(message) + message if self._dkim is not None else message

    def fill_wire(self, recipient: Recipient, *, date: datetime | None = None) -> bytes:
        """The SMTP DATA payload for ``recipient``: the filled message, dot-stuffed, ending with
        CRLF ``.`` CRLF. Write it to the socket after the server's 354 reply."""
        out = self._assemble(recipient, date)
        if self._dkim is not None:
            out.insert(0, self._sign(b"".join(out)))
        out.append(b".\r\n")
        return b"".join(out)

    def return_path(self, recipient: Recipient) -> str:
        """The envelope sender (MAIL FROM) for ``recipient``: ``bounces+<delivery id>@list domain``."""
        return verp_address(recipient.delivery_id, self._list_domain)

    # -- internals ----------------------------------------------------------------------------------

    def _assemble(self, r: Recipient, date: datetime | None) -> list[bytes]:
        addr = _addr_spec(r.email)
        name = _clean(r.name)
        token = _token(r.unsubscribe_token)
        texts = {
            "name": name or self._default_name,
            "email": addr,
            "unsubscribe_url": self._unsubscribe_prefix + token,
            "preferences_url": self._preferences_prefix + _token(r.preferences_token),
        }
        values = {
            "to": _address_header("To", name, addr).encode("ascii"),
            "date": self._date(date),
            "delivery": b"%d" % r.delivery_id,
            "token": token.encode("ascii"),
        }
        for slot in self._text_slots:
            values["t:" + slot] = _qp_value(texts[slot])
        for slot in self._html_slots:
            values["h:" + slot] = _qp_value(html.escape(texts[slot]))
        out = self._chunks.copy()
        for position, kind in self._slots:
            out[position] = values[kind]
        return out

    def _date(self, date: datetime | None) -> bytes:
        if date is not None:
            return f"Date: {format_datetime(date.astimezone(UTC))}\r\n".encode("ascii")
        now = datetime.now(UTC).replace(microsecond=0)
        second = int(now.timestamp())
        if second != self._date_second:
            self._date_line = f"Date: {format_datetime(now)}\r\n".encode("ascii")
            self._date_second = second
        return self._date_line

    def _sign(self, message: bytes) -> bytes:
        import dkim  # dkimpy: imported only when signing

        assert self._dkim is not None
        key = self._dkim
        signature: bytes = dkim.sign(
            message,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            key.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=key.algorithm.encode("ascii"),
            include_headers=self._dkim_headers,
        )
        return signature

    def _check_dkim(self) -> None:
        sample = Recipient(0, 0, "check@example.org", "", "a" * 21, "a" * 21)
        try:
            self._sign(b"".join(self._assemble(sample, None)))
        except Exception as exc:  # dkimpy raises several kinds for a bad key
            raise ConfigError(
                f"cannot sign with the DKIM key: {exc}",
                field="dkim",
                hint="give a PEM RSA private key (or an ed25519 seed with algorithm ed25519-sha256)",
            ) from exc

    def _check_invariants(self) -> None:
        """No line of a filled message may start with a dot: see the module's docstring."""
        mid_line = {position + 1 for position, kind in self._slots if kind in ("delivery", "token")}
        for position, chunk in enumerate(self._chunks):
            if b"\n." in chunk or (chunk.startswith(b".") and position not in mid_line):
                raise AssertionError("an encoded message line starts with a dot")


class _ChunkBuilder:
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


class _QPWriter:
    """Quoted-printable encoding that wraps at 76 and never starts a line with "." or "F"."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.col = 0

    def write(self, text: str, *, eol: bool) -> None:
        if eol and self.col == 0 and _SAFE_LINE.fullmatch(text):
            self.out.append(text + "\r\n")
            return
        last = len(text) - 1
        for i, ch in enumerate(text):
            if ch in _LITERAL:
                token = ch
            elif ch == " " and not (eol and i == last):
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
        if eol:
            self.out.append("\r\n")
            self.col = 0

    def soft_break(self) -> None:
        if self.col:
            self.out.append("=\r\n")
            self.col = 0

    def take(self) -> str:
        text = "".join(self.out)
        self.out = []
        return text


def _encode_body(builder: _ChunkBuilder, body: str, prefix: str) -> None:
    """Encode ``body`` into ``builder``, each marker becoming a slot on encoded lines of its own."""
    writer = _QPWriter()
    for line in body.split("\n")[:-1]:  # the body ends with "\n"
        pieces = MARKER_PATTERN.split(line)
        for i in range(0, len(pieces) - 1, 2):
            writer.write(pieces[i], eol=False)
            writer.soft_break()
            builder.static(writer.take())
            builder.slot(prefix + pieces[i + 1])
        writer.write(pieces[-1], eol=True)
    builder.static(writer.take())


def _qp_value(text: str) -> bytes:
    """A slot value as quoted-printable lines that each end with a soft line break."""
    if _SAFE_VALUE.fullmatch(text):
        return text.encode("ascii") + b"=\r\n"
    if not text:
        return b""
    writer = _QPWriter()
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
_ADDR_RE = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED_LOCAL})@{_DOMAIN}")
_DOMAIN_RE = re.compile(_DOMAIN)
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_URL_RE = re.compile(r"https?://[!#-;=?-~]+")  # printable ASCII without space, quotes and angle brackets
_EW_BYTES = 42  # 56 base64 characters: encoded words of 68, so "Reply-To: " + one fits 78


def _clean(name: str) -> str:
    """``clean_name``, faster for the usual name that has no control or separator characters."""
    if name.isprintable():
        return " ".join(name.split())
    return clean_name(name)


def _addr_spec(address: str) -> str:
    if len(address) <= 254 and _ADDR_RE.fullmatch(address):
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


def _token(token: str) -> str:
    if not _TOKEN_RE.fullmatch(token):
        raise InvalidInput([Problem(f"not a link token: {token[:40]!r}", field="token")])
    return token


def _encoded_words(text: str) -> list[str]:
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


def _phrase(name: str) -> list[str]:
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
                out += _encoded_words(" ".join(run))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out += _encoded_words(" ".join(run))
    return out


def _fold(label: str, words: list[str]) -> str:
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


def _address_header(label: str, name: str, addr: str) -> str:
    if not name:
        return f"{label}: {addr}\r\n"
    line = f"{label}: {name} <{addr}>"
    if len(line) <= 78 and _ATOM_PHRASE.fullmatch(name) and "=?" not in name:
        return line + "\r\n"
    return _fold(label, [*_phrase(name), f"<{addr}>"])


def _unstructured_header(label: str, text: str) -> str:
    words = text.split(" ") if text else []
    if _QUOTABLE.fullmatch(text) and "=?" not in text and all(len(w) <= 70 for w in words):
        return _fold(label, words)
    return _fold(label, _encoded_words(text) if text else [])


# -- content ----------------------------------------------------------------------------------------

_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_PREHEADER_STYLE = (
    "display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;"
    "overflow:hidden;mso-hide:all"
)


def _with_preheader(html_text: str, preheader: str) -> str:
    if not preheader:
        return html_text
    block = f'<div style="{_PREHEADER_STYLE}">{html.escape(preheader)}</div>'
    match = _BODY_OPEN.search(html_text)
    at = match.end() if match else 0
    return html_text[:at] + block + html_text[at:]


def _normalise_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _slug(text: str, default: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or default


def _checked_settings(settings: Settings) -> tuple[str, str, str, str]:
    domain = settings.list_domain.strip()
    if not _DOMAIN_RE.fullmatch(domain):
        raise ConfigError(
            f"list_domain {domain!r} is not a domain name", field="list_domain", hint="e.g. lists.example.org"
        )
    base_url = settings.base_url.strip().rstrip("/")
    if not _URL_RE.fullmatch(base_url) or len(base_url) > 300:
        raise ConfigError(
            f"base_url {base_url!r} is not an http(s) URL usable in mail headers",
            field="base_url",
            hint="e.g. https://news.example.org (ASCII, no spaces or quotes)",
        )
    addresses = []
    for field in ("from_address", "reply_to"):
        value = getattr(settings, field).strip() or settings.from_address.strip()
        if not (len(value) <= 254 and _ADDR_RE.fullmatch(value)):
            raise ConfigError(
                f"{field} {value!r} is not an ASCII email address", field=field, hint="e.g. news@example.org"
            )
        addresses.append(value)
    return domain, base_url, addresses[0], addresses[1]


# -- the reference ------------------------------------------------------------------------------------


def reference_message(
    parts: MessageParts,
    recipient: Recipient,
    *,
    settings: Settings,
    campaign_slug: str,
    list_name: str,
    list_slug: str | None = None,
    default_name: str = "",
    date: datetime | None = None,
) -> EmailMessage:
    """The message ``MessageTemplate.build(...).fill(recipient)`` stands for, built the ordinary way
    with the ``email`` package (for tests and as the benchmark's baseline)."""
    domain, base_url, from_addr, reply_addr = _checked_settings(settings)
    org = clean_name(settings.organisation)
    name = clean_name(recipient.name)
    unsubscribe = base_url + LINK_PATHS["unsubscribe"] + recipient.unsubscribe_token
    values = {
        "name": name or clean_name(default_name),
        "email": recipient.email,
        "unsubscribe_url": unsubscribe,
        "preferences_url": base_url + LINK_PATHS["preferences"] + recipient.preferences_token,
    }

    msg = EmailMessage()
    msg["From"] = Address(display_name=org, addr_spec=from_addr)
    msg["To"] = Address(display_name=name, addr_spec=recipient.email)
    msg["Reply-To"] = Address(display_name=org, addr_spec=reply_addr)
    msg["Subject"] = clean_name(parts.subject)
    msg["Date"] = (date or datetime.now(UTC)).astimezone(UTC)
    msg["Message-ID"] = message_id(recipient.delivery_id, campaign_slug, domain)
    msg["List-Id"] = f"{clean_name(list_name)} <{list_id(list_name, list_slug, domain)}>"
    msg["List-Unsubscribe"] = (
        f"<{unsubscribe}>, <mailto:{MAILTO_PREFIX}{recipient.unsubscribe_token}@{domain}>"
    )
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(fill_slots(_normalise_text(parts.text), values, html=False))
    msg.add_alternative(
        fill_slots(_normalise_text(_with_preheader(parts.html, parts.preheader)), values, html=True),
        subtype="html",
    )
    return msg
