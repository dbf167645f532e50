"""``mailer members``: one person at a time."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from mailer.cli import App, cli, emit, json_option, pass_app

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
@pass_app
def export_command(app: App, email: str) -> None:
    """Print everything held about EMAIL as JSON (a subject access request).

    The member's row, region, interests and fields, every line of the consent log about the
    address, and its suppression, if any.
    """
    from mailer.audience import members

    with app.db.session() as session:
        data = members.export(session, email)
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
@json_option
@pass_app
def unsubscribe_command(
    app: App, email: str, campaign: str | None, network: str | None, as_json: bool
) -> None:
    """Unsubscribe EMAIL from everything, for good (source "admin" in the consent log).

    The member stays on record but is suppressed: never mailed again, and no import can
    resubscribe them. With --network, they leave that network's mail only.
    """
    from mailer.audience import members

    if network is not None:
        with app.db.session() as session:
            newly = members.leave_network(session, email, network, list(app.shape.networks), campaign)
        data = {"email": email, "network": network, "left": True, "newly_left": newly}
        done = f"{email}: left network {network}" if newly else f"{email}: had left {network}; unchanged"
        emit(as_json, data, lambda: click.echo(done))
        return
    with app.db.session() as session:
        newly = members.unsubscribe(session, email, source="admin", campaign=campaign)
    data = {"email": email, "suppressed": True, "newly_suppressed": newly}
    emit(
        as_json,
        data,
        lambda: click.echo(f"{email}: unsubscribed" if newly else f"{email}: already suppressed; unchanged"),
    )


@members_group.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def forget_command(app: App, email: str, yes: bool, as_json: bool) -> None:
    """Erase EMAIL's personal data (the right to erasure); keep only a suppression hash.

    Deletes the member, their interests and fields. The consent log keeps its lines with only
    a hash of the address, and the address is suppressed, so no send and no later import can
    bring them back. This cannot be undone.
    """
    from mailer.audience import members

    with app.db.session() as session:
        members.show(session, email)  # an unknown address fails before the question
    if not yes:
        click.confirm(f"Erase all personal data held about {email}? This cannot be undone", abort=True)
    with app.db.session() as session:
        report = members.forget(session, email)
    data = {"email": email, "erased": True, **vars(report)}

    def human() -> None:
        click.echo(
            f"{email}: erased ({report.interests_removed} interest(s), {report.fields_removed} field(s) "
            f"removed; {report.consent_events_kept} consent-log line(s) kept with only the address hash; "
            "suppressed for good)"
        )

    emit(as_json, data, human)
