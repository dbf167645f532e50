"""``mailer inbound``: bounces, complaints and mailed unsubscribes, read from a mailbox."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from mailer.cli import App, cli, emit, json_option, pass_app

if TYPE_CHECKING:
    from mailer.inbound import Outcome, ProcessReport

#: ``inbound process`` exits with this status when it quarantined a mail (it still processed the rest).
EXIT_QUARANTINED = 4


@cli.group("inbound")
def inbound_group() -> None:
    """Bounces, complaints (ARF), mailed unsubscribes and auto-replies."""


def _show(report: ProcessReport) -> None:
    for o in report.outcomes:
        where = f" delivery {o.delivery_id}" if o.delivery_id else ""
        campaign = f" ({o.campaign})" if o.campaign else ""
        status = f" {o.status}" if o.status and o.kind != "unverified" else ""
        click.echo(f"{o.key}: {o.kind}{status}{where}{campaign}: {o.action}")
    new = report.messages - report.duplicates
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.by_kind.items())) or "nothing new"
    click.echo(
        f"{report.messages} message(s) in {report.source}: {new} new ({kinds}), "
        f"{report.duplicates} seen before; {report.suppressed} address(es) suppressed; "
        f"{report.unverified} unverified (changed nothing); {report.quarantined} quarantined."
    )
    if report.quarantined:
        click.echo(
            f"{report.quarantined} message(s) could not be read and were set aside (a Maildir's "
            ".quarantine folder; IMAP: flagged $MailerQuarantined); the reasons are above.",
            err=True,
        )


@inbound_group.command("process")
@click.argument("source")
@json_option
@pass_app
def process_command(app: App, source: str, as_json: bool) -> None:
    """Read SOURCE and act on each new mail: a Maildir folder, an mbox file, or
    imaps://user@host/folder (password from MAILER_IMAP_PASSWORD).

    \b
    Hard bounces (5.1.x) and complaints suppress the member at once; soft bounces (4.x.x, 5.2.2)
    after soft_bounce_limit distinct deliveries within soft_bounce_days; policy blocks (5.7.x)
    count against the campaign only; mail to unsubscribe+TOKEN@ with a valid token unsubscribes;
    auto-replies are ignored. A bounce or complaint acts only if it proves it answers a message
    we sent (its signed VERP tag, or the Message-ID we sent to the recipient it names); any other
    is recorded as unverified and changes nothing.
    A mail that cannot be read (too large, too deeply nested, broken MIME, unknown charset) is
    quarantined: moved into the Maildir's .quarantine folder (IMAP: flagged $MailerQuarantined;
    mbox: recorded), and the run goes on.
    Processed mail moves into the Maildir's .processed folder (IMAP: flagged); a mail seen
    before is never acted on twice, so running this again changes nothing.

    \b
    Exit status: 0 when every mail was processed; 4 when any was quarantined by this run
    (the others were processed); 1 or 2 for an error that stopped the run (e.g. an unreadable
    source).
    """
    from mailer.inbound import process_source

    report = process_source(app.db, app.settings, source)
    emit(as_json, report.as_dict(), lambda: _show(report))
    if report.quarantined:
        click.get_current_context().exit(EXIT_QUARANTINED)


@inbound_group.command("classify")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@json_option
@pass_app
def classify_command(app: App, files: tuple[Path, ...], as_json: bool) -> None:
    """Say what each mail FILE is (hard/soft bounce, policy, delay, complaint, unsubscribe,
    auto-reply, or quarantined with the reason), and what proves the delivery it answers,
    without changing anything."""
    from mailer.inbound import classify
    from mailer.inbound.classify import NEEDS_PROOF
    from mailer.inbound.sources import READ_LIMIT

    results = []
    for path in files:
        with path.open("rb") as f:
            raw = f.read(READ_LIMIT)
        c = classify(raw, app.settings.list_domain, keys=app.settings.secrets)
        results.append(
            {
                "file": str(path),
                "kind": c.kind,
                "status": c.status,
                "delivery_id": c.delivery_id,
                "proof": c.proof,
                "unproven": c.unproven,
                "recipients": [f.recipient for f in c.failures] or ([c.complainant] if c.complainant else []),
                "reason": c.reason,
            }
        )

    def human() -> None:
        proofs = {"verp": "proof: signed VERP tag", "message-id": "proof: a quoted Message-ID, to check"}
        for r in results:
            status = f" {r['status']}" if r["status"] else ""
            delivery = f" delivery {r['delivery_id']}" if r["delivery_id"] else ""
            said = proofs.get(str(r["proof"]), f"unproven: {r['unproven']}")
            said = f"; {said}" if r["kind"] in NEEDS_PROOF else ""
            click.echo(f"{r['file']}: {r['kind']}{status}{delivery} ({r['reason']}){said}")

    emit(as_json, results, human)


#: sysexits.h: Postfix (and any MTA) keeps the mail and tries again later.
EX_TEMPFAIL = 75
#: The Maildir, in the workspace, that ``inbound deliver`` keeps each mail in unless told another.
DELIVER_MAILDIR = "inbound"


@inbound_group.command("deliver")
@click.option(
    "--maildir",
    type=click.Path(path_type=Path),  # checked when written: any problem then is "try again later"
    help=f"The Maildir each mail is kept in (made if missing). Default: {DELIVER_MAILDIR}/ in the workspace.",
)
@pass_app
def deliver_command(app: App, maildir: Path | None) -> None:
    """Read ONE mail on standard input and act on it, for a mail server to deliver into (Postfix:
    a pipe transport in master.cf; see docs/deploy.md).

    The mail is first written whole (and synced) into a Maildir, then processed as `inbound
    process` would (bounces, complaints, mailed unsubscribes; only with proof), then moved into
    the Maildir's .processed folder, or .quarantine when it cannot be read. Nothing is lost: if the
    database cannot be reached, or anything else fails before the mail is processed, its copy is
    removed and the exit status tells the mail server to keep the mail and try again.

    \b
    Exit status (sysexits.h, as Postfix reads it):
      0   done: processed, or quarantined and kept in the Maildir's .quarantine folder
      75  EX_TEMPFAIL: not processed (database down, disk full, bad settings); try again later
    Whatever the mail, it never exits with a status that makes the mail server bounce it
    (only a mistyped option in master.cf does: exit 2, usage).

    \b
    Example (what master.cf runs, as the workspace's owner):
      mailer --workspace /srv/mailer inbound deliver < message.eml
    """
    import sys

    ctx = click.get_current_context()
    saved: Path | None = None
    try:
        root = maildir or app.settings.path(DELIVER_MAILDIR)
        saved = _save_whole(sys.stdin.buffer, root)
        outcome = _process_saved(app, root, saved)
    except BaseException as exc:  # anything at all: the mail stays with the mail server
        if saved is not None:
            saved.unlink(missing_ok=True)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        from mailer.redact import redact

        said = " ".join(redact(str(exc) or type(exc).__name__).split())[:500]
        click.echo(f"mailer inbound deliver: not processed, try again later: {said}", err=True)
        ctx.exit(EX_TEMPFAIL)
    click.echo(f"{outcome.kind}: {outcome.action}")


def _save_whole(stream: BinaryIO, root: Path) -> Path:
    """Write ``stream`` into the Maildir ``root`` the Maildir way (``tmp/``, synced, then renamed
    into ``new/``); its path in ``new/``."""
    import os
    import socket
    import time
    import uuid

    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    name = f"{int(time.time())}.P{os.getpid()}R{uuid.uuid4().hex[:12]}.{host}"
    tmp = root / "tmp" / name
    with tmp.open("xb") as f:
        os.fchmod(f.fileno(), 0o600)
        while chunk := stream.read(1024 * 1024):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / "new" / name)
    return root / "new" / name


def _process_saved(app: App, root: Path, saved: Path) -> Outcome:
    from mailer.inbound import process_message
    from mailer.inbound.sources import READ_LIMIT, Item, MaildirSource

    with saved.open("rb") as f:
        raw = f.read(READ_LIMIT)
    key = f"new/{saved.name}"
    outcome = process_message(app.db, app.settings, raw, key=key, source=str(root))
    item, source = Item(key, raw), MaildirSource(root)
    if outcome.quarantined:
        source.quarantine(item)
    else:
        source.done(item)
    return outcome
