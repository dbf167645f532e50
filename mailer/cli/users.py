"""``mailer users``: the people of the editorial desk (``mailer serve``, ``/desk/``) and their roles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from mailer.cli import App, cli, emit, json_option, pass_app

if TYPE_CHECKING:
    from mailer.desk.people import Person

ROLE_CHOICES = ("admin", "editor", "approver", "contributor")


@cli.group("users")
def users_group() -> None:
    """The desk's people: add (with a role), list, remove, sign out everywhere.

    \b
    Roles, each for a network (--network) or, for a contributor, a local group (--region):
      admin         everything; without --network, in every network
      editor        compose, test-send, schedule, and send once approved
      approver      approve an issue (never one they edited last)
      contributor   send events and news to their region's network
    People sign in at /desk/ with a link mailed to them; every change here is in the audit log.
    """


def _show(app: App, found: list[Person]) -> None:
    from mailer.desk.people import describe, network_label

    if not found:
        click.echo("Nobody is on the desk yet: mailer users add EMAIL --role admin")
        return
    for person in found:
        state = "" if person.active else "  (removed: cannot sign in)"
        name = f" ({person.name})" if person.name else ""
        click.echo(f"{person.email}{name}{state}")
        for role in person.roles:
            label = network_label(app.shape, app.settings, role.network)
            click.echo(f"  {describe(role)}  [{label}]")
        if not person.roles:
            click.echo("  no roles")


@users_group.command("add")
@click.argument("email")
@click.option("--role", required=True, help="admin, editor, approver or contributor.")
@click.option(
    "--network",
    default="",
    help="The network's slug (lists/networks.toml). An admin without it is an admin of every network; "
    "a contributor's follows from --region.",
)
@click.option("--region", default="", help="A contributor's region or local group (lists/regions.toml).")
@click.option("--name", default="", help="The person's name, as the desk shows it.")
@json_option
@pass_app
def add_command(app: App, email: str, role: str, network: str, region: str, name: str, as_json: bool) -> None:
    """Give EMAIL a role on the desk, adding the person if they are new.

    \b
    mailer users add ed@example.org --role editor --network central-england --name "Ed Example"
    mailer users add bea@example.org --role contributor --region birmingham
    mailer users add root@example.org --role admin
    """
    from mailer.desk import people

    checked = people.check_role(app.shape, app.settings, role, network, region)
    now = datetime.now(UTC)
    with app.db.session() as session:
        added = people.add(session, email, checked, name=name, by=None, now=now, via="cli")
    data = {
        **added.person.as_dict(),
        "added_person": added.new_person,
        "added_role": added.new_role,
        "role": checked.as_dict(),
    }

    def human() -> None:
        what = people.describe(checked)
        if added.new_role:
            who = "added, " if added.new_person else ""
            click.echo(f"{added.person.email}: {who}now {what}")
        else:
            click.echo(f"{added.person.email}: already {what}; unchanged")

    emit(as_json, data, human)


@users_group.command("list")
@json_option
@pass_app
def list_command(app: App, as_json: bool) -> None:
    """Everyone on the desk with their roles (removed people last)."""
    from mailer.desk import people

    with app.db.session() as session:
        found = people.everyone(session)
    emit(as_json, [p.as_dict() for p in found], lambda: _show(app, found))


@users_group.command("remove")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLE_CHOICES), help="Remove only this role.")
@click.option("--network", help="Remove only roles in this network.")
@click.option("--region", help="Remove only roles for this region.")
@json_option
@pass_app
def remove_command(
    app: App, email: str, role: str | None, network: str | None, region: str | None, as_json: bool
) -> None:
    """Take roles from EMAIL. Without --role, --network or --region: every role, and the person can
    no longer sign in (their sessions end now)."""
    from mailer.desk import people
    from mailer.errors import UnknownName, suggest

    if network is not None and network != "":
        known = dict.fromkeys(app.shape.networks)
        if not app.shape.networks:
            from mailer.audience.networks import default_network

            own = default_network(app.settings).slug
            if network != own:
                raise UnknownName(
                    f"unknown network {network!r}", field="network", hint=f"the network is {own!r}"
                )
            network = ""
        elif network not in known:
            raise UnknownName(
                f"unknown network {network!r}", field="network", hint=suggest(network, known, "networks")
            )
    if region and region not in app.shape.regions:
        raise UnknownName(
            f"unknown region {region!r}", field="region", hint=suggest(region, app.shape.regions, "regions")
        )
    now = datetime.now(UTC)
    everything = (role, network, region) == (None, None, None)
    with app.db.session() as session:
        removed = people.remove(
            session, email, role=role, network=network, region=region, by=None, now=now, via="cli"
        )
    data = {"email": email, "removed": [r.as_dict() for r in removed], "disabled": everything}

    def human() -> None:
        for r in removed:
            click.echo(f"{email}: no longer {people.describe(r)}")
        if everything:
            click.echo(f"{email}: removed from the desk; cannot sign in")

    emit(as_json, data, human)


@users_group.command("revoke")
@click.argument("email")
@json_option
@pass_app
def revoke_command(app: App, email: str, as_json: bool) -> None:
    """Sign EMAIL out everywhere now: every session ends, and unused sign-in links stop working."""
    from mailer.desk import people, sessions

    now = datetime.now(UTC)
    with app.db.session() as session:
        found = people.find(session, email)
        count = sessions.revoke_all(session, found.id, now=now, by=None, via="cli")
    emit(
        as_json,
        {"email": found.email, "sessions_ended": count},
        lambda: click.echo(f"{found.email}: signed out everywhere ({count} session(s) ended)"),
    )
