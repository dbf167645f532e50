"""``mailer dkim keys`` and ``mailer dkim dns``: the workspace's DKIM keys and the DNS records that
publish them (the library is :mod:`mailer.message.dkim`)."""

from __future__ import annotations

import click

from mailer.cli import App, cli, emit, json_option, pass_app
from mailer.errors import ConfigError


@cli.group("dkim")
def dkim_group() -> None:
    """DKIM: sign every message for your domain, as Gmail and Yahoo require of bulk senders.

    \b
    mailer dkim keys     make the missing private keys (RSA-2048 and Ed25519, mode 600)
    mailer dkim dns      print the TXT records to publish, one per key and signing domain
    mailer dns           every record the mail needs: SPF, DKIM, DMARC and MX (`mailer doctor` checks them)
    """


@dkim_group.command("keys")
@pass_app
def keys_command(app: App) -> None:
    """Make the workspace's missing DKIM private keys: RSA-2048 and Ed25519, PEM, mode 600.

    Existing keys are left alone (to rotate, set a new selector and key file in mailer.toml, make
    the keys, publish the new records, and only then send with them). `mailer init` and `mailer
    demo` make them already.
    """
    from mailer.workspace import write_dkim_keys

    written = write_dkim_keys(app.settings.workspace, app.settings)
    for path in written:
        click.echo(f"  wrote {path} (mode 600)")
    if not written:
        click.echo("the DKIM keys exist already; nothing written")
    click.echo("Next: publish the records of `mailer dkim dns` in your domain's DNS.")


@dkim_group.command("dns")
@json_option
@pass_app
def dns_command(app: App, as_json: bool) -> None:
    """Print the DNS TXT records that publish the public DKIM keys, one per key the settings sign with
    and signing domain: each network of lists/networks.toml signs for its own domain (its
    `dkim_domain`, else its From address's), and each distinct domain gets its records once.

    Each is a zone-file line, `SELECTOR._domainkey.DOMAIN. IN TXT "v=DKIM1; k=rsa; p=…"`, its value
    cut into strings of at most 255 characters (DNS joins them back). In a DNS provider's web form,
    give the name (SELECTOR._domainkey, under DOMAIN) and the whole value. With --json, a list of
    records, each with its `domain` and the `networks` that sign with it.
    """
    from mailer.audience.networks import networks_of
    from mailer.message import dkim_status, dns_records

    users: dict[str, list[str]] = {}
    for network in networks_of(app.shape, app.settings):
        users.setdefault(network.signing_domain, []).append(network.slug)
    records = dns_records(app.settings, list(users))
    if not records:
        status = dkim_status(app.settings)
        raise ConfigError(
            "no DKIM key to publish" + (f" ({'; '.join(status.missing)})" if status.missing else ""),
            field="dkim",
            hint="make the keys with `mailer dkim keys`",
        )

    def human() -> None:
        for record in records:
            signers = ", ".join(users.get(record.domain, []))
            click.echo(f"; {record.algorithm} for {record.domain} (networks: {signers}): name {record.name}")
            click.echo(record.zone_line())

    emit(as_json, [{**r.as_dict(), "networks": users.get(r.domain, [])} for r in records], human)
