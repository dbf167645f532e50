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
    """Bounces, complaints (ARF), mailed unsubscribes, replies asking to leave and auto-replies."""


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
@click.argument("source", required=False)
@json_option
@pass_app
def process_command(app: App, source: str | None, as_json: bool) -> None:
    """Read SOURCE and act on each new mail: a Maildir folder, an mbox file, or
    imaps://user@host/folder (password from MAILER_IMAP_PASSWORD). Without SOURCE, read every
    mailbox the reply_sources setting names (the networks' reply mailboxes, the bounce mailbox).

    \b
    Hard bounces (5.1.x) and complaints suppress the member at once; soft bounces (4.x.x, 5.2.2)
    after soft_bounce_limit distinct deliveries within soft_bounce_days; policy blocks (5.7.x)
    count against the campaign only; mail to unsubscribe+TOKEN@ with a valid token unsubscribes;
    auto-replies are ignored. A bounce or complaint acts only if it proves it answers a message
    we sent (its signed VERP tag, or the Message-ID we sent to the recipient it names); any other
    is recorded as unverified and changes nothing.
    A person's reply asking to leave ("Please unsubscribe me", "STOP", "Tynnwch fi") unsubscribes
    the member when its DKIM signature verifies and aligns with its From domain; any other waits
    for a person: `mailer inbound pending`, or the desk's home page.
    A mail that cannot be read (too large, too deeply nested, broken MIME, unknown charset) is
    quarantined: moved into the Maildir's .quarantine folder (IMAP: flagged $MailerQuarantined;
    mbox: recorded), and the run goes on.
    Processed mail moves into the Maildir's .processed folder (IMAP: flagged); a mail seen
    before is never acted on twice, so running this again changes nothing.

    \b
    Examples:
      mailer inbound process ~/Maildir/bounces
      mailer inbound process            # every mailbox in reply_sources
      mailer inbound process --json     # {"sources": [one report per mailbox]}

    \b
    Exit status: 0 when every mail was processed; 4 when any was quarantined by this run
    (the others were processed); 1 or 2 for an error that stopped the run (e.g. an unreadable
    source).
    """
    from mailer.inbound import process_source
    from mailer.inbound.process import process_sources

    if source:
        report = process_source(app.db, app.settings, source)
        emit(as_json, report.as_dict(), lambda: _show(report))
        reports = [report]
    else:
        reports = process_sources(app.db, app.settings)

        def human() -> None:
            for r in reports:
                _show(r)

        emit(as_json, {"sources": [r.as_dict() for r in reports]}, human)
    waiting = sum(r.pending for r in reports)
    if waiting and not as_json:
        click.echo(
            f"{waiting} reply(ies) asking to leave wait for a person: `mailer inbound pending` lists them.",
            err=True,
        )
    if any(r.quarantined for r in reports):
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
                "sender": c.sender,  # an unsubscribe-request's From address
                "asked": c.asked,  # the words by which it asks to leave
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


# ---------------------------------------------------------------------------------------------
# Replies asking to leave that wait for a person


def _default_person() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "the command line"


@inbound_group.group("pending", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Also those acted on or dismissed.")
@json_option
@click.pass_context
def pending_group(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """Replies asking to leave that wait for a person: their From was not proved (no DKIM
    signature aligned with its domain), or the address is no member's.

    \b
    Examples:
      mailer inbound pending                      # what waits, with numbers
      mailer inbound pending unsubscribe 12       # they asked: unsubscribe them
      mailer inbound pending dismiss 13 --as Sam  # not a request, or nobody to unsubscribe
    """
    if ctx.invoked_subcommand is not None:
        return
    from mailer.inbound import requests

    app = ctx.find_object(App)
    assert app is not None
    states = requests.STATES if show_all else ("pending",)
    with app.db.session() as session:
        found = requests.listed(session, states=states)

    def human() -> None:
        if not found:
            click.echo("No reply asking to leave waits for a person." if not show_all else "None yet.")
            return
        for r in found:
            who = f"{r.member_name} <{r.address}>" if r.member_name else r.address or "(no From address)"
            network = f" [{r.network}]" if r.network else ""
            click.echo(f"#{r.id} {r.received_at:%Y-%m-%d %H:%M} {r.state}{network}: {who}")
            click.echo(f"    subject: {r.subject or '(none)'}; asked: {r.asked!r}")
            if r.state == "pending":
                click.echo(f"    waits because {r.why}")
                if r.member_id is None:
                    click.echo("    no member has this address: dismiss it")
            else:
                click.echo(f"    {r.outcome} (by {r.decided_by})")
        waiting = sum(r.state == "pending" for r in found)
        if waiting:
            click.echo(
                f"{waiting} waiting: `mailer inbound pending unsubscribe ID` or `mailer inbound pending "
                "dismiss ID`."
            )

    emit(as_json, [r.as_dict() for r in found], human)


def _decide(app: App, request_id: int, decision: str, person: str | None, as_json: bool) -> None:
    from datetime import UTC, datetime

    from mailer.inbound import requests

    by = person or _default_person()
    with app.db.session() as session:
        done = requests.decide(session, app.shape, request_id, decision, by=by, now=datetime.now(UTC))
    emit(as_json, done.as_dict(), lambda: click.echo(f"#{done.id} {done.address}: {done.outcome} (by {by})."))


_as_option = click.option(
    "--as", "person", metavar="NAME", help="Who decided, for the record (default: your login name)."
)


@pending_group.command("unsubscribe")
@click.argument("request_id", metavar="ID", type=int)
@_as_option
@json_option
@pass_app
def pending_unsubscribe(app: App, request_id: int, person: str | None, as_json: bool) -> None:
    """Unsubscribe the member who wrote reply ID: they leave the network they wrote to (all mail
    in a workspace of one network). The consent log names you."""
    _decide(app, request_id, "unsubscribe", person, as_json)


@pending_group.command("dismiss")
@click.argument("request_id", metavar="ID", type=int)
@_as_option
@json_option
@pass_app
def pending_dismiss(app: App, request_id: int, person: str | None, as_json: bool) -> None:
    """Reply ID is no request to leave (or nobody to unsubscribe): set it aside, recording who."""
    _decide(app, request_id, "dismiss", person, as_json)
