"""``mailer members``: one person at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.cli import App, actor_of, actor_option, cli, emit, json_option, pass_app

if TYPE_CHECKING:
    from mailer.audience.members import MemberRecord


@cli.group("members")
def members_group() -> None:
    """One member: show, export (subject access), unsubscribe, forget."""


def _show(record: MemberRecord) -> None:
    from mailer.audience.addresses import clean_name

    click.echo(f"{record.email}")
    click.echo(f"  name:      {record.name or '(none)'}")
    click.echo(f"  postcode:  {record.postcode or '(none)'}")
    click.echo(f"  region:    {record.region_label or '(none)'}")
    click.echo(f"  interests: {', '.join(record.interests) or '(none)'}")
    for name, value in record.fields.items():
        click.echo(f"  {name}: {value}")
    click.echo(f"  added:     {record.created_at:%Y-%m-%d %H:%M} UTC")
    if record.mailed and record.last_mailed_at is not None:
        click.echo(
            f"  mailed:    {record.mailed} campaign(s), the last {record.last_mailed} "
            f"on {record.last_mailed_at:%Y-%m-%d}"
        )
    else:
        click.echo("  mailed:    no campaign yet")
    for left in record.networks_left:
        via = f" via {left.source}" + (f" (campaign {left.campaign})" if left.campaign else "")
        click.echo(
            f"  left:      network {left.network}{via} on {left.created_at:%Y-%m-%d}; none of its mail"
        )
    if record.suppression is None:
        since = f" on {record.status_at:%Y-%m-%d}" if record.status_at else ""
        source = f" ({clean_name(record.status_source)}{since})" if record.status_source else ""
        never = "" if record.status == "subscribed" else "; not mailed"
        click.echo(f"  status:    {record.status}{source}{never}")
    else:
        s = record.suppression
        via = f" via {s.source}" + (f" (campaign {s.campaign})" if s.campaign else "")
        click.echo(f"  status:    suppressed: {s.reason}{via} on {s.created_at:%Y-%m-%d}; no further mail")


@members_group.command("show")
@click.argument("email")
@json_option
@pass_app
def show_command(app: App, email: str, as_json: bool) -> None:
    """Show the member with address EMAIL: region, interests, fields, the campaigns sent to them,
    the networks whose mail they left, and whether they are suppressed (a suppressed member gets
    no further mail)."""
    from mailer.audience import members

    with app.db.session() as session:
        record = members.show(session, email)
    emit(as_json, record.as_dict(), lambda: _show(record))


@members_group.command("export")
@click.argument("email")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a readable page of it to this file (mode 600), to send to the person.",
)
@actor_option
@pass_app
def export_command(app: App, email: str, html_file: Path | None, actor: str | None) -> None:
    """Print everything held about EMAIL as JSON (a subject access request; docs/data.md).

    Their member row (region, interests, fields, status), every line of the consent log, every
    mailing, bounce and complaint, inbound mail from or about them, event answers, their desk
    account with its roles, sessions and audit lines, other records that mention the address, and
    the workspace's files that mention them (outbox copies, inbound and quarantined mail, rejected
    CSV rows); then what mailer cannot see (backups, other machines' logs). Works for a desk-only
    person and an address erased earlier too. The export is recorded in the audit log.

    \b
    Examples:
      mailer members export ann@example.org > ann.json
      mailer members export ann@example.org --html ann.html --as "Jo (data protection)"
    """
    from mailer.rights import access, auditing

    with app.db.session() as session:
        found = access.subject_access(session, app.settings, email)
        auditing.record(session, "members.export", actor=actor_of(actor), object=found.address)
    data = found.as_dict()
    if html_file is not None:
        from mailer.secret_key import write_private_file

        write_private_file(html_file, access.to_html(found, app.settings.organisation))
        click.echo(f"wrote a readable copy to {html_file}", err=True)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@members_group.command("unsubscribe")
@click.argument("email")
@click.option("--campaign", help="The campaign that prompted it, for the consent log.")
@click.option(
    "--network",
    metavar="SLUG",
    help="Leave only this network's mail (lists/networks.toml), not everything; only the member "
    "can rejoin it, from their preferences page.",
)
@actor_option
@json_option
@pass_app
def unsubscribe_command(
    app: App, email: str, campaign: str | None, network: str | None, actor: str | None, as_json: bool
) -> None:
    """Unsubscribe EMAIL from everything, for good (source "admin" in the consent log).

    The member stays on record but is suppressed: never mailed again, and no import can
    resubscribe them. With --network, they leave that network's mail only. Recorded in the
    audit log with who did it (--as, or your login name).
    """
    from mailer.audience import members
    from mailer.rights import auditing

    if network is not None:
        with app.db.session() as session:
            newly = members.leave_network(session, email, network, list(app.shape.networks), campaign)
            auditing.record(
                session,
                "members.unsubscribe",
                actor=actor_of(actor),
                object=email,
                detail=f"network {network}",
            )
        data = {"email": email, "network": network, "left": True, "newly_left": newly}
        done = f"{email}: left network {network}" if newly else f"{email}: had left {network}; unchanged"
        emit(as_json, data, lambda: click.echo(done))
        return
    with app.db.session() as session:
        newly = members.unsubscribe(session, email, source="admin", campaign=campaign)
        auditing.record(
            session, "members.unsubscribe", actor=actor_of(actor), object=email, detail="all mail"
        )
    data = {"email": email, "suppressed": True, "newly_suppressed": newly}
    emit(
        as_json,
        data,
        lambda: click.echo(f"{email}: unsubscribed" if newly else f"{email}: already suppressed; unchanged"),
    )


@members_group.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@actor_option
@json_option
@pass_app
def forget_command(app: App, email: str, yes: bool, actor: str | None, as_json: bool) -> None:
    """Erase everything held about EMAIL (the right to erasure; docs/data.md), keeping only a
    keyed hash of the address so that it is never mailed or imported again.

    Deletes the member, their interests, fields and event answers; anonymises their desk account;
    clears the consent log's details (region, interests), keeping what proves the suppression;
    replaces the address, name and postcode with [erased] in bounces, inbound mail records,
    deliveries and the audit log; compacts the database so no free page keeps them; removes
    outbox copies, inbound and quarantined mail that mention them and their rows in rejected
    CSVs. Says what it could not reach (backups, other machines' logs). Recorded in the audit
    log. This cannot be undone.

    \b
    Examples:
      mailer members forget ann@example.org
      mailer members forget ann@example.org --yes --as "Jo (data protection)" --json
    """
    from mailer.rights import erasure, person

    address = person.normalised(email)
    if not yes:
        click.confirm(f"Erase all personal data held about {address}? This cannot be undone", abort=True)
    report = erasure.forget(app.db, app.settings, email, actor=actor_of(actor))
    if not report.found:
        from mailer.errors import UnknownName

        when = report.already_erased_at
        raise UnknownName(
            f"nothing is held about {address!r}: nothing changed",
            field="email",
            hint=f"its data was erased on {when:%Y-%m-%d}; only its suppression remains"
            if when
            else "check the spelling; `mailer lists export` lists every member",
        )
    data = {"email": address, "erased": report.found, **report.as_dict()}

    def human() -> None:
        click.echo(f"{address}: erased; only a keyed hash of the address is kept, so it stays suppressed")
        if report.member_erased:
            click.echo(
                f"  member: deleted ({report.interests_removed} interest(s), "
                f"{report.fields_removed} field(s))"
            )
        if report.desk_account_anonymised:
            click.echo("  desk account: anonymised (roles, sessions and sign-in links deleted)")
        click.echo(f"  consent log: {report.consent_events_kept} line(s) kept without region or interests")
        for table, count in sorted(report.rows_scrubbed.items()):
            click.echo(f"  {table}: the address replaced with [erased] in {count} row(s)")
        click.echo(f"  database: {report.database}")
        for path in report.files_removed:
            click.echo(f"  removed {path}")
        for path in report.files_rewritten:
            click.echo(f"  rewritten without them: {path}")
        for problem in report.files_unreachable:
            click.secho(f"  not reached: {problem}", fg="yellow")
        click.echo("Not reachable from here; erase there by hand if they hold the address:")
        for place in report.not_reached:
            click.echo(f"  - {place}")

    emit(as_json, data, human)
