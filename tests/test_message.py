"""Messages built once per variant and filled per recipient, checked against the email package."""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import re
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from support.messages import (
    DATE,
    KEYS,
    LIST,
    SETTINGS,
    check_wire_format,
    dot_stuff,
    parse,
    recipients,
    seed_parts,
)

from mailer import tokens
from mailer.errors import ConfigError, InvalidInput, RenderError
from mailer.message import (
    MessageParts,
    MessageTemplate,
    delivery_id_from_verp,
    message_id,
    reference_message,
    verp_address,
)
from mailer.message.filling import BatchFiller

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "2025-11-kent-network"  # the renderer's output for three variants


HEADERS = ["From", "To", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id"]
HEADERS += ["List-Unsubscribe", "List-Unsubscribe-Post", "Content-Type", "List-Help", "List-Archive"]
HEADERS += ["Feedback-ID"]


def body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def raw_header(raw: bytes, name: str) -> str:
    """The unfolded, undecoded value of header ``name`` in ``raw``."""
    match = re.search(rb"(?:^|\r\n)" + name.encode() + rb": ((?:.|\r\n[ \t])*)\r\n", raw)
    assert match, name
    return match[1].decode("ascii").replace("\r\n", "")


def assert_same(filled: EmailMessage, ref: EmailMessage, raw: bytes, subject: str | None = None) -> None:
    """Every header that matters, decoded, and both decoded bodies are equal. ``subject``, when given,
    is the expected Subject (the email package decodes a literal "=?...?=" in a Subject it is given)."""
    for name in HEADERS:
        assert len(filled.get_all(name, [])) == 1, name
    for name in ("From", "To", "Reply-To"):
        mine, theirs = filled[name].addresses, ref[name].addresses
        assert len(mine) == len(theirs) == 1
        assert mine[0].addr_spec == theirs[0].addr_spec
        expected = theirs[0].display_name
        value = raw_header(raw, name)
        if re.search(r"\?=\s+=\?", value):
            # A name too long for one encoded word is in adjacent encoded words, whose separating white
            # space RFC 2047 (6.2) says to ignore. Python's address parser keeps it (a known bug), so
            # decode with email.header, which follows the RFC.
            decoded = str(email.header.make_header(email.header.decode_header(value)))
            assert decoded == f"{expected} <{theirs[0].addr_spec}>"
        else:
            assert mine[0].display_name == expected
    for name in ("Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", *HEADERS[-3:]):
        assert str(filled[name]) == str(ref[name]), name
    assert str(filled["Subject"]) == (str(ref["Subject"]) if subject is None else subject)
    assert filled["Date"].datetime == ref["Date"].datetime
    assert email.utils.parseaddr(str(filled["List-Id"])) == email.utils.parseaddr(str(ref["List-Id"]))
    assert filled.get_content_type() == "multipart/alternative"
    parts = list(filled.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    assert not filled.defects and not any(p.defects for p in parts)
    assert body(filled, "plain") == body(ref, "plain")
    assert body(filled, "html") == body(ref, "html")


@pytest.fixture(scope="module")
def template() -> MessageTemplate:
    return MessageTemplate.build(seed_parts(), settings=SETTINGS, **LIST)


@pytest.mark.slow
def test_filled_messages_equal_the_email_package_s(template: MessageTemplate) -> None:
    parts = seed_parts()
    people = recipients()
    assert len(people) >= 200
    for person in people:
        raw = template.fill(person, date=DATE)
        check_wire_format(raw, person.email)
        ref = reference_message(parts, person, settings=SETTINGS, date=DATE, **LIST)
        assert_same(parse(raw), ref, raw)


def test_rendered_variants(template: MessageTemplate) -> None:
    """The renderer's own output (its golden files) fills and parses like the reference."""
    variants = sorted(GOLDEN.glob("*.txt"))
    assert variants
    for path in variants:
        parts = MessageParts(
            subject="Kent Network newsletter: November 2025",
            text=path.read_text(encoding="utf-8"),
            html=path.with_suffix(".html").read_text(encoding="utf-8"),
        )
        rendered = MessageTemplate.build(parts, settings=SETTINGS, **LIST)
        for person in recipients()[::23]:
            raw = rendered.fill(person, date=DATE)
            check_wire_format(raw, person.email)
            ref = reference_message(parts, person, settings=SETTINGS, date=DATE, **LIST)
            assert_same(parse(raw), ref, raw)
            assert rendered.fill_wire(person, date=DATE) == dot_stuff(raw)


def test_a_filled_message_is_about_60_kb(template: MessageTemplate) -> None:
    size = len(template.fill(recipients(1)[0]))
    assert 50_000 < size < 80_000


def test_the_feedback_id_says_newsletter_alert_or_digest() -> None:
    """Gmail's format, three identifiers then the sender's: campaign, kind, network; sender domain."""
    for kind in ("newsletter", "alert", "digest"):
        args = {**LIST, "kind": kind}
        msg = parse(MessageTemplate.build(seed_parts(), settings=SETTINGS, **args).fill(recipients(1)[0]))
        assert str(msg["Feedback-ID"]) == f"kent-2025-11:{kind}:kent-network-newsletter:kent.example.org"
    with pytest.raises(ValueError, match="newsletter, alert, digest, not 'reminder'"):
        MessageTemplate.build(seed_parts(), settings=SETTINGS, **{**LIST, "kind": "reminder"})


def test_headers_and_values(template: MessageTemplate) -> None:
    person = recipients(4)[3]  # Jane Smith, "john smith"@example.org
    msg = parse(template.fill(person, date=DATE))
    token = person.unsubscribe_token
    assert str(msg["From"]) == '"Amnesty International UK, Kent Network" <newsletter@kent.example.org>'
    assert str(msg["To"]) == 'Jane Smith <"john smith"@example.org>'
    tag = tokens.verp_tag(1003, "lists.example.org", keys=KEYS)  # the return path's signed tag
    assert str(msg["Message-ID"]) == f"<d{tag}.kent-2025-11@lists.example.org>"
    assert message_id(1003, "kent-2025-11", "lists.example.org", keys=KEYS) == str(msg["Message-ID"])
    assert str(msg["List-Id"]) == "Kent Network newsletter <kent-network-newsletter.lists.example.org>"
    assert str(msg["List-Unsubscribe"]) == (
        f"<https://news.example.org/u/{token}>, <mailto:unsubscribe+{token}@lists.example.org>"
    )
    assert str(msg["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert str(msg["List-Help"]) == "<https://news.example.org/>"
    assert str(msg["List-Archive"]) == "<https://news.example.org/archive/>"
    assert str(msg["Feedback-ID"]) == "kent-2025-11:newsletter:kent-network-newsletter:kent.example.org"
    assert "Return-Path" not in msg
    text = body(msg, "plain")
    assert text.startswith("Dear Jane,\n")  # by the first name, never the whole name
    assert f"\nUnsubscribe: https://news.example.org/u/{token}\n" in text
    assert f"\nPreferences: https://news.example.org/p/{person.preferences_token}\n" in text
    assert '\nSent to "john smith"@example.org. Jane Smith, you can Jane Smith\n' in text
    html = body(msg, "html")
    assert f'<a href="https://news.example.org/u/{token}">' in html
    assert "Sent to &quot;john smith&quot;@example.org." in html
    assert '<body style="margin:0"><div style="display:none;' in html
    # The envelope sender: the delivery id and its signed tag, any case.
    sender = template.return_path(person)
    assert sender == f"bounces+{tag}@lists.example.org"
    assert verp_address(1003, "lists.example.org", keys=KEYS) == sender
    assert delivery_id_from_verp(f"<{sender.upper()}>", "lists.example.org", keys=KEYS) == 1003
    assert delivery_id_from_verp("bounces+1003@lists.example.org", "lists.example.org", keys=KEYS) is None
    assert delivery_id_from_verp(sender, "lists.example.org", keys=["another-key"]) is None
    assert delivery_id_from_verp("bounces+x1@lists.example.org", "lists.example.org", keys=KEYS) is None
    other = sender.replace("lists.example.org", "other.example.org")
    assert delivery_id_from_verp(other, "lists.example.org", keys=KEYS) is None


def test_message_id_is_stable_per_delivery(template: MessageTemplate) -> None:
    person = recipients(1)[0]
    first = parse(template.fill(person))["Message-ID"]
    again = MessageTemplate.build(seed_parts(), settings=SETTINGS, **LIST)
    assert parse(again.fill(replace(person, name="Renamed")))["Message-ID"] == first
    assert parse(again.fill(replace(person, delivery_id=2)))["Message-ID"] != first
    # Its tag is the delivery's signed VERP tag: one that verifies, with no time in it.
    tag = re.fullmatch(r"<d([0-9]+-[a-z2-7]{16})\.kent-2025-11@lists\.example\.org>", str(first))
    assert tag and tokens.read_verp_tag(tag[1], "lists.example.org", keys=KEYS) == tokens.VerpTag(1000, True)
    assert tokens.read_verp_tag(tag[1], "other.example.org", keys=KEYS) == tokens.VerpTag(
        1000, False, "a bad signature (not made with any of our keys)"
    )
    # A tag the caller made already (BatchFiller's) is used as it is: the same message.
    given = replace(person, verp_tag=tag[1])
    assert again.fill(given, date=DATE) == again.fill(person, date=DATE)
    assert again.return_path(given) == again.return_path(person) == f"bounces+{tag[1]}@lists.example.org"


def test_the_batch_filler_signs_each_message_once_for_both_message_id_and_return_path(
    template: MessageTemplate,
) -> None:
    people = recipients(3)
    filler = BatchFiller(KEYS, 42, lambda _variant: template)
    rows = [(p.delivery_id, p.member_id, 1, p.email, p.name, p.first_name) for p in people]
    for person, (delivery_id, sender, payload) in zip(people, filler.fill(rows), strict=True):
        assert isinstance(sender, str) and not isinstance(payload, str)
        msg = parse(bytes(payload)[:-3].replace(b"\r\n..", b"\r\n."))
        tag = sender.removeprefix("bounces+").removesuffix("@lists.example.org")
        assert delivery_id == person.delivery_id and sender == template.return_path(person)
        assert str(msg["Message-ID"]) == f"<d{tag}.kent-2025-11@lists.example.org>"
        assert str(msg["Message-ID"]) == message_id(
            delivery_id, "kent-2025-11", "lists.example.org", keys=KEYS
        )


def test_names_and_escaping(template: MessageTemplate) -> None:
    person = replace(recipients(1)[0], name='Zoë <b>"Bold"</b> & Co', first_name="Zoë")
    msg = parse(template.fill(person))
    assert msg["To"].addresses[0].display_name == 'Zoë <b>"Bold"</b> & Co'
    assert body(msg, "plain").startswith("Dear Zoë,\n")
    assert "<p>Dear Zoë,</p>" in body(msg, "html")
    # A first name that is not plainly a name (markup, a link) is never put in the greeting.
    for odd in ('<b>"Bold"</b>', "www.example.org", "Zoë&Co"):
        assert body(parse(template.fill(replace(person, first_name=odd))), "plain").startswith("Hello,\n")
    nameless = parse(template.fill(replace(person, name="  ", first_name="")))
    assert str(nameless["To"]) == "jane@example.org"
    assert body(nameless, "plain").startswith("Hello,\n")  # never "Dear friend" (SpamAssassin's DEAR_FRIEND)
    assert "<p>Hello,</p>" in body(nameless, "html")
    assert "\nSent to jane@example.org. friend, you can friend\n" in body(nameless, "plain")


def test_no_header_injection_through_name_or_subject() -> None:
    parts = seed_parts(subject="Hello\r\nBcc: everyone@example.org\nX-Evil: 1\rX-Also: 2")
    template = MessageTemplate.build(parts, settings=SETTINGS, **LIST)
    person = replace(recipients(1)[0], name="Evil\r\nBcc: victim@example.org\r\n\r\nbody")
    raw = template.fill(person, date=DATE)
    check_wire_format(raw)
    msg = parse(raw)
    names = {k.lower() for k in msg}
    assert names == {h.lower() for h in HEADERS}
    assert str(msg["Subject"]) == "Hello Bcc: everyone@example.org X-Evil: 1 X-Also: 2"
    assert msg["To"].addresses[0].display_name == "Evil Bcc: victim@example.org body"
    assert_same(msg, reference_message(parts, person, settings=SETTINGS, date=DATE, **LIST), raw)


@pytest.mark.parametrize(
    "subject",
    [
        "Plain",
        "",
        "Zoë’s news — November",
        "A " + "long " * 40 + "subject",
        "x" * 200,
        "=?utf-8?q?looks_encoded?=",
        "李小龍 " * 20,
    ],
)
def test_subjects(subject: str) -> None:
    parts = seed_parts(subject=subject)
    template = MessageTemplate.build(parts, settings=SETTINGS, **LIST)
    person = recipients(1)[0]
    raw = template.fill(person, date=DATE)
    check_wire_format(raw)
    ref = reference_message(parts, person, settings=SETTINGS, date=DATE, **LIST)
    assert_same(parse(raw), ref, raw, subject=" ".join(subject.split()))


def test_fill_wire_is_the_dot_stuffed_message(template: MessageTemplate) -> None:
    for person in recipients()[::7]:
        plain = template.fill(person, date=DATE)
        wire = template.fill_wire(person, date=DATE)
        assert wire == dot_stuff(plain)
        assert wire.endswith(b"\r\n.\r\n")
    # Lines starting with a dot, in the template and in a value, survive the round trip.
    person = replace(recipients(1)[0], name=".Dot", first_name=".Dot")
    msg = parse(template.fill(person))
    text = body(msg, "plain")
    assert "\n.a line starting with a dot\n..two dots\n.\n" in text
    assert text.startswith("Hello,\n")  # ".Dot" is not plainly a first name
    assert "\n.starts with a dot\n" in body(msg, "html")


def test_date_defaults_to_now(template: MessageTemplate) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    msg = parse(template.fill(recipients(1)[0]))
    assert before <= msg["Date"].datetime <= datetime.now(UTC)


def test_addresses_mailer_cannot_send_to(template: MessageTemplate) -> None:
    person = recipients(1)[0]
    for bad in ("zoë@example.org", "no-at-sign", "a b@example.org", "x@y\r\nBcc: z@example.org", "<x@y.org>"):
        with pytest.raises(InvalidInput) as info:
            template.fill(replace(person, email=bad))
        assert info.value.field == "email"
    with pytest.raises(InvalidInput, match="SMTPUTF8"):
        template.fill(replace(person, email="zoë@example.org"))
    with pytest.raises(InvalidInput, match="not a link token"):
        template.fill(replace(person, unsubscribe_token="abc>\r\nBcc: x"))


def test_bad_templates_and_settings() -> None:
    with pytest.raises(RenderError, match=r"\[\[mailer:nmae\]\]"):
        MessageTemplate.build(MessageParts("S", "Dear [[mailer:nmae]]", "<p></p>"), settings=SETTINGS, **LIST)
    for field, settings in [
        ("from_address", replace(SETTINGS, from_address="not an address")),
        ("reply_to", replace(SETTINGS, reply_to="zoë@example.org")),
        ("list_domain", replace(SETTINGS, list_domain="localhost")),
        ("base_url", replace(SETTINGS, base_url="ftp://x.org")),
        ("base_url", replace(SETTINGS, base_url='https://x.org/"><script>')),
    ]:
        with pytest.raises(ConfigError) as info:
            MessageTemplate.build(seed_parts(), settings=settings, **LIST)
        assert info.value.field == field


# -- inbox details: greeting, test sends, one-click over https ------------------------------------------


def test_the_greeting_comes_from_the_settings_and_never_says_dear_friend() -> None:
    custom = replace(SETTINGS, greeting="Hi {name}!", greeting_without_name="Hi there!")
    template = MessageTemplate.build(seed_parts(), settings=custom, **LIST)
    named, nameless = recipients(1)[0], replace(recipients(1)[0], name="", first_name="")
    assert body(parse(template.fill(named)), "plain").startswith("Hi Jane!\n")
    assert body(parse(template.fill(nameless)), "plain").startswith("Hi there!\n")
    surname_only = replace(named, name="Smith", first_name="")  # never "Dear Smith,"
    assert body(parse(template.fill(surname_only)), "plain").startswith("Hi there!\n")
    escaped = parse(template.fill(replace(named, first_name="O'Neill")))
    assert "<p>Hi O&#x27;Neill!</p>" in body(escaped, "html") or "<p>Hi O&#39;Neill!</p>" in body(
        escaped, "html"
    )
    default = MessageTemplate.build(seed_parts(), settings=SETTINGS, **LIST)
    for person in recipients():
        assert not re.search(r"Dear friend", body(parse(default.fill(person)), "plain"), re.IGNORECASE)


def test_test_sends_get_a_new_message_id_each_time(template: MessageTemplate) -> None:
    """Delivery ids of 0 and below are test copies (recorded nowhere): each is a new message."""
    for test_id in (0, -1, -2):
        person = replace(recipients(1)[0], delivery_id=test_id)
        ids = {str(parse(template.fill(person))["Message-ID"]) for _ in range(20)}
        assert len(ids) == 20
        for mid in ids:
            assert re.fullmatch(rf"<d{test_id}\.[0-9a-f]{{16}}\.kent-2025-11@lists\.example\.org>", mid), mid
        wire = template.fill_wire(person)
        assert wire.endswith(b"\r\n.\r\n") and b"\r\n." not in wire[:-3]
    real = recipients(1)[0]
    assert len({str(parse(template.fill(real))["Message-ID"]) for _ in range(3)}) == 1


def test_http_one_click_outside_localhost_is_refused_with_the_fix() -> None:
    http = replace(SETTINGS, base_url="http://news.example.org")
    with pytest.raises(ConfigError) as info:
        MessageTemplate.build(seed_parts(), settings=http, **LIST)
    assert info.value.field == "base_url"
    assert "RFC 8058" in str(info.value) and 'base_url = "https://news.example.org"' in str(info.value)
    assert "allow_http_unsubscribe" in str(info.value)
    for ok in (
        replace(http, allow_http_unsubscribe=True),
        replace(SETTINGS, base_url="http://127.0.0.1:8000"),
        replace(SETTINGS, base_url="http://localhost:8000/mail"),
        replace(SETTINGS, base_url="http://[::1]:8000"),
    ):
        raw = MessageTemplate.build(seed_parts(), settings=ok, **LIST).fill(recipients(1)[0])
        assert f"<{ok.base_url}/u/".encode() in raw
