"""DKIM signatures made with OpenSSL (mailer.message.dkim), each verified by dkimpy with a stub DNS:
RSA-2048, Ed25519 (RFC 8463) and both at once; every name, address and slot kind; the keys from the
settings; `mailer dkim keys`, `mailer dkim dns` (its records parsed back and used to verify), and the
warnings of `campaigns check` and `send` when a send would go unsigned."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import REPO
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.util import parse_tag_value
from support.cli_runner import MailerCli
from support.messages import (
    ADDRESSES,
    DATE,
    LIST,
    NAMES,
    SETTINGS,
    check_wire_format,
    dot_stuff,
    parse,
    recipients,
    seed_parts,
)
from support.signatures import dns_for, parse_zone, verified

from mailer.errors import ConfigError
from mailer.message import DkimKey, MessageParts, MessageTemplate, Recipient, dkim_keys, dkim_status
from mailer.message.dkim import ED25519, RSA, txt_record
from mailer.settings import Settings, load
from mailer.workspace import write_dkim_keys

DOMAIN = "kent.example.org"
GOLDEN = Path(__file__).resolve().parent / "golden" / "2025-11-kent-network"


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@pytest.fixture(scope="module")
def keys() -> dict[str, DkimKey]:
    """A fresh RSA-2048 key (PKCS#8) and Ed25519 key, each with its own selector."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    return {
        RSA: DkimKey("rsa2025", DOMAIN, pem(rsa_key, serialization.PrivateFormat.PKCS8), RSA),
        ED25519: DkimKey("ed2025", DOMAIN, pem(ed_key, serialization.PrivateFormat.PKCS8), ED25519),
    }


# Addresses whose quoted local part has runs of white space exercise the body's relaxed form.
AWKWARD = ['"two  spaces"@example.org', '"a \\"b\\"   c "@example.org', "x@a-very-long-domain.example.co.uk"]
COMBOS = [(RSA,), (ED25519,), (RSA, ED25519), (ED25519, RSA)]


def people(every_pair: bool) -> list[Recipient]:
    """Every name with every address (``every_pair``), or each name once with the addresses in
    turn (every name and every address still met); then the awkward addresses and test copies."""
    extra = [replace(recipients(1)[0], email=a, delivery_id=9000 + i) for i, a in enumerate(AWKWARD)]
    tests = [replace(recipients(1)[0], delivery_id=0), replace(recipients(1)[0], delivery_id=-3, name="")]
    pairs = recipients(len(NAMES) * len(ADDRESSES))
    if not every_pair:
        pairs = [pairs[i * len(ADDRESSES) + i % len(ADDRESSES)] for i in range(len(NAMES))]
        assert {p.email for p in pairs} == set(ADDRESSES)
    return pairs + extra + tests


@pytest.mark.slow
@pytest.mark.parametrize("algorithms", COMBOS, ids=["+".join(c) for c in COMBOS])
def test_every_message_verifies(keys: dict[str, DkimKey], algorithms: tuple[str, ...]) -> None:
    """Recipients of every kind (non-ASCII, long, empty and hostile names; quoted local parts; test
    copies) through the seed variant, which has every slot kind in both parts: each signature
    verifies. Both keys at once sign all 234 name and address pairs; the message around the
    signature is the same whatever signs it, so the other combinations sign every name and every
    address once."""
    chosen = [keys[a] for a in algorithms]
    dnsfunc = dns_for(*chosen)
    template = MessageTemplate.build(seed_parts(), settings=SETTINGS, dkim=chosen, **LIST)
    unsigned = MessageTemplate.build(seed_parts(), settings=SETTINGS, **LIST)
    for person in people(every_pair=algorithms == (RSA, ED25519)):
        raw = template.fill(person, date=DATE)
        check_wire_format(raw, person.email)
        assert verified(raw, dnsfunc) == [True] * len(chosen), (person.name, person.email)
        msg = parse(raw)
        signatures = msg.get_all("DKIM-Signature")
        assert [parse_tag_value(str(s).encode())[b"a"].decode() for s in signatures] == list(algorithms)
        # The signatures are prepended; the rest is the unsigned message byte for byte.
        if person.delivery_id > 0:
            assert raw.endswith(unsigned.fill(person, date=DATE))
            wire = template.fill_wire(person, date=DATE)
            assert wire == dot_stuff(raw)


@pytest.mark.slow
def test_real_rendered_variants_verify_signed_both_ways(keys: dict[str, DkimKey]) -> None:
    dnsfunc = dns_for(*keys.values())
    for path in sorted(GOLDEN.glob("*.txt")):
        parts = MessageParts(
            "Kent Network newsletter: November 2025", path.read_text(), path.with_suffix(".html").read_text()
        )
        template = MessageTemplate.build(parts, settings=SETTINGS, dkim=list(keys.values()), **LIST)
        for person in recipients()[::17]:
            assert verified(template.fill(person), dnsfunc) == [True, True]
            wire = template.fill_wire(person)
            assert verified(wire[: -len(b".\r\n")], dnsfunc) == [True, True]


def test_the_signature_covers_and_oversigns_the_list_headers(keys: dict[str, DkimKey]) -> None:
    dnsfunc = dns_for(*keys.values())
    template = MessageTemplate.build(seed_parts(), settings=SETTINGS, dkim=list(keys.values()), **LIST)
    person = recipients(4)[3]
    raw = template.fill(person, date=DATE)
    for signature in parse(raw).get_all("DKIM-Signature"):
        tags = parse_tag_value(str(signature).encode())
        signed = [h.strip().lower() for h in tags[b"h"].split(b":")]
        for name in (b"from", b"to", b"subject", b"reply-to", b"list-id", b"list-unsubscribe"):
            assert signed.count(name) == 2, name  # signed, and over-signed against a second copy
        for name in (b"list-unsubscribe-post", b"list-help", b"list-archive", b"feedback-id"):
            assert signed.count(name) == 2, name
        for name in (b"date", b"message-id", b"mime-version", b"content-type"):
            assert signed.count(name) == 2, name
        for name in (b"sender", b"cc"):  # absent, so signed as absent: a copy added breaks it
            assert signed.count(name) == 1, name
        assert tags[b"d"] == DOMAIN.encode() and tags[b"c"] == b"relaxed/relaxed"
        assert int(tags[b"t"]) == int(DATE.timestamp())
    # Changing a signed header or the body, or adding a second copy of a signed header, breaks both.
    token = person.unsubscribe_token.encode()
    head, rest = raw.split(b"\r\nFrom: ", 1)
    for forged in (
        raw.replace(token, token[::-1]),
        raw.replace(b"Jane Smith", b"Jane Smyth"),
        raw.replace(b"One-Click", b"One-Clack"),
        head + b"\r\nFrom: evil@example.com\r\nFrom: " + rest,
        head + b"\r\nList-Unsubscribe: <https://evil.example/u>\r\nFrom: " + rest,
        raw.replace(b"Write for Rights", b"Write for Wrongs", 1),
    ):
        assert forged != raw
        assert verified(forged, dnsfunc) == [False, False]
    # White space a relay may change does not (relaxed/relaxed): refolding, runs of spaces, trailing
    # spaces and empty lines at the end.
    relayed = raw.replace(b"MIME-Version: 1.0", b"MIME-Version:  1.0").replace(
        b"List-Unsubscribe-Post: List", b"List-Unsubscribe-Post:\r\n\tList"
    )
    assert relayed.endswith(b"--\r\n")
    assert verified(relayed[:-2] + b"  \r\n\r\n \r\n", dnsfunc) == [True, True]


PREPENDED = [
    b"Date: Mon, 01 Jan 2024 09:00:00 +0000\r\n",
    b"Message-ID: <forged@evil.example>\r\n",
    b"MIME-Version: 1.0\r\n",
    b'Content-Type: text/html; charset="utf-8"\r\n',
    b"Sender: Kent Network <alerts@evil.example>\r\n",
    b"Cc: everyone@example.org\r\n",
]


@pytest.mark.parametrize("header", PREPENDED, ids=lambda h: h.split(b":")[0].decode())
def test_a_header_prepended_above_the_signature_breaks_it(keys: dict[str, DkimKey], header: bytes) -> None:
    """Date, Message-ID, MIME-Version and Content-Type are over-signed and Sender and Cc signed as
    absent: a second copy (or a first Sender or Cc) added at the top, where a verifier that reads the
    first copy would see it and the signature's last-copy-first rule (RFC 6376 5.4.2) would miss it,
    breaks every signature. Without over-signing, each of these verified."""
    dnsfunc = dns_for(*keys.values())
    template = MessageTemplate.build(seed_parts(), settings=SETTINGS, dkim=list(keys.values()), **LIST)
    raw = template.fill(recipients(2)[1], date=DATE)
    assert verified(raw, dnsfunc) == [True, True]
    assert verified(header + raw, dnsfunc) == [False, False]
    head, body = raw.split(b"\r\nFrom: ", 1)  # just after the signatures, above the signed copies
    assert verified(head + b"\r\n" + header + b"From: " + body, dnsfunc) == [False, False]


def test_key_formats(tmp_path: Path) -> None:
    """RSA keys in PKCS#1 ("BEGIN RSA PRIVATE KEY") or PKCS#8; Ed25519 in PKCS#8 or dkimpy's base64 seed."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    seed = ed_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    formats = [
        DkimKey("a", DOMAIN, pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL), RSA),
        DkimKey("b", DOMAIN, base64.b64encode(seed) + b"\n", ED25519),
    ]
    dnsfunc = dns_for(*formats)
    template = MessageTemplate.build(seed_parts(), settings=SETTINGS, dkim=formats, **LIST)
    assert verified(template.fill(recipients(1)[0]), dnsfunc) == [True, True]
    record = txt_record(ed_key)
    assert record.startswith("v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(record.rpartition("p=")[2])) == 32  # the raw key (RFC 8463 4.2)


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (DkimKey("s", DOMAIN, b"not a key"), "cannot sign with the DKIM key"),
        (DkimKey("s", DOMAIN, b"not a key", ED25519), "cannot sign with the DKIM key"),
        (DkimKey("s", DOMAIN, b"", "rsa-sha1"), "unknown DKIM algorithm"),
        (DkimKey("bad selector", DOMAIN, b""), "not a DNS name"),
    ],
)
def test_a_bad_dkim_key_is_reported_at_build(key: DkimKey, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        MessageTemplate.build(seed_parts(), settings=SETTINGS, dkim=key, **LIST)
    assert info.value.problem.hint


def test_a_key_of_the_wrong_kind_is_refused(keys: dict[str, DkimKey]) -> None:
    wrong = replace(keys[ED25519], algorithm=RSA)
    with pytest.raises(ConfigError, match="not a private key of that kind"):
        MessageTemplate.build(seed_parts(), settings=SETTINGS, dkim=wrong, **LIST)


# -- keys from the settings ------------------------------------------------------------------------------


def test_keys_from_the_settings(workspace: Path) -> None:
    settings = load(workspace, env={})
    assert dkim_keys(settings) == []  # "auto", and no key yet
    status = dkim_status(settings)
    assert not status.signed and status.warning and "mailer dkim keys" in status.warning
    written = write_dkim_keys(workspace, settings)
    assert {p.name for p in written} == {".mailer-dkim.pem", ".mailer-dkim-ed25519.pem"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    assert write_dkim_keys(workspace, settings) == []  # never overwritten
    keys = dkim_keys(settings)
    assert [(k.algorithm, k.selector, k.domain) for k in keys] == [
        (RSA, "mailer-rsa", "example.org"),
        (ED25519, "mailer-ed25519", "example.org"),
    ]
    assert dkim_status(settings).warning is None and dkim_status(settings).signed
    assert [k.algorithm for k in dkim_keys(replace(settings, dkim_algorithms="ed25519-sha256"))] == [ED25519]
    assert dkim_keys(replace(settings, dkim_algorithms="off")) == []
    assert [k.algorithm for k in dkim_keys(replace(settings, dkim_selector=""))] == [ED25519]
    other = replace(settings, dkim_domain="mail.example.net")
    assert dkim_keys(other)[0].domain == "mail.example.net"
    assert dkim_status(other).warning and "DMARC" in str(dkim_status(other).warning)
    assert dkim_status(replace(settings, dkim_domain="news.example.org")).aligned

    (workspace / ".mailer-dkim-ed25519.pem").unlink()
    assert [k.algorithm for k in dkim_keys(settings)] == [RSA]  # auto: what exists
    with pytest.raises(ConfigError, match="mailer dkim keys"):
        dkim_keys(replace(settings, dkim_algorithms="rsa-sha256,ed25519-sha256"))  # named: required
    with pytest.raises(ConfigError, match="unknown DKIM algorithm"):
        dkim_keys(replace(settings, dkim_algorithms="rsa-sha1"))
    (workspace / ".mailer-dkim.pem").chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        dkim_keys(settings)
    relay = replace(settings, dkim_algorithms="off", relay_signs_dkim=True)
    assert dkim_status(relay).warning is None and "relay signs" in dkim_status(relay).summary


# -- the commands ------------------------------------------------------------------------------------------


def test_dkim_keys_and_dns_commands_publish_records_that_verify(
    mailer_cli: MailerCli, workspace: Path, settings: Settings
) -> None:
    missing = mailer_cli("dkim", "dns")
    assert missing.exit_code != 0 and "mailer dkim keys" in missing.stderr
    made = mailer_cli("dkim", "keys", check=True)
    assert made.stdout.count("mode 600") == 2 and "mailer dkim dns" in made.stdout
    assert "nothing written" in mailer_cli("dkim", "keys", check=True).stdout

    out = mailer_cli("dkim", "dns", check=True).stdout
    records = parse_zone(out)
    assert set(records) == {b"mailer-rsa._domainkey.example.org.", b"mailer-ed25519._domainkey.example.org."}
    rsa_record = records[b"mailer-rsa._domainkey.example.org."]
    assert rsa_record.startswith(b"v=DKIM1; k=rsa; p=") and len(rsa_record) > 255  # so it was split
    assert len(re.findall(r'"[^"]*"', out.splitlines()[1])) >= 2
    ed_record = records[b"mailer-ed25519._domainkey.example.org."]
    assert ed_record.startswith(b"v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(ed_record.rpartition(b"p=")[2])) == 32

    as_json = json.loads(mailer_cli("dkim", "dns", "--json", check=True).stdout)
    assert {r["name"] + ".": r["value"] for r in as_json} == {
        k.decode(): v.decode() for k, v in records.items()
    }

    # A message signed with the workspace's keys verifies against the published records only.
    keys = dkim_keys(settings)
    template = MessageTemplate.build(seed_parts(), settings=settings, dkim=keys, **LIST)
    raw = template.fill(recipients(1)[0])
    assert verified(raw, lambda name, timeout=5: records.get(name)) == [True, True]
    assert verified(raw, lambda name, timeout=5: None) == [False, False]


def add_campaign(workspace: Path) -> str:
    slug = "2025-11-kent-network"
    shutil.copytree(REPO / "campaigns" / slug, workspace / "campaigns" / slug)
    return slug


@pytest.mark.slow
def test_check_and_send_warn_loudly_when_a_send_would_go_unsigned(
    mailer_cli: MailerCli, workspace: Path, db: object
) -> None:
    slug = add_campaign(workspace)
    check = mailer_cli("campaigns", "check", slug, "--no-database")
    assert "WARNING: messages will NOT be DKIM-signed" in check.stdout and "mailer dkim keys" in check.stdout
    assert (
        json.loads(mailer_cli("campaigns", "check", slug, "--no-database", "--json").stdout)["dkim"]["signed"]
        is False
    )
    dry = mailer_cli("campaigns", "send", slug, "--dry-run")
    assert "WARNING: messages will NOT be DKIM-signed" in dry.stderr, dry.output
    test = mailer_cli("campaigns", "send", slug, "--test", "me@example.org")
    assert "WARNING" not in test.output  # a test send is not a send to members

    toml = workspace / "mailer.toml"
    toml.write_text(toml.read_text().replace("relay_signs_dkim = false", "relay_signs_dkim = true"))
    check = mailer_cli("campaigns", "check", slug, "--no-database")
    assert "WARNING" not in check.stdout and "the relay signs" in check.stdout
    assert "the relay signs" in mailer_cli("campaigns", "send", slug, "--dry-run").stderr

    mailer_cli("dkim", "keys", check=True)
    check = mailer_cli("campaigns", "check", slug, "--no-database")
    assert "note: DKIM: signed by example.org with rsa-sha256, ed25519-sha256" in check.stdout
    data = json.loads(mailer_cli("campaigns", "check", slug, "--no-database", "--json").stdout)["dkim"]
    assert data["signed"] and data["algorithms"] == [RSA, ED25519] and data["warning"] is None
    assert "WARNING" not in mailer_cli("campaigns", "send", slug, "--dry-run").stderr


def test_mailer_init_makes_the_keys(mailer_cli: MailerCli, tmp_path: Path) -> None:
    target = tmp_path / "new"
    out = mailer_cli("init", str(target), check=True).stdout
    assert "dns`" in out  # publish the records of `mailer dns`
    for name in (".mailer-dkim.pem", ".mailer-dkim-ed25519.pem"):
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o600
    assert ".mailer-dkim*.pem" in (target / ".gitignore").read_text()
    assert [k.algorithm for k in dkim_keys(load(target, env={}))] == [RSA, ED25519]


def test_a_signing_template_pickles_for_a_process_pool(keys: dict[str, DkimKey]) -> None:
    """A template crosses to another process whole (keys and prepared bytes; hash states are made
    again there) and signs the same bytes."""
    import pickle

    template = MessageTemplate.build(seed_parts(), settings=SETTINGS, dkim=list(keys.values()), **LIST)
    copy = pickle.loads(pickle.dumps(template))
    for person in recipients()[::40]:
        assert copy.fill_wire(person, date=DATE) == template.fill_wire(person, date=DATE)
    assert verified(copy.fill(recipients(1)[0]), dns_for(*keys.values())) == [True, True]
