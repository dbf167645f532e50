"""``mailer serve``: the web app (members' pages and the desk) and, built in, the sending worker."""

from __future__ import annotations

import click

from mailer.cli import App, cli, pass_app


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="The port.")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Web processes answering requests side by side (about one a core). The sending worker "
    "stays one, whatever this says.",
)
@click.option(
    "--worker/--no-worker",
    default=True,
    help="Run the sending worker inside serve (the default), so that sends from the desk, "
    "scheduled campaigns and retries go out. --no-worker where separate `mailer worker` "
    "processes send.",
)
@click.option(
    "--proxy/--no-proxy",
    default=False,
    help="Behind a reverse proxy on this machine: trust its X-Forwarded-For and X-Forwarded-Proto "
    "(the sign-up rate limit counts per client address).",
)
@pass_app
def serve(app: App, host: str, port: int, processes: int, worker: bool, proxy: bool) -> None:
    """Run the web app: what members use (one-click unsubscribe, preferences, sign-up with double
    opt-in, the archive of sent issues, calendar feeds), the editors' desk (/desk/), and, built
    in, the sending worker that sends what the desk and `campaigns send --at` queue.

    Links in mail point at base_url (mailer.toml); put this behind a web server with TLS for the
    public. It answers only to base_url's host (and web_hosts). Its limits (sign-ups, admin
    passwords) are kept in the database, so several processes share them. Its access log never
    holds a whole token: each is cut to its first characters. log_format = "json" writes JSON lines.

    For a load balancer and a monitor: /healthz (JSON; 200, or 503 with the problems) and
    /metrics (Prometheus; from this machine only, unless metrics_allow or MAILER_METRICS_TOKEN
    says otherwise).

    With several processes the sending worker still runs once, in the process that supervises
    them. On SQLite it does not start beside a running `mailer worker` (SQLite takes one worker);
    on PostgreSQL it sends alongside any others.

    \b
    Examples:
      mailer serve                              one web process and the sending worker
      mailer serve --processes 2 --proxy        behind nginx on a 2-core server
      mailer serve --no-worker                  where `mailer worker` processes send
    """
    from mailer.audience.networks import networks_of
    from mailer.settings import ensure_secret
    from mailer.web import serving

    settings = ensure_secret(app.settings)
    db = app.db  # opened, and migrated if behind, once before the web processes start
    served = serving.plan(db, settings, host=host, port=port, processes=processes, proxy=proxy, worker=worker)
    names = [n.name for n in networks_of(app.shape, settings)]
    speaking = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    web = f"{processes} web processes" if processes > 1 else "one web process"
    click.echo(
        f"Serving {speaking} on http://{host}:{port} with {web} (links in mail use {settings.base_url})"
    )
    click.echo(
        "  /subscribe  sign-up    /archive/  past issues    /calendar/  event feeds    /desk/  editors"
    )
    click.echo("  /healthz  health       /metrics  Prometheus (from this machine)")
    click.echo(
        "  sending: the built-in worker sends what is queued and starts scheduled campaigns"
        if served.worker
        else f"  sending: {served.worker_note}"
    )

    def say(line: str) -> None:
        click.echo(f"worker: {line}", err=True)

    serving.run(db, settings, served, say)
