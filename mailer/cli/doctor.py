"""``mailer doctor`` and ``mailer dns``: is this workspace ready to mail real people, and the DNS
records to publish (the library is :mod:`mailer.doctor` and :mod:`mailer.dnscheck`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mailer.cli import App, cli, emit, json_option, pass_app
from mailer.errors import MailerError

if TYPE_CHECKING:
    from mailer.dnscheck import RecordCheck
    from mailer.readiness import Readiness

MARKS = {"ok": "ok", "missing": "MISSING", "different": "DIFFERENT", "unchecked": "unchecked"}


@cli.command("doctor")
@click.option(
    "--no-dns", is_flag=True, help="Do not look the DNS records up (they are still printed by `mailer dns`)."
)
@json_option
@pass_app
@click.pass_context
def doctor_command(ctx: click.Context, app: App, no_dns: bool, as_json: bool) -> None:
    """Say whether this workspace is ready to mail real people, each problem with its fix.

    It checks the public base_url (not a placeholder, not this machine, https), the list domain
    and every network's From (not example.*), each network's postal address (PECR), the DKIM
    keys (present, mode 600), the key for signed links (strong), the relay (not a Maildir outbox;
    reachable), the workers (alive while campaigns wait for them), replies asking to leave that
    wait for a person (`mailer inbound pending`) and the DNS records to publish
    (SPF, DKIM, DMARC, MX: looked up live, or printed when this machine cannot resolve; the
    dns_resolver setting names the server to ask). Exits 0 when ready, 2 otherwise. A workspace
    with demo = true (`mailer demo`) may use example.org, a local base_url and a Maildir outbox.
    """
    from mailer.doctor import diagnose

    db = None
    try:
        db = app.db
    except MailerError as exc:
        click.echo(f"note: the database was not checked: {exc}", err=True)
    result = diagnose(app.settings, app.shape, db, dns=not no_dns)
    emit(as_json, result.as_dict(), lambda: _show(result))
    if not result.ready:
        ctx.exit(2)


def _show(result: Readiness) -> None:
    for finding in result.findings:
        label = "error" if finding.severity == "error" else "warning"
        click.echo(f"{label}: {finding.check}: {finding.message}")
        click.echo(f"  fix: {finding.fix}")
    if result.records:
        click.echo("DNS records:")
        for check in result.records:
            _show_record(check)
    if result.demo:
        click.echo(
            "note: a demo workspace (demo = true): example.org, a local base_url and a Maildir "
            "outbox are allowed"
        )
    counts = f"{len(result.errors)} problem(s), {len(result.warnings)} warning(s)"
    if result.demo and result.ready:
        click.echo(f"READY as a demo (it mails nobody real): {counts}")
    else:
        click.echo(f"{'READY' if result.ready else 'NOT READY'} to mail real people: {counts}")


def _show_record(check: RecordCheck) -> None:
    record = check.record
    found = f" (found: {'; '.join(check.found)[:200]})" if check.found and check.status != "ok" else ""
    found += f" ({check.detail})" if check.detail and check.status == "unchecked" else ""
    click.echo(f"  [{MARKS[check.status]}] {record.kind} {record.name}{found}")
    if check.status != "ok":
        click.echo(f"    {record.zone_line()}")


@cli.command("dns")
@click.option(
    "--check", "live", is_flag=True, help="Also look each record up and say whether it is published."
)
@json_option
@pass_app
def dns_command(app: App, live: bool, as_json: bool) -> None:
    """Print the DNS records this workspace's mail needs, as zone-file lines.

    SPF and MX for the list domain (the return path of every message, where bounces and mailed
    unsubscribes come back), a DKIM TXT record per key for each network's signing domain, and
    DMARC for each From domain. In a DNS provider's web form give the name (the part before the
    domain) and the whole value. With --check, each is looked up (`mailer doctor` does too).
    """
    from mailer.dnscheck import RecordCheck, check_records, records_to_publish

    records = records_to_publish(app.settings, app.shape)
    checks = (
        check_records(records, app.settings.dns_resolver)
        if live
        else [RecordCheck(r, "unchecked") for r in records]
    )

    def human() -> None:
        for check in checks:
            record = check.record
            status = f" [{MARKS[check.status]}]" if live else ""
            click.echo(f"; {record.kind}{status}: {record.why}")
            click.echo(record.zone_line())

    emit(as_json, [c.as_dict() if live else c.record.as_dict() for c in checks], human)
