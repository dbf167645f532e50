"""What an inbound mail is: a bounce (hard, soft, policy), a delay, a complaint, a mailed
unsubscribe, an auto-reply, something else, or a mail to quarantine. Pure: bytes in, a
``Classification`` out; it never raises on what a mail contains.

The order of the checks matters, because real mail overlaps:

1. An ARF feedback report (RFC 5965: ``multipart/report; report-type=feedback-report``) is a
   **complaint**.
2. A delivery status notification (RFC 3464: a ``message/delivery-status`` part) is read block by
   block: each recipient's Action, Status (RFC 3463) and Diagnostic-Code. DSNs carry
   ``Auto-Submitted: auto-replied`` too, so this comes before the auto-reply check.
3. A mail to ``unsubscribe+TOKEN@<list domain>`` (the mailto of List-Unsubscribe) is an
   **unsubscribe**; the token is verified later, by ``process``.
4. A non-standard bounce from a mail system (Exim without DSNs, Yahoo, qmail, …) is found by
   flufl.bounce's detectors, only for mail that comes from a mail system (``MAILER-DAEMON``,
   ``postmaster``, an ``X-Failed-Recipients`` header), so that their heuristics never fire on a
   person's reply. Its status code is read from the text near the address.
5. An auto-reply or out-of-office (``Auto-Submitted`` other than ``no``, ``X-Autoreply``,
   ``X-Autorespond``, ``Precedence: auto_reply``, or a subject such as "Automatic reply:" or "Out of
   Office") is **ignored**.
6. A person's mail (not from a mail system) whose subject or first lines ask to leave
   ("Please unsubscribe me", "STOP", "Tynnwch fi": ``mailer.inbound.replies``) is an
   **unsubscribe-request**; whether its From is proved is for ``process`` to find out
   (``mailer.inbound.authentic``).

Each failure's kind follows its RFC 3463 status: ``5.1.x`` (bad address) is **hard**; ``5.7.x``
(policy, spam filter, DMARC) is **policy**, held against the campaign, not the member; everything
else that failed (``4.x.x``, ``5.2.2`` mailbox full, other ``5.x.x``, or no code at all) is **soft**;
a DSN with ``Action: delayed`` is a **delay**, a warning only. A report with no enhanced code but a
basic ``5xx`` reply and unmistakable wording ("user unknown", "no such user", "doesn't have a …
account", "does not exist") is read as ``5.1.1``. Each failure says where its address came from:
a DSN's recipient fields, the ``X-Failed-Recipients`` header, or free text (which never acts).

Whom it concerns is proved, not guessed (``mailer.inbound.evidence``): a signed VERP tag that
verifies with ``keys`` names the delivery; else the returned message's quoted Message-ID names one
when the tag it carries verifies, for ``process`` to check against the database. A VERP address
found anywhere else, or unsigned, or signed with another key, names nothing; nor does a Message-ID
without a tag (the old form) or with a tag that does not verify.

A mail ``mailer.inbound.parse`` will not read (too large, too deeply nested, broken MIME, an unknown
charset), or that trips any error while being read, is **quarantined** with the reason; if its
headers alone say it is a mailed unsubscribe, it is still that (its body does not matter).
"""

from __future__ import annotations

import email.errors
import email.header
import hashlib
import logging
import re
from dataclasses import dataclass, field, replace
from email.message import Message
from email.utils import getaddresses, parseaddr
from typing import Final

from flufl.bounce import all_failures

from mailer.inbound.authentic import sender_of
from mailer.inbound.evidence import RECIPIENT_HEADERS, Evidence, find_evidence
from mailer.inbound.parse import Unparseable, parse, parse_headers, part_text, walk
from mailer.inbound.replies import asks_to_leave
from mailer.tokens import token_from_mailto

KINDS: Final = (
    "hard-bounce",
    "soft-bounce",
    "policy",
    "delay",
    "complaint",
    "unsubscribe",
    "auto-reply",
    "unsubscribe-request",
    "unknown",
    "quarantined",
)
"""Every kind ``classify`` returns. Only hard-bounce, soft-bounce, complaint and unsubscribe act on a
member, and only with proof; policy is recorded against the campaign; delay, auto-reply and unknown
change nothing; a quarantined mail is set aside unread. An unsubscribe-request (a person's reply
asking to leave) acts only when its From is proved, else it waits for a person."""

FAILURE_KINDS: Final = ("hard", "soft", "policy", "delay")
#: Kinds that change a member or a campaign's figures, so need proof that they answer our message.
NEEDS_PROOF: Final = ("hard-bounce", "soft-bounce", "policy", "delay", "complaint")

STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
BASIC_CODE_RE = re.compile(r"(?<!\d)([45]\d\d)(?:[ -]|$)")
USER_UNKNOWN_RE = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|mailbox (does not|doesn't) exist|"
    r"does not exist|doesn't have an? \S+ account|account (is )?(disabled|closed|deactivated)|"
    r"recipient (address )?rejected: (user unknown|unknown)|invalid recipient|address rejected",
    re.IGNORECASE,
)
AUTO_SUBJECT_RE = re.compile(
    r"^\s*(auto(matic|mated)?[ -]?(reply|response|answer|antwort)|out of (the )?office|"
    r"on (vacation|holiday|leave)|away from (the office|my desk)|i am (away|out)|"
    r"abwesenheit|absence|r[ée]ponse automatique|respuesta autom[áa]tica|autoreply|auto:)",
    re.IGNORECASE,
)
DAEMON_LOCALPARTS: Final = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mdaemon")

# flufl.bounce logs a detector's exception with its traceback before raising it again; classify turns
# that exception into a quarantine reason, so the log would only print a traceback to the terminal.
_flufl_log = logging.getLogger("flufl.bounce")
_flufl_log.addHandler(logging.NullHandler())
_flufl_log.propagate = False


@dataclass(frozen=True)
class Failure:
    """One recipient's outcome in a bounce."""

    recipient: str  # the address the report names, lower-cased ("" if it names none)
    status: str  # the RFC 3463 code, "5.1.1"; "" if none could be found
    kind: str  # hard, soft, policy or delay
    diagnostic: str = ""  # the remote server's words, whitespace collapsed
    source: str = "dsn"  # where the address was read: dsn (a recipient field), header, or text


@dataclass(frozen=True)
class Classification:
    """What one inbound mail is, and what it offers as proof of whom it concerns."""

    kind: str  # one of KINDS
    fingerprint: str  # sha256 of the Message-ID, or of the bytes when there is none
    message_id: str
    subject: str
    delivery_id: int | None = None  # named by a verified VERP tag, else by the quoted Message-ID
    proof: str = ""  # "verp" (verified), "message-id" (for process to check), or "" (none)
    quoted_message_id: str = ""  # the returned message's Message-ID, when it is one of ours (tag verified)
    unproven: str = ""  # why the mail proves nothing by itself ("" with a verified VERP tag)
    failures: tuple[Failure, ...] = ()
    token: str | None = None  # the mailed unsubscribe's token, unverified
    complainant: str = ""  # an ARF report's Original-Rcpt-To
    feedback_type: str = ""  # an ARF report's Feedback-Type (abuse, fraud, …)
    sender: str = ""  # an unsubscribe-request's one From address, lower-cased ("" if not exactly one)
    asked: str = ""  # the words by which an unsubscribe-request asks to leave
    addressed: tuple[str, ...] = ()  # the addresses an unsubscribe-request was sent to, lower-cased
    reason: str = ""  # in a few words, why this kind (for a quarantined mail: why it was not read)
    detail: str = field(default="", compare=False)

    @property
    def status(self) -> str:
        """The status of the failure that decided the kind ("" for none)."""
        wanted = {"hard-bounce": "hard", "soft-bounce": "soft", "policy": "policy", "delay": "delay"}
        for f in self.failures:
            if f.kind == wanted.get(self.kind):
                return f.status
        return ""


def status_kind(status: str, *, delayed: bool = False) -> str:
    """The kind of a failure with RFC 3463 ``status``: hard (5.1.x), policy (5.7.x), delay, or soft."""
    if delayed:
        return "delay"
    if status.startswith("5.1."):
        return "hard"
    if status.startswith("5.7."):
        return "policy"
    return "soft"


def reply_status(code: int | None, text: str) -> str:
    """The RFC 3463 status of an SMTP reply (``550`` and ``5.1.1 <jo@…>: User unknown`` → ``5.1.1``)."""
    return _best_status("", f"{code or ''} {text}".strip())


def fingerprint(raw: bytes, message_id: str) -> str:
    """What makes a message the same message again: its Message-ID, else its bytes."""
    key = message_id.strip().lower().encode("utf-8") if message_id.strip() else raw.replace(b"\r\n", b"\n")
    return hashlib.sha256(key).hexdigest()


def classify(raw: bytes, list_domain: str, *, keys: list[str] | None = None) -> Classification:
    """Classify one inbound mail (its bytes as received); see the module docstring for the rules.
    ``keys`` (the settings' secrets) verify VERP tags; without them no tag verifies."""
    try:
        return _classify(parse(raw), raw, list_domain, list(keys or []))
    except Unparseable as exc:
        why = exc.reason
    except Exception as exc:  # hostile input met a corner of a parser or a detector: set it aside
        why = f"could not be read: {type(exc).__name__}: {_one_line(exc)[:200]}"
    return _unreadable(raw, list_domain, why)


def _classify(msg: Message, raw: bytes, list_domain: str, keys: list[str]) -> Classification:
    message_id = _clean(msg.get("message-id", ""))
    subject = _clean(_decoded_header(msg.get("subject", "")))
    evidence = find_evidence(msg, list_domain, keys)
    base = Classification(
        kind="unknown",
        fingerprint=fingerprint(raw, message_id),
        message_id=message_id[:998],
        subject=subject[:500],
        delivery_id=evidence.delivery_id,
        proof=evidence.proof,
        quoted_message_id=evidence.quoted_message_id[:998],
        unproven=_unproven(evidence),
        reason="not a bounce, complaint or unsubscribe",
    )

    feedback = _feedback_report(msg)
    if feedback is not None:
        return replace(
            base,
            kind="complaint",
            complainant=_bare(feedback.get("original-rcpt-to", "")),
            feedback_type=_clean(feedback.get("feedback-type", "abuse")).lower()[:60],
            reason="ARF feedback report",
        )

    failures = _dsn_failures(msg)
    if failures:
        return _bounce(failures, "delivery status notification", base)

    token = _unsubscribe_token(msg, list_domain)
    if token is not None:
        return replace(base, kind="unsubscribe", token=token, reason="mail to the unsubscribe address")

    if _from_mail_system(msg):
        failures = _non_standard_failures(msg)
        if failures:
            return _bounce(failures, "bounce (non-standard format)", base)

    why = _auto_reply(msg, subject)
    if why:
        return replace(base, kind="auto-reply", reason=why)

    asked = "" if _from_mail_system(msg) else asks_to_leave(msg, subject)
    if asked:
        return replace(
            base,
            kind="unsubscribe-request",
            sender=sender_of(msg),
            asked=asked,
            addressed=tuple(dict.fromkeys(a.lower()[:320] for a in _recipient_addresses(msg)))[:20],
            reason=f"a reply asking to leave: {asked!r}",
        )

    return base


def _unreadable(raw: bytes, list_domain: str, why: str) -> Classification:
    """A mail that could not be read: a mailed unsubscribe if its headers say so, else quarantined."""
    try:
        headers = parse_headers(raw)
        message_id = _clean(headers.get("message-id", ""))[:998]
        subject = _clean(_decoded_header(headers.get("subject", "")))[:500]
        token = _unsubscribe_token(headers, list_domain)
    except Exception:  # not even a header block: the bytes are all there is
        message_id = subject = ""
        token = None
    base = Classification(
        kind="quarantined",
        fingerprint=fingerprint(raw, message_id),
        message_id=message_id,
        subject=subject,
        reason=_clean(why)[:500],
    )
    if token is not None:
        why = f"mail to the unsubscribe address (its body was not read: {base.reason})"
        return replace(base, kind="unsubscribe", token=token, reason=why[:500])
    return base


def _unproven(evidence: Evidence) -> str:
    if evidence.proof == "verp":
        return ""
    if evidence.proof == "message-id":
        return f"{evidence.unproven}; the quoted Message-ID {evidence.quoted_message_id} is to be checked"
    return (
        f"{evidence.unproven}, and {evidence.quoted_problem or 'no Message-ID of ours in a returned message'}"
    )


# -- the kinds ----------------------------------------------------------------------------------------


def _bounce(failures: list[Failure], what: str, base: Classification) -> Classification:
    kinds = {f.kind for f in failures}
    kind = next(
        (
            k
            for f, k in (("hard", "hard-bounce"), ("policy", "policy"), ("soft", "soft-bounce"))
            if f in kinds
        ),
        "delay",
    )
    return replace(base, kind=kind, failures=tuple(failures), reason=what)


def _feedback_report(msg: Message) -> Message | None:
    """The header block of an ARF report's message/feedback-report part, if this is one."""
    for part, _depth in walk(msg):
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            if isinstance(payload, str):
                return email.message_from_string(payload.lstrip()[:65536])
    if msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "feedback-report":
        return Message()
    return None


def _dsn_failures(msg: Message) -> list[Failure]:
    """Each recipient block of every message/delivery-status part that failed or was delayed."""
    out: list[Failure] = []
    for part, _depth in walk(msg):
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        payload = part.get_payload()
        assert isinstance(payload, list)
        for block in payload[:1000]:
            if not isinstance(block, Message):
                continue
            action = _one_line(block.get("action", "")).lower()
            delayed = action.startswith("delayed")
            if not (delayed or action.startswith(("failed", "error"))):
                continue  # delivered, relayed, expanded: not a failure
            recipient = _dsn_address(block.get("original-recipient", "")) or _dsn_address(
                block.get("final-recipient", "")
            )
            diagnostic = _clean(block.get("diagnostic-code", ""))
            diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic else diagnostic
            status = _best_status(_one_line(block.get("status", "")), diagnostic)
            out.append(Failure(recipient, status, status_kind(status, delayed=delayed), diagnostic[:1000]))
    return out


def _non_standard_failures(msg: Message) -> list[Failure]:
    """flufl.bounce's detectors, with each address's status read from the text near it; an address
    in ``X-Failed-Recipients`` has source "header", one found only in the text "text"."""
    temporary, permanent = all_failures(msg)
    listed = {
        addr.lower()
        for _name, addr in getaddresses([str(v) for v in msg.get_all("x-failed-recipients", [])])
        if addr
    }
    text = _body_text(msg)
    lowered = text.lower()
    out: list[Failure] = []
    for delayed, addresses in ((False, permanent), (True, temporary)):
        for raw_address in sorted(addresses)[:100]:
            address = _clean(raw_address.decode("ascii", "replace").lower())[:320]
            at = lowered.find(address)
            near = text[at : at + 800] if at >= 0 else text[:2000]
            diagnostic = _diagnostic_line(near)
            status = _best_status("", near)
            source = "header" if address in listed else "text"
            out.append(Failure(address, status, status_kind(status, delayed=delayed), diagnostic, source))
    return out


def _unsubscribe_token(msg: Message, list_domain: str) -> str | None:
    for address in _recipient_addresses(msg):
        token = token_from_mailto(address, list_domain)
        if token:
            return token[:200]
    return None


def _auto_reply(msg: Message, subject: str) -> str:
    """Why this mail is an automatic reply, or "" if it does not look like one."""
    auto = _clean(msg.get("auto-submitted", "")).lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto[:60]}"
    for header in ("x-autoreply", "x-autorespond", "x-auto-reply", "x-autoresponder"):
        if msg.get(header) is not None:
            return f"{header} header"
    precedence = _one_line(msg.get("precedence", "") or msg.get("x-precedence", "")).lower()
    if precedence == "auto_reply":
        return "Precedence: auto_reply"
    if AUTO_SUBJECT_RE.search(subject):
        return f"subject {subject[:60]!r}"
    return ""


def _recipient_addresses(msg: Message) -> list[str]:
    out: list[str] = []
    for header in RECIPIENT_HEADERS:
        values = [str(v) for v in msg.get_all(header, [])]
        out.extend(addr for _name, addr in getaddresses(values) if addr)
    return out


def _from_mail_system(msg: Message) -> bool:
    if msg.get("x-failed-recipients") is not None:
        return True
    for header in ("from", "sender"):
        local = parseaddr(str(msg.get(header, "")))[1].rpartition("@")[0].lower()
        if local in DAEMON_LOCALPARTS:
            return True
    return False


# -- small helpers ------------------------------------------------------------------------------------


def _best_status(status: str, text: str) -> str:
    """The most specific RFC 3463 code: the Status field, unless it is generic (x.0.0) and the
    diagnostic says more; a basic 5xx reply with user-unknown wording counts as 5.1.1."""
    m = STATUS_RE.search(status)
    found = m.group(0) if m else ""
    if not found or found.endswith(".0.0"):
        for candidate in STATUS_RE.finditer(text):
            code = candidate.group(0)
            if not code.endswith(".0.0") and (not found or code[0] == found[0]):
                return code
    if found:
        return found
    basic = BASIC_CODE_RE.search(text)
    if basic and basic.group(1).startswith("5") and USER_UNKNOWN_RE.search(text):
        return "5.1.1"
    if basic:
        return f"{basic.group(1)[0]}.0.0"
    return ""


def _diagnostic_line(text: str) -> str:
    for line in text.splitlines():
        if BASIC_CODE_RE.search(line) or STATUS_RE.search(line):
            return _clean(line)[:1000]
    return _clean(text)[:200]


def _body_text(msg: Message) -> str:
    """The decoded text of the text/* parts, from at most ``MAX_TEXT_BYTES`` of each."""
    return "\n".join(part_text(p) for p, _depth in walk(msg) if p.get_content_maintype() == "text")


def _dsn_address(value: str) -> str:
    """The address of a DSN recipient field (``rfc822; jo@example.org``), lower-cased."""
    value = _one_line(value)
    if ";" in value:
        kind, _, value = value.partition(";")
        if kind.strip().lower() != "rfc822":
            return ""
    return _bare(value)


def _bare(value: str) -> str:
    return parseaddr(_clean(value))[1].lower()


def _decoded_header(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (UnicodeDecodeError, LookupError, email.errors.HeaderParseError):
        return value


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _clean(value: object) -> str:
    """One line, without control characters (a NUL cannot be stored in PostgreSQL text)."""
    return _one_line("".join(ch if ch.isprintable() or ch.isspace() else " " for ch in str(value)))
