"""``mailer serve``: the members' web app (unsubscribe, preferences, sign-up, archive, calendars)."""

from __future__ import annotations

import click

from mailer.cli import App, cli, pass_app


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="The port.")
@click.option(
    "--proxy/--no-proxy",
    default=False,
    help="Behind a reverse proxy on this machine: trust its X-Forwarded-For and X-Forwarded-Proto "
    "(the sign-up rate limit counts per client address).",
)
@pass_app
def serve(app: App, host: str, port: int, proxy: bool) -> None:
    """Run the web app members use: one-click unsubscribe, preferences, sign-up with double
    opt-in, the archive of sent issues and calendar feeds.

    Links in mail point at base_url (mailer.toml); put this behind a web server with TLS for the
    public. It answers only to base_url's host (and web_hosts). Its limits (sign-ups, admin
    passwords) are kept in the database, so several processes share them. Its access log never
    holds a whole token: each is cut to its first characters.
    """
    import uvicorn

    from mailer.audience.networks import networks_of
    from mailer.settings import ensure_secret
    from mailer.web import create_app
    from mailer.web.logs import log_config

    settings = ensure_secret(app.settings)
    web = create_app(settings, shape=app.shape)
    names = [n.name for n in networks_of(app.shape, settings)]
    speaking = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    click.echo(f"Serving {speaking} on http://{host}:{port} (links in mail use {settings.base_url})")
    click.echo("  /subscribe  sign-up    /archive/  past issues    /calendar/  event feeds")
    uvicorn.run(
        web,
        host=host,
        port=port,
        proxy_headers=proxy,
        forwarded_allow_ips="127.0.0.1" if proxy else None,
        server_header=False,
        log_level="info",
        log_config=log_config(settings),
    )
