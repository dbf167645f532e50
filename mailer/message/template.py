"""Messages: MIME built once per variant, per-recipient slots filled in by splicing bytes.

``MessageTemplate.build`` encodes a variant's subject, text and HTML once into ready-to-send bytes
with holes ("slots") for what differs per recipient: the To header, Date, the delivery's signed tag in
the Message-ID, the unsubscribe token in List-Unsubscribe, and the body markers ``[[mailer:greeting]]``
("Dear Jo," or, without a name, "Hello,": the ``greeting`` settings), ``[[mailer:name]]``,
``[[mailer:email]]``, ``[[mailer:unsubscribe_url]]``, ``[[mailer:preferences_url]]`` and
``[[mailer:rsvp_token]]`` (in each event's RSVP link).
``template.fill(recipient)`` then costs a few microseconds: it encodes only the short per-recipient
values and joins precomputed byte chunks. With DKIM keys, each message also gets one signature per
key, prepared once per variant (:mod:`mailer.message.dkim`).

The layout (CRLF line endings, 7-bit, no line over 78 octets except a long address in To, a
Message-ID with a long campaign slug or list domain (not folded: some readers keep the folding white
space in the id), or a Feedback-ID over 77 characters, from long slugs, which has a line of its own)::

    [DKIM-Signature rsa-sha256]  [DKIM-Signature ed25519-sha256]
    From  To  Reply-To  Subject  Date  Message-ID  MIME-Version  List-Id  List-Unsubscribe
    List-Unsubscribe-Post  List-Help  List-Archive  Feedback-ID  Content-Type: multipart/alternative
      text/plain; charset="utf-8", quoted-printable
      text/html; charset="utf-8", quoted-printable

A delivery's Message-ID is ``<d<id>-<mac>.<campaign slug>@<list domain>>``: the same signed tag as
its envelope sender (below), so that a bounce quoting the returned message's Message-ID proves, like
the envelope sender, that it answers a message we sent (``mailer.inbound.evidence``). The tag has no
time in it, so the Message-ID is the same at every retry (a retry after the newest key was rotated
gets the new key's tag, as its envelope sender does). A delivery id of 0 or below is a test send:
its Message-ID gets a random part instead (``<d<id>.<random>.<slug>@…>``), so that each test is a new
message to the receiving client. An http:// base_url outside localhost is refused
(``checked_settings``): one-click unsubscribe needs https (RFC 8058).

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

The envelope sender is the signed VERP address ``bounces+<delivery id>-<mac>@<list domain>``
(``template.return_path(recipient)``, see ``mailer.tokens.verp_tag``: one truncated HMAC per
recipient, with the key the template took from the settings at build time), so that a bounce can
prove it answers a message we sent; no Return-Path header is written (the receiving server adds it).
A caller that has made the tag already (``BatchFiller``, with ``RecipientSigner.verp_tag``) gives it
in ``Recipient.verp_tag``, and the message and its return path use it: one HMAC per message for both.
``reference_message`` builds the same message with the ``email`` package, for tests.
"""

from __future__ import annotations

import hashlib
import html
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from mailer.audience.addresses import clean_name
from mailer.errors import ConfigError, RenderError
from mailer.message.dkim import DkimKey, SigningPlan, signer_for

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
from mailer.slots import SLOT_NAMES, greeting_for, unknown_markers
from mailer.tokens import LINK_PATHS, MAILTO_PREFIX, VERP_PREFIX, read_verp, verp_tag

#: Headers the DKIM signature covers; those in DKIM_OVERSIGNED are signed once more than they occur,
#: so that nobody can add a second one without breaking the signature. Sender and Cc are not in the
#: message: signed as absent, adding one breaks it too (RFC 6376 5.4.2 and 8.15: a reader that shows
#: the first Date, Content-Type or Sender would otherwise show one the signature never covered).
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
    "List-Help",
    "List-Archive",
    "Feedback-ID",
)
DKIM_OVERSIGNED = (*DKIM_HEADERS, "Sender", "Cc")
#: What a campaign message is (the issue's ``kind``), named in its Feedback-ID.
KINDS = ("newsletter", "alert", "digest")
#: Hosts where an http:// base_url is fine (the web app on this machine: demos and tests).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Slots that are whole header fields (the DKIM signer canonicalises them per message).
_WHOLE_FIELDS = {"to": "To", "date": "Date"}


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


@dataclass(slots=True)
class Recipient:
    """One delivery's personal values. ``email`` is the address as stored (normalised). Not frozen,
    though nothing changes one: one is made per message, and a frozen dataclass costs five times
    as much to make.

    ``verp_tag``, when given, must be the delivery's signed tag, ``verp_tag(delivery_id, list domain,
    keys=settings.secrets)`` (``RecipientSigner.verp_tag`` makes the same): the Message-ID and the
    return path use it; "" makes the template sign it (one more HMAC)."""

    delivery_id: int
    member_id: int
    email: str
    name: str
    unsubscribe_token: str
    preferences_token: str
    verp_tag: str = ""
    first_name: str = ""  # the greeting's name ("" greets "Hello,"); ``name`` is the To: header's
    rsvp_token: str = ""  # for RSVP links (``MessageTemplate.has_rsvp``); "" links to the public page


# -- small public helpers ---------------------------------------------------------------------------


def verp_address(delivery_id: int, list_domain: str, *, keys: list[str]) -> str:
    """The signed envelope sender naming a delivery: ``bounces+<delivery_id>-<mac>@<list_domain>``.
    Test copies (delivery id 0 or below) name delivery 0, which is never a delivery."""
    return f"{VERP_PREFIX}{verp_tag(max(int(delivery_id), 0), list_domain, keys=keys)}@{list_domain}"


def delivery_id_from_verp(address: str, list_domain: str, *, keys: list[str]) -> int | None:
    """The delivery id of a VERP address whose signature one of ``keys`` verifies (any case, with or
    without angle brackets), or None: an unsigned or forged one names nothing."""
    tag = read_verp(address, list_domain, keys=keys)
    return tag.delivery_id if tag is not None and tag.verified else None


def message_id(delivery_id: int, campaign_slug: str, list_domain: str, *, keys: list[str]) -> str:
    """The Message-ID of a delivery, ``<d<id>-<mac>.<slug>@<list domain>>`` with its VERP tag signed
    with ``keys[0]``: stable across retries and resumed sends (the tag holds no time), and proof, in a
    returned message, that the bounce answers a message we sent."""
    return f"<d{verp_tag(delivery_id, list_domain, keys=keys)}{_message_id_tail(campaign_slug, list_domain)}"


def _message_id_tail(campaign_slug: str, list_domain: str) -> str:
    """What follows the tag in a Message-ID: ``.<campaign slug>@<list domain>>``."""
    return f".{slug(campaign_slug, 'campaign')}@{list_domain}>"


def list_id(list_name: str, list_slug: str | None, list_domain: str) -> str:
    """The List-Id identifier: ``<list_slug>.<list_domain>`` (list_slug defaults from list_name)."""
    return f"{slug(list_slug or list_name, 'list').lower()}.{list_domain}"


def feedback_id(
    campaign_slug: str, kind: str, list_name: str, list_slug: str | None, from_address: str
) -> str:
    """Gmail's Feedback-ID, ``<campaign>:<kind>:<network>:<sender>`` (three identifiers, then the
    sender's): complaint rates per campaign, per kind (newsletter or alert: a network's alerts and
    its newsletter are judged apart) and per network (the List-Id slug) in Postmaster Tools; the
    sender is the From address's domain."""
    if kind not in KINDS:
        raise ValueError(f"a campaign message is one of {', '.join(KINDS)}, not {kind!r}")
    network = slug(list_slug or list_name, "list").lower()
    sender = from_address.rpartition("@")[2].lower()
    return f"{slug(campaign_slug, 'campaign')}:{kind}:{network}:{sender}"


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
        dkim: Sequence[DkimKey] = (),
        verp_keys: list[str] | None = None,
        greetings: tuple[str, str] = ("Dear {name},", "Hello,"),
    ) -> None:
        self._chunks = chunks
        self._slots = slots
        kinds = {kind for _, kind in slots}
        # Per body slot: (name, in the text part, in the HTML part); the links with their prefixes.
        self._value_slots = [
            (name, "t:" + name in kinds, "h:" + name in kinds)
            for name in ("greeting", "name", "email")
            if "t:" + name in kinds or "h:" + name in kinds
        ]
        prefixes = {
            "unsubscribe_url": base_url + LINK_PATHS["unsubscribe"],
            "preferences_url": base_url + LINK_PATHS["preferences"],
        }
        # Per link slot: its name, then per part (text, HTML) the slot's key and the link's prefix,
        # for the parts that have it. A token is letters, digits, "_" and "-": escaping a link
        # escapes its prefix alone, and a link of a safe prefix and a token is its own encoding.
        self._link_slots = [
            (
                name,
                [
                    (part + name, p)
                    for part, p in (("t:", prefix), ("h:", html.escape(prefix)))
                    if part + name in kinds
                ],
            )
            for name, prefix in prefixes.items()
            if "t:" + name in kinds or "h:" + name in kinds
        ]
        # The RSVP token, repeated in each event's link: made only when the variant has events.
        self._rsvp_slots = [key for key in ("t:rsvp_token", "h:rsvp_token") if key in kinds]
        known = {"greeting", "name", "email", "rsvp_token", *prefixes}
        assert set(SLOT_NAMES) == known, "a slot with no value"
        self._list_domain = list_domain
        self._verp_keys = list(verp_keys or [])
        self._default_name = default_name
        self._greetings = greetings
        self._nameless = greetings[1]
        self._date_second = -1
        self._date_line = b""
        self._signing: SigningPlan | None = None
        if dkim:
            whole = {position: _WHOLE_FIELDS[kind] for position, kind in slots if kind in _WHOLE_FIELDS}
            signers = [signer_for(key) for key in dkim]
            self._signing = SigningPlan(signers, chunks, slots, whole, DKIM_HEADERS, DKIM_OVERSIGNED)

    @classmethod
    def build(
        cls,
        parts: MessageParts,
        *,
        settings: Settings,
        campaign_slug: str,
        kind: str,
        list_name: str,
        list_slug: str | None = None,
        default_name: str = "",
        dkim: DkimKey | Sequence[DkimKey] | None = None,
    ) -> MessageTemplate:
        """Encode ``parts`` once. ``campaign_slug`` goes into Message-IDs and Feedback-ID, and so
        does ``kind`` (the issue's: newsletter or alert);
        ``list_name`` and ``list_slug`` (default: from the name) make ``List-Id: list_name
        <list_slug.list_domain>``; ``default_name`` fills ``[[mailer:name]]`` for a member without a
        name (``[[mailer:greeting]]`` uses the settings' greetings). ``dkim``: a key, or several for
        one DKIM-Signature each (RSA and Ed25519: dual signatures). Raises ConfigError for unusable
        settings (addresses, list domain, base URL, DKIM key) and RenderError for an unknown slot
        marker."""
        domain, base_url, from_addr, reply_addr = checked_settings(settings)
        check_markers(parts.text, parts.html)
        text = normalise_text(parts.text)
        html_text = normalise_text(with_preheader(parts.html, parts.preheader))
        boundary = "=_mailer_" + hashlib.sha256((text + "\0" + html_text).encode()).hexdigest()[:24]
        org = clean_name(settings.organisation)
        mid_tail = _message_id_tail(campaign_slug, domain)
        builder = ChunkBuilder()
        builder.static(address_header("From", org, from_addr))
        builder.slot("to")
        builder.static(address_header("Reply-To", org, reply_addr))
        builder.static(unstructured_header("Subject", clean_name(parts.subject)))
        builder.slot("date")
        builder.static("Message-ID: <d")
        builder.slot("delivery")
        builder.static(mid_tail + "\r\nMIME-Version: 1.0\r\n")
        builder.static(
            fold("List-Id", [*phrase(clean_name(list_name)), f"<{list_id(list_name, list_slug, domain)}>"])
        )
        builder.static(f"List-Unsubscribe: <{base_url}{LINK_PATHS['unsubscribe']}")
        builder.slot("token")
        builder.static(f">,\r\n <mailto:{MAILTO_PREFIX}")
        builder.slot("token")
        builder.static(f"@{domain}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        builder.static(f"List-Help: <{base_url}/>\r\nList-Archive: <{base_url}/archive/>\r\n")
        feedback = feedback_id(campaign_slug, kind, list_name, list_slug, from_addr)
        fold_at = "\r\n" if len("Feedback-ID: " + feedback) > 78 else ""
        builder.static(f"Feedback-ID:{fold_at} {feedback}\r\n")
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
            dkim=[dkim] if isinstance(dkim, DkimKey) else list(dkim or ()),
            verp_keys=settings.secrets,
            greetings=(settings.greeting, settings.greeting_without_name),
        )
        template._check_invariants()
        return template

    @property
    def signed(self) -> bool:
        """Whether each message gets DKIM signatures."""
        return self._signing is not None

    @property
    def has_rsvp(self) -> bool:
        """Whether the messages carry RSVP links (``Recipient.rsvp_token`` is then filled in)."""
        return bool(self._rsvp_slots)

    @property
    def list_domain(self) -> str:
        """The domain of the VERP return path, List-Id and mailto unsubscribe."""
        return self._list_domain

    # -- per recipient ------------------------------------------------------------------------------

    def fill(self, recipient: Recipient, *, date: datetime | None = None) -> bytes:
        """The message for ``recipient``: CRLF line endings, ready for SMTP DATA before dot-stuffing.

        ``date`` (aware) sets the Date header; by default the current second. Raises InvalidInput for
        an address mailer cannot send to or a token that is not a token."""
        out = self._assemble(recipient, date)
        if self._signing is not None:
            out.insert(0, self._signing.sign(out, self._timestamp(date)))
        return b"".join(out)

    def fill_wire(self, recipient: Recipient, *, date: datetime | None = None) -> bytes:
        """The SMTP DATA payload for ``recipient``: the filled message, dot-stuffed, ending with
        CRLF ``.`` CRLF. Write it to the socket after the server's 354 reply."""
        out = self._assemble(recipient, date)
        if self._signing is not None:
            out.insert(0, self._signing.sign(out, self._timestamp(date)))
        out.append(b".\r\n")
        return b"".join(out)

    def return_path(self, recipient: Recipient) -> str:
        """The envelope sender (MAIL FROM) for ``recipient``: ``bounces+<delivery id>-<mac>@list
        domain``, signed with the settings' newest key (ConfigError if the settings had none), or
        with ``recipient.verp_tag`` when it is given."""
        if recipient.verp_tag and recipient.delivery_id > 0:
            return f"{VERP_PREFIX}{recipient.verp_tag}@{self._list_domain}"
        return verp_address(recipient.delivery_id, self._list_domain, keys=self._verp_keys)

    # -- internals ----------------------------------------------------------------------------------

    def _assemble(self, r: Recipient, date: datetime | None) -> list[bytes]:
        addr = addr_spec(r.email)
        name = clean(r.name) if r.name else ""
        token = checked_token(r.unsubscribe_token)
        tokens = {"unsubscribe_url": token, "preferences_url": checked_token(r.preferences_token)}
        values = {
            "to": address_header("To", name, addr).encode("ascii"),
            "date": self._date(date),
            "delivery": (r.verp_tag or self._sign(r.delivery_id)).encode("ascii")
            if r.delivery_id > 0
            else self._test_id(r.delivery_id),
            "token": token.encode("ascii"),
        }
        if self._value_slots:
            texts = {
                "greeting": greeting_for(r.first_name, *self._greetings) if r.first_name else self._nameless,
                "name": name or self._default_name,
                "email": addr,
            }
            for slot, in_text, in_html in self._value_slots:
                text = texts[slot]
                encoded = qp_value(text)
                if in_text:
                    values["t:" + slot] = encoded
                if in_html:
                    escaped = html.escape(text)
                    values["h:" + slot] = encoded if escaped == text else qp_value(escaped)
        for slot, parts in self._link_slots:
            value = tokens[slot]
            for key, prefix in parts:
                values[key] = qp_value(prefix + value)
        if self._rsvp_slots:
            rsvp = qp_value(checked_token(r.rsvp_token)) if r.rsvp_token else b""
            for key in self._rsvp_slots:
                values[key] = rsvp
        out = self._chunks.copy()
        for position, kind in self._slots:
            out[position] = values[kind]
        return out

    def _date(self, date: datetime | None) -> bytes:
        if date is not None:
            return f"Date: {format_datetime(date.astimezone(UTC))}\r\n".encode("ascii")
        second = int(time.time())
        if second != self._date_second:
            now = datetime.fromtimestamp(second, UTC)
            self._date_line = f"Date: {format_datetime(now)}\r\n".encode("ascii")
            self._date_second = second
        return self._date_line

    def _timestamp(self, date: datetime | None) -> int:
        """DKIM's t=: the second of the Date header (``_date`` has just made it)."""
        return int(date.timestamp()) if date is not None else self._date_second

    def _sign(self, delivery_id: int) -> str:
        """The delivery's signed tag, for a recipient that came without it (``Recipient.verp_tag``)."""
        return verp_tag(delivery_id, self._list_domain, keys=self._verp_keys)

    @staticmethod
    def _test_id(delivery_id: int) -> bytes:
        """A test copy's id in its Message-ID (``d<id>.<random>.<slug>@…``): a delivery id of 0 or
        below is a test send, recorded nowhere, and each one is a new message, so that a corrected
        second test is not hidden as a duplicate of the first."""
        return b"%d.%s" % (delivery_id, secrets.token_hex(8).encode("ascii"))

    def _check_invariants(self) -> None:
        """No line of a filled message may start with a dot: see the module's docstring."""
        mid_line = {position + 1 for position, kind in self._slots if kind in ("delivery", "token")}
        for position, chunk in enumerate(self._chunks):
            if b"\n." in chunk or (chunk.startswith(b".") and position not in mid_line):
                raise AssertionError("an encoded message line starts with a dot")


def check_markers(text: str, html_text: str) -> None:
    """RenderError for an unknown slot marker in the text or HTML part (what ``build`` checks)."""
    for part, content in (("text", text), ("html", html_text)):
        unknown = unknown_markers(content)
        if unknown:
            raise RenderError(
                f"unknown slot marker [[mailer:{unknown[0]}]] in the {part} part",
                field=part,
                hint="known slots: " + ", ".join(SLOT_NAMES),
            )


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
    host = urlsplit(base_url).hostname or ""
    if base_url.startswith("http://") and host not in LOCAL_HOSTS and not settings.allow_http_unsubscribe:
        raise ConfigError(
            f"base_url {base_url!r} is http://: one-click unsubscribe needs https (RFC 8058), and mail "
            "providers show no unsubscribe button for an http link",
            field="base_url",
            hint=f'serve the web app over https and set base_url = "https://{host}" (or MAILER_BASE_URL); '
            "for a demo only, set allow_http_unsubscribe = true",
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
