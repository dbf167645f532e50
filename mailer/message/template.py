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

import hashlib
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from mailer.audience.addresses import clean_name
from mailer.errors import ConfigError, RenderError

#: The per-recipient markers a renderer may write, literally, in the text and HTML parts.
from mailer.message.encoding import (
    ADDR_RE,
    DOMAIN_RE,
    URL_RE,
    ChunkBuilder,
    addr_spec,
    address_header,
    checked_token,
    clean,
    encode_body,
    fold,
    normalise_text,
    phrase,
    qp_value,
    slug,
    unstructured_header,
    with_preheader,
)
from mailer.settings import Settings
from mailer.slots import SLOT_NAMES, unknown_markers
from mailer.tokens import LINK_PATHS, MAILTO_PREFIX

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
    return f"<d{int(delivery_id)}.{slug(campaign_slug, 'campaign')}@{list_domain}>"


def list_id(list_name: str, list_slug: str | None, list_domain: str) -> str:
    """The List-Id identifier: ``<list_slug>.<list_domain>`` (list_slug defaults from list_name)."""
    return f"{slug(list_slug or list_name, 'list').lower()}.{list_domain}"


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
        domain, base_url, from_addr, reply_addr = checked_settings(settings)
        for part, text in (("text", parts.text), ("html", parts.html)):
            unknown = unknown_markers(text)
            if unknown:
                raise RenderError(
                    f"unknown slot marker [[mailer:{unknown[0]}]] in the {part} part",
                    field=part,
                    hint="known slots: " + ", ".join(SLOT_NAMES),
                )
        text = normalise_text(parts.text)
        html_text = normalise_text(with_preheader(parts.html, parts.preheader))
        boundary = "=_mailer_" + hashlib.sha256((text + "\0" + html_text).encode()).hexdigest()[:24]
        org = clean_name(settings.organisation)
        mid = message_id(0, campaign_slug, domain)
        builder = ChunkBuilder()
        builder.static(address_header("From", org, from_addr))
        builder.slot("to")
        builder.static(address_header("Reply-To", org, reply_addr))
        builder.static(unstructured_header("Subject", clean_name(parts.subject)))
        builder.slot("date")
        builder.static("Message-ID: <d")
        builder.slot("delivery")
        builder.static(mid[mid.index(".") :] + "\r\nMIME-Version: 1.0\r\n")
        builder.static(
            fold("List-Id", [*phrase(clean_name(list_name)), f"<{list_id(list_name, list_slug, domain)}>"])
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
            encode_body(builder, body, prefix)
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
        addr = addr_spec(r.email)
        name = clean(r.name)
        token = checked_token(r.unsubscribe_token)
        texts = {
            "name": name or self._default_name,
            "email": addr,
            "unsubscribe_url": self._unsubscribe_prefix + token,
            "preferences_url": self._preferences_prefix + checked_token(r.preferences_token),
        }
        values = {
            "to": address_header("To", name, addr).encode("ascii"),
            "date": self._date(date),
            "delivery": b"%d" % r.delivery_id,
            "token": token.encode("ascii"),
        }
        for slot in self._text_slots:
            values["t:" + slot] = qp_value(texts[slot])
        for slot in self._html_slots:
            values["h:" + slot] = qp_value(html.escape(texts[slot]))
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


def checked_settings(settings: Settings) -> tuple[str, str, str, str]:
    domain = settings.list_domain.strip()
    if not DOMAIN_RE.fullmatch(domain):
        raise ConfigError(
            f"list_domain {domain!r} is not a domain name", field="list_domain", hint="e.g. lists.example.org"
        )
    base_url = settings.base_url.strip().rstrip("/")
    if not URL_RE.fullmatch(base_url) or len(base_url) > 300:
        raise ConfigError(
            f"base_url {base_url!r} is not an http(s) URL usable in mail headers",
            field="base_url",
            hint="e.g. https://news.example.org (ASCII, no spaces or quotes)",
        )
    addresses = []
    for field in ("from_address", "reply_to"):
        value = getattr(settings, field).strip() or settings.from_address.strip()
        if not (len(value) <= 254 and ADDR_RE.fullmatch(value)):
            raise ConfigError(
                f"{field} {value!r} is not an ASCII email address", field=field, hint="e.g. news@example.org"
            )
        addresses.append(value)
    return domain, base_url, addresses[0], addresses[1]
