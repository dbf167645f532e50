"""``mailer campaigns``: issues and alerts, from writing to sending."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailer.cli import App, cli, emit, json_option, pass_app
from mailer.errors import MailerError, Problem

if TYPE_CHECKING:
    from mailer.identity import Identity
    from mailer.issue.check import CheckResult


@cli.group("campaigns")
def campaigns_group() -> None:
    """Newsletters and alerts: new, check, variants, preview, send, status, retry, report, pause, resume,
    cancel."""


@campaigns_group.command("new")
@click.argument("slug")
@click.option(
    "--kind",
    type=click.Choice(["newsletter", "alert"]),
    default="newsletter",
    show_default=True,
    help="A newsletter (items, highlights, calendar) or an alert (one call to action).",
)
@pass_app
def new_command(app: App, slug: str, kind: str) -> None:
    """Write campaigns/SLUG/issue.yaml: a commented skeleton that explains every field.

    SLUG is lower-case letters, digits and hyphens (e.g. 2025-12-kent-network). An existing file is
    never overwritten. Fill in every TODO, then run `mailer campaigns check SLUG`.
    """
    from mailer.issue import new_campaign

    path = new_campaign(app.settings.workspace, slug, kind, app.shape)
    click.echo(f"wrote {_shown(path)}")
    click.echo(f"fill in every TODO, then run: mailer campaigns check {slug}")


def _shown(path: Path | str | None) -> str:
    """A path relative to the current folder when it is below it (shorter in messages)."""
    if path is None:
        return ""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _problem_data(p: Problem) -> dict[str, object]:
    return {
        "file": _shown(p.path),
        "line": p.line,
        "column": p.column,
        "field": p.field,
        "message": p.message,
        "hint": p.hint,
        "severity": p.severity,
    }


@campaigns_group.command("check")
@click.argument("slug")
@click.option("--no-database", is_flag=True, help="Do not check the audience against the members.")
@json_option
@pass_app
@click.pass_context
def check_command(ctx: click.Context, app: App, slug: str, no_database: bool, as_json: bool) -> None:
    """Check campaigns/SLUG/issue.yaml: every problem at once, as FILE:LINE: FIELD: MESSAGE (HINT).

    Exits with 2 if there are errors (nothing can be sent until they are fixed), 0 otherwise.
    The workspace's own problems (`mailer doctor`: placeholder URLs and domains, a postal address,
    DKIM keys, the key for signed links, the relay, the DNS records) are errors too.
    Every error and every warning is reported in one pass. Warnings (pasted markup such as <script>
    or onclick=, javascript: text, http:// links, events before the issue's date, an item no member
    in the audience would see, items for regions outside the issue's network) are printed but do
    not fail the check; those of the file run even when it has errors. An issue whose network is
    unknown or ambiguous (lists/networks.toml) is an error; a valid one says whom it speaks as.
    The audience is checked against the members when the workspace's database exists and the file
    has no errors.
    """
    from mailer.db import Database
    from mailer.issue import check_campaign

    database: Database | None = None
    note = ""
    url = app.settings.sqlalchemy_url
    if no_database:
        note = "the audience was not checked against the members (--no-database)"
    elif url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        note = "the audience was not checked against the members: no database yet (mailer lists sync)"
    else:
        try:
            database = app.db
        except MailerError as exc:
            note = f"the audience was not checked against the members: {exc}"
    result = check_campaign(app.settings.workspace, slug, app.shape, database, app.settings)
    _add_readiness(app, result)
    notes = [note] if note else result.notes
    identity = _identity(app, slug) if result.ok else None
    if identity is not None:
        sender = f"{identity.sender_name} <{identity.network.from_address}>"
        notes.append(f"speaks as {sender} (network {identity.network.slug})")
    inbox = _inbox_check(app, identity)
    dkim_found = any(p.field == "dkim" for p in result.errors)  # the same DKIM error, once

    def human() -> None:
        for p in (*result.errors, *result.warnings):
            click.echo(str(replace(p, path=_shown(p.path))))
        for n in notes:
            click.echo(f"note: {n}")
        if inbox["error"] and not dkim_found:
            click.secho(f"error: {inbox['error']}", fg="red")
        elif inbox["warning"]:
            click.secho(f"WARNING: {inbox['warning']}", fg="red", bold=True)
        else:
            click.echo(f"note: {inbox['summary']}")
        errors = len(result.errors) + bool(inbox["error"] and not dkim_found)
        counts = f"{errors} error(s), {len(result.warnings)} warning(s)"
        verdict = "OK" if not errors else "NOT READY"
        click.echo(f"{_shown(result.path)}: {verdict}: {counts}")

    emit(
        as_json,
        {
            "slug": slug,
            "path": _shown(result.path),
            "ok": result.ok and not inbox["error"],
            "errors": [_problem_data(p) for p in result.errors],
            "warnings": [_problem_data(p) for p in result.warnings],
            "notes": notes,
            "network": identity.as_dict() if identity is not None else None,
            "dkim": inbox,
        },
        human,
    )
    if not result.ok or inbox["error"]:
        ctx.exit(2)


def _add_readiness(app: App, result: CheckResult) -> None:
    """The workspace's own problems (`mailer doctor`'s, the workers aside) as the check's errors:
    the issue cannot go to members while they stand."""
    from mailer.doctor import diagnose

    found = diagnose(app.settings, app.shape, workers=False).findings
    result.errors.extend(f.problem() for f in found if f.severity == "error")
    if not app.settings.demo:  # a demo's warnings (no postal address, unsigned) are what it is
        result.warnings.extend(f.problem() for f in found if f.severity == "warning" and f.check != "dkim")


def _identity(app: App, slug: str) -> Identity | None:
    """Who a valid issue speaks as (None if that cannot be told: `check` reports why)."""
    from mailer.identity import issue_identity
    from mailer.issue import load_campaign

    try:
        issue = load_campaign(app.settings.workspace, slug, app.shape).issue
        return issue_identity(app.shape, app.settings, issue.network, issue.audience)
    except MailerError:
        return None


def _inbox_check(app: App, identity: Identity | None = None) -> dict[str, Any]:
    """Whether the messages will be DKIM-signed (or the relay signs), and whether the settings make
    usable messages (an http base_url outside localhost is refused): what `check` adds about them,
    for the sender and DKIM domain of the issue's network (``identity``)."""
    from mailer.message import dkim_status
    from mailer.message.template import checked_settings

    settings = identity.settings(app.settings) if identity is not None else app.settings
    try:
        checked_settings(settings)
        status = dkim_status(settings)
    except MailerError as exc:
        return {"signed": False, "error": str(exc), "warning": None, "summary": ""}
    return {**status.as_dict(), "error": None, "summary": status.summary}


@campaigns_group.command("variants")
@click.argument("slug")
@click.option("--audience", metavar="EXPR", help="A segment expression instead of the issue's audience.")
@json_option
@pass_app
def variants_command(app: App, slug: str, audience: str | None, as_json: bool) -> None:
    """Each variant of campaigns/SLUG: its key, who gets it, its items and its number of recipients.

    Members who see the same items share a variant; the renderer runs once per variant. Needs the
    database (the audience is the issue's `audience:` unless --audience is given).
    """
    from mailer.compose import plan
    from mailer.issue import load_campaign

    loaded = load_campaign(app.settings.workspace, slug, app.shape)
    with app.db.session() as session:
        variant_plan = plan(session, loaded, app.shape, audience)
    data = {
        "slug": slug,
        "audience": variant_plan.audience,
        "recipients": variant_plan.total,
        "variants": [
            {
                "key": p.variant.key,
                "label": p.label,
                "recipients": p.members,
                "items": list(p.variant.item_ids),
                "calendar": [e.key for e in p.variant.calendar],
                "groups": [
                    {"region": g.region, "interests": sorted(g.interests), "recipients": g.members}
                    for g in p.groups
                ],
            }
            for p in variant_plan.variants
        ],
    }

    def human() -> None:
        n = len(variant_plan.variants)
        click.echo(
            f"{slug}: {n} variant{'s' if n != 1 else ''} for {variant_plan.total} recipient(s) "
            f"of {variant_plan.audience}"
        )
        for p in variant_plan.variants:
            click.echo(f"\n{p.variant.key}  {p.label}  ({p.members} recipient(s))")
            if len(p.groups) > 1:
                click.echo(f"  {len(p.groups)} groups of region and interests share it")
            click.echo(f"  items ({len(p.variant.items)}): {', '.join(p.variant.item_ids) or '-'}")
            click.echo(f"  calendar: {len(p.variant.calendar)} date(s)")

    emit(as_json, data, human)


@campaigns_group.command("preview")
@click.argument("slug")
@click.option("--member", metavar="EMAIL", help="What this member would get (needs the database).")
@click.option("--region", metavar="R", help="What a member in region R would get.")
@click.option("--interest", "interests", metavar="I", multiple=True, help="…with interest I (repeatable).")
@click.option("--all", "full", is_flag=True, help="The editor's full issue, with every item.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "text", "both"]),
    default="both",
    show_default=True,
    help="Which parts to write.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into. Default: <workspace>/preview/<slug>/.",
)
@click.option("--open", "open_", is_flag=True, help="Open the result in the browser.")
@click.option(
    "--watch", is_flag=True, help="Re-render on every save of the issue or a template (Ctrl-C stops)."
)
@json_option
@pass_app
def preview_command(
    app: App,
    slug: str,
    member: str | None,
    region: str | None,
    interests: tuple[str, ...],
    full: bool,
    fmt: str,
    output: Path | None,
    open_: bool,
    watch: bool,
    as_json: bool,
) -> None:
    """Write what a member (or a kind of member) would get from campaigns/SLUG.

    \b
    --member EMAIL            that member's variant, with their name
    --region R --interest I   a member in R with interest I (repeat --interest for more)
    --all                     the editor's full issue, with every item
    (none of these)           index.html of every variant of the audience (needs the database)

    Personal links are `#` and the name is the member's or "Alex Example". A member outside the
    issue's audience, or suppressed (unsubscribed), gets a warning on stderr (and in --json): a
    send would not reach them; so does a member of another network than the issue's.
    """
    import threading

    from mailer.issue import campaign_path, load_campaign
    from mailer.preview import PreviewRequest, PreviewResult, preview, preview_dir, watched_files
    from mailer.preview import watch as watch_files

    if member and (region or interests or full):
        raise click.UsageError("--member cannot be combined with --region, --interest or --all")
    if full and (region or interests):
        raise click.UsageError("--all cannot be combined with --region or --interest")
    formats = ("html", "text") if fmt == "both" else (fmt,)
    request = PreviewRequest(member=member, region=region, interests=interests, full=full, formats=formats)
    out_dir = output or preview_dir(app.settings, slug)

    def run() -> PreviewResult:
        loaded = load_campaign(app.settings.workspace, slug, app.shape)
        if request.member or request.index:
            with app.db.session() as session:
                result = preview(app.settings, app.shape, loaded, request, out_dir, session)
        else:
            result = preview(app.settings, app.shape, loaded, request, out_dir)
        for warning in result.warnings:
            click.secho(f"warning: {warning}", err=True, fg="yellow")

        def human() -> None:
            click.echo(f"{result.label}:")
            for path in result.paths:
                click.echo(f"  wrote {_shown(path)}")

        data = {
            "slug": slug,
            "label": result.label,
            "variants": result.variants,
            "paths": [_shown(path) for path in result.paths],
            "warnings": list(result.warnings),
        }
        emit(as_json, data, human)
        return result

    result = run()
    if open_ and result.paths:
        click.launch(str(result.paths[0]))
    if watch:
        click.echo("watching the issue file and templates for changes; Ctrl-C stops")
        stop = threading.Event()
        try:
            watch_files(
                lambda: watched_files(app.settings, campaign_path(app.settings.workspace, slug), out_dir),
                run,
                stop,
                on_error=lambda exc: click.secho(f"Error: {exc}", err=True, fg="red"),
            )
        except KeyboardInterrupt:
            stop.set()
            click.echo("stopped watching")
