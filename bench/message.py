"""Benchmark: a ~60 KB message built once and filled per recipient, against the email package.

    .venv/bin/python bench/message.py [--quick] [--count N] [--baseline-count N] [--dkim-count N]

(a) ``MessageTemplate.build`` once, then ``fill`` (and ``fill_wire``) for every recipient;
(b) the ordinary way: ``EmailMessage`` built per recipient (``reference_message``) and ``as_bytes()``,
    timed on a sample (it is ~200x slower) and reported per message;
(c) signing the two link tokens per recipient, which the delivery engine does alongside ``fill``;
(d) optionally, ``fill`` with DKIM signing (needs the openssl command for a throwaway key).

The anchors: DESIGN.md measures ``EmailMessage`` alone at ~490 messages/s on these machines, and the
send target is >= 2,700 messages/s on 2 cores, a budget of ~370 us of work per message in all.
"""

from __future__ import annotations

import argparse
import email.policy
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mailer import tokens
from mailer.message import DkimKey, MessageParts, MessageTemplate, Recipient, reference_message
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
    text = "Dear [[mailer:name]],\n\n" + "\n\n".join(paragraphs)
    text += "\n\nUnsubscribe: [[mailer:unsubscribe_url]]\nPreferences: [[mailer:preferences_url]]\n"
    cell = (
        '<tr><td align="left" style="font-size:0px;padding:10px 25px;word-break:break-word;">'
        '<div style="font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;'
        'text-align:left;color:#111111;">{}</div></td></tr>\n'
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Kent Network</title></head>\n'
        '<body style="word-spacing:normal;background-color:#f4f4f4;"><table role="presentation">\n'
        + cell.format("Dear [[mailer:name]],")
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
                unsubscribe_token=tokens.sign("unsubscribe", member, keys=KEYS, campaign=42, now=DATE),
                preferences_token=tokens.sign("preferences", member, keys=KEYS, campaign=42, now=DATE),
            )
        )
    return out


def build(parts: MessageParts, dkim: DkimKey | None = None) -> MessageTemplate:
    return MessageTemplate.build(
        parts,
        settings=SETTINGS,
        campaign_slug=CAMPAIGN,
        list_name=LIST_NAME,
        default_name=DEFAULT_NAME,
        dkim=dkim,
    )


def timed(label: str, count: int, run: Callable[[], object]) -> tuple[str, int, float]:
    start = time.perf_counter()
    run()
    return label, count, time.perf_counter() - start


def dkim_key(folder: Path) -> DkimKey | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    key = folder / "dkim.pem"
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return DkimKey(selector="bench", domain="kent.example.org", private_key=key.read_bytes())


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
        "--dkim-count", type=int, default=None, help="DKIM-signed fills (default 300; 0: none)"
    )
    args = parser.parse_args()
    count = args.count or (5_000 if args.quick else 100_000)
    baseline_count = min(count, args.baseline_count or (300 if args.quick else 2_000))
    dkim_count = min(count, args.dkim_count if args.dkim_count is not None else (50 if args.quick else 300))

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
                list_name=LIST_NAME,
                default_name=DEFAULT_NAME,
            )
            sink.append(msg.as_bytes(policy=email.policy.SMTP))
            sink.clear()

    results.append(timed("EmailMessage + as_bytes() per recipient", baseline_count, reference_all))
    results.append(timed("build once + fill()", count, fill_all))
    results.append(timed("build once + fill_wire() (dot-stuffed)", count, fill_wire_all))
    results.append(timed("sign 2 link tokens per recipient", count, sign_all))
    with tempfile.TemporaryDirectory() as folder:
        key = dkim_key(Path(folder)) if dkim_count else None
        if key is not None:
            signed = build(parts, key)

            def dkim_all() -> None:
                for person in people[:dkim_count]:
                    sink.append(signed.fill_wire(person))
                    sink.clear()

            results.append(timed("fill_wire() with DKIM (rsa-sha256, 2048)", dkim_count, dkim_all))
        elif dkim_count:
            print("(no openssl command: DKIM not measured)")

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
        f"anchors: DESIGN.md EmailMessage alone ~{DESIGN_EMAILMESSAGE_PER_SECOND}/s "
        f"(measured here {1e6 / base_us:,.0f}/s); send target {SEND_TARGET_PER_SECOND:,}/s "
        f"= {budget_us:.0f} us per message, of which fill() takes {fill_us:.1f} us "
        f"({fill_us / budget_us:.1%})"
    )


if __name__ == "__main__":
    main()
