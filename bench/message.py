"""Benchmark: a ~60 KB message built once and filled per recipient, against the email package.

    .venv/bin/python bench/message.py [--quick] [--count N] [--baseline-count N] [--dkim-count N]

(a) ``MessageTemplate.build`` once, then ``fill`` (and ``fill_wire``) for every recipient;
(b) the ordinary way: ``EmailMessage`` built per recipient (``reference_message``) and ``as_bytes()``,
    timed on a sample (it is ~200x slower) and reported per message;
(c) signing the two link tokens per recipient, which the delivery engine does alongside ``fill``;
(d) ``fill_wire`` with DKIM (mailer.message.dkim, OpenSSL through ``cryptography``): RSA-2048,
    Ed25519 and both (dual), one core, beside the anchors measured in the same run: the raw sign
    rate of the same keys through ``cryptography`` (a 32-byte digest, nothing else) and, when the
    ``openssl`` command is there, ``openssl speed -seconds 1 rsa2048 ed25519``.

It first prints the machine (kind, cores, Python, cryptography and OpenSSL versions, date). The
anchors: docs/decisions.md (The send's budget) measures ``EmailMessage`` alone at ~490 messages/s on these
machines, and the send target is >= 2,700 messages/s on 2 cores, a budget of ~370 us of work per message in
all.
"""

from __future__ import annotations

import argparse
import email.policy
import hashlib
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailer import tokens
from mailer.message import DkimKey, MessageParts, MessageTemplate, Recipient, reference_message
from mailer.message.dkim import ED25519, RSA, Signer
from mailer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [
    ROOT.parent / "shared/seeds/004_c3d5667b87322864.txt",  # the seed newsletter, beside the checkout
    ROOT / "campaigns/2025-11-kent-network/issue.yaml",  # else the seed issue's text in the workspace
]
KEYS = ["bench-key"]
DATE = datetime(2025, 11, 17, 9, 30, tzinfo=UTC)
SETTINGS = Settings(
    organisation="Amnesty International UK, Kent Network",
    from_address="newsletter@kent.example.org",
    list_domain="lists.example.org",
    base_url="https://news.example.org",
    secret="bench-key",
)
CAMPAIGN, LIST_NAME, DEFAULT_NAME = "kent-2025-11", "Kent Network newsletter", "friend"
NAMES = ["Jane Smith", "Zoë Ó Briain", "李小龍", 'Jane "JJ" Smith', "Smith, John", "", "Seán O'Brien"]
ADDRESSES = ["{i}@example.org", "jo+{i}@example.org", '"john smith {i}"@example.org']
DESIGN_EMAILMESSAGE_PER_SECOND = 490
SEND_TARGET_PER_SECOND = 2_700


def seed_text() -> str:
    for path in SEEDS:
        if path.exists():
            return path.read_text(encoding="utf-8")
    raise SystemExit("the seed newsletter is missing: " + ", ".join(map(str, SEEDS)))


def variant() -> MessageParts:
    """The seed issue as a rendered variant: the text as it is, and HTML shaped like MJML's output."""
    paragraphs = [p.strip() for p in seed_text().splitlines() if p.strip()]
    text = "[[mailer:greeting]]\n\n" + "\n\n".join(paragraphs)
    text += "\n\nUnsubscribe: [[mailer:unsubscribe_url]]\nPreferences: [[mailer:preferences_url]]\n"
    cell = (
        '<tr><td align="left" style="font-size:0px;padding:10px 25px;word-break:break-word;">'
        '<div style="font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;'
        'text-align:left;color:#111111;">{}</div></td></tr>\n'
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Kent Network</title></head>\n'
        '<body style="word-spacing:normal;background-color:#f4f4f4;"><table role="presentation">\n'
        + cell.format("[[mailer:greeting]]")
        + "".join(cell.format(p) for p in paragraphs)
        + "".join(cell.format(p) for p in paragraphs[: len(paragraphs) // 3])
        + cell.format(
            '<a href="[[mailer:unsubscribe_url]]">Unsubscribe</a> · '
            '<a href="[[mailer:preferences_url]]">Your preferences</a>'
        )
        + "</table></body></html>\n"
    )
    return MessageParts("Kent Network newsletter: November 2025", text, html, preheader="Write for Rights")


def recipients(count: int) -> list[Recipient]:
    out = []
    for i in range(count):
        member = 100_000 + i
        out.append(
            Recipient(
                delivery_id=i + 1,
                member_id=member,
                email=ADDRESSES[i % len(ADDRESSES)].format(i=i),
                name=NAMES[i % len(NAMES)],
                first_name=NAMES[i % len(NAMES)].partition(" ")[0],
                unsubscribe_token=tokens.sign("unsubscribe", member, keys=KEYS, campaign=42, now=DATE),
                preferences_token=tokens.sign("preferences", member, keys=KEYS, campaign=42, now=DATE),
                # made beside the links, as the send's BatchFiller makes it: the fill only places it
                verp_tag=tokens.verp_tag(i + 1, SETTINGS.list_domain, keys=KEYS),
            )
        )
    return out


def build(parts: MessageParts, dkim: Sequence[DkimKey] = ()) -> MessageTemplate:
    return MessageTemplate.build(
        parts,
        settings=SETTINGS,
        campaign_slug=CAMPAIGN,
        kind="newsletter",
        list_name=LIST_NAME,
        default_name=DEFAULT_NAME,
        dkim=dkim,
    )


def timed(label: str, count: int, run: Callable[[], object]) -> tuple[str, int, float]:
    start = time.perf_counter()
    run()
    return label, count, time.perf_counter() - start


def machine() -> str:
    """The header every bench prints: machine kind, cores, Python, library versions, date."""
    cpu = platform.processor() or platform.machine()
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    return (
        f"# {platform.node()}: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__} ({openssl_backend.openssl_version_text()}), "
        f"{platform.platform()}, {date.today().isoformat()}"
    )


def dkim_keys() -> dict[str, DkimKey]:
    """Throwaway RSA-2048 and Ed25519 keys."""

    def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        RSA: DkimKey("bench-rsa", "kent.example.org", pem(rsa_key), RSA),
        ED25519: DkimKey("bench-ed", "kent.example.org", pem(ed25519.Ed25519PrivateKey.generate()), ED25519),
    }


def raw_sign_rate(key: DkimKey, seconds: float = 1.0) -> float:
    """Signatures per second of ``key`` over a 32-byte digest alone: OpenSSL's rate, as mailer calls it."""
    signer = Signer(key)
    digest = hashlib.sha256(b"anchor").digest()
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            signer.sign(digest)
        done += 50
    return done / elapsed


def openssl_speed() -> dict[str, float]:
    """``openssl speed -seconds 1 rsa2048 ed25519``: signatures per second, one core (when installed)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return {}
    out = subprocess.run(
        [openssl, "speed", "-seconds", "1", "-mr", "rsa2048", "ed25519"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rates = {}
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "+F2" and fields[2] == "2048":
            rates[RSA] = float(fields[3])
        elif fields[0] == "+F6" and fields[3] == "Ed25519":
            rates[ED25519] = float(fields[4])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small run: 5,000 recipients")
    parser.add_argument("--count", type=int, default=None, help="recipients to fill (default 100,000)")
    parser.add_argument(
        "--baseline-count", type=int, default=None, help="EmailMessage sample (default 2,000)"
    )
    parser.add_argument(
        "--dkim-count",
        type=int,
        default=None,
        help="DKIM-signed fills per algorithm (default 2,000; 0: none)",
    )
    args = parser.parse_args()
    count = args.count or (5_000 if args.quick else 100_000)
    baseline_count = min(count, args.baseline_count or (300 if args.quick else 2_000))
    dkim_count = min(
        count, args.dkim_count if args.dkim_count is not None else (300 if args.quick else 2_000)
    )
    print(machine())

    parts = variant()
    people = recipients(count)
    sink: list[bytes] = []

    results = []
    build_start = time.perf_counter()
    template = build(parts)
    build_seconds = time.perf_counter() - build_start
    size = len(template.fill(people[0], date=DATE))

    def fill_all() -> None:
        fill = template.fill
        total = 0
        for person in people:
            total += len(fill(person))  # like a transport: each message written out, then dropped
        sink.append(b"%d" % total)

    def fill_wire_all() -> None:
        fill_wire = template.fill_wire
        total = 0
        for person in people:
            total += len(fill_wire(person))
        sink.append(b"%d" % total)

    def sign_all() -> None:
        for person in people:
            tokens.sign("unsubscribe", person.member_id, keys=KEYS, campaign=42)
            tokens.sign("preferences", person.member_id, keys=KEYS, campaign=42)

    def reference_all() -> None:
        for person in people[:baseline_count]:
            msg = reference_message(
                parts,
                person,
                settings=SETTINGS,
                campaign_slug=CAMPAIGN,
                kind="newsletter",
                list_name=LIST_NAME,
                default_name=DEFAULT_NAME,
            )
            sink.append(msg.as_bytes(policy=email.policy.SMTP))
            sink.clear()

    results.append(timed("EmailMessage + as_bytes() per recipient", baseline_count, reference_all))
    results.append(timed("build once + fill()", count, fill_all))
    results.append(timed("build once + fill_wire() (dot-stuffed)", count, fill_wire_all))
    results.append(timed("sign 2 link tokens per recipient", count, sign_all))
    anchors: list[str] = []
    if dkim_count:
        keys = dkim_keys()
        for label, chosen in (
            ("fill_wire() + DKIM rsa-sha256 (2048)", [keys[RSA]]),
            ("fill_wire() + DKIM ed25519-sha256", [keys[ED25519]]),
            ("fill_wire() + DKIM both (dual)", [keys[RSA], keys[ED25519]]),
        ):
            signed = build(parts, chosen)

            def dkim_all(signed: MessageTemplate = signed) -> None:
                for person in people[:dkim_count]:
                    sink.append(signed.fill_wire(person))
                    sink.clear()

            results.append(timed(label, dkim_count, dkim_all))
        raw = {name: raw_sign_rate(key) for name, key in keys.items()}
        speed = openssl_speed()
        for name in (RSA, ED25519):
            line = f"{name} sign, one core: cryptography {raw[name]:,.0f}/s"
            if name in speed:
                line += f", `openssl speed` {speed[name]:,.0f}/s"
            anchors.append(line)
        signed_rates = {label: n / secs for label, n, secs in results[-3:]}
        rsa_rate, ed_rate, dual_rate = signed_rates.values()
        anchors.append(
            f"fill+sign vs raw sign: RSA {rsa_rate / raw[RSA]:.2f}x, Ed25519 {ed_rate / raw[ED25519]:.2f}x, "
            f"dual {dual_rate * (1 / raw[RSA] + 1 / raw[ED25519]):.2f}x (1.00x: all the time in OpenSSL)"
        )

    base_us = results[0][2] / results[0][1] * 1e6
    print(f"message size: {size:,} bytes; template built once in {build_seconds * 1e3:.1f} ms")
    print(
        f"{'method':<44} {'messages':>9} {'seconds':>8} {'us/msg':>9} {'msgs/s':>10} {'vs EmailMessage':>16}"
    )
    for label, n, seconds in results:
        us = seconds / n * 1e6
        print(f"{label:<44} {n:>9,} {seconds:>8.2f} {us:>9.1f} {1e6 / us:>10,.0f} {base_us / us:>15.1f}x")
    fill_us = results[1][2] / results[1][1] * 1e6
    budget_us = 1e6 / SEND_TARGET_PER_SECOND
    print(
        f"anchors (docs/decisions.md): EmailMessage alone ~{DESIGN_EMAILMESSAGE_PER_SECOND}/s "
        f"(measured here {1e6 / base_us:,.0f}/s); send target {SEND_TARGET_PER_SECOND:,}/s "
        f"= {budget_us:.0f} us per message, of which fill() takes {fill_us:.1f} us "
        f"({fill_us / budget_us:.1%})"
    )
    for line in anchors:
        print("anchors: " + line)


if __name__ == "__main__":
    main()
