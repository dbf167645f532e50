"""``mailer lists``: the audience's shape and members in bulk."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailer.cli import App, cli, emit, json_option, pass_app

if TYPE_CHECKING:
    from mailer.audience.stats import AudienceStats
    from mailer.web.welcome import NewMember, WelcomeReport


@cli.group("lists")
def lists_group() -> None:
    """Regions, interests, segments and members in bulk."""


@lists_group.command("sync")
@click.option(
    "--move",
    "moves",
    metavar="OLD=NEW",
    multiple=True,
    help="Before region (or interest) OLD goes, move its members (their choices) to NEW. Repeatable.",
)
@json_option
@pass_app
def sync_command(app: App, moves: tuple[str, ...], as_json: bool) -> None:
    """Load lists/regions.toml and lists/interests.toml into the database: any edit of them.

    Regions added, renamed (a new name; a new slug with `renamed_from = "old-slug"`, so its members
    follow), moved under another parent, removed, or the whole tree replaced. Idempotent: running it
    twice changes nothing. A region or interest that members still use is never removed silently:
    the sync is refused, naming it and its members, until it is kept, renamed or its members moved
    (--move OLD=NEW).
    """
    from mailer.audience.shape import sync

    pairs: dict[str, str] = {}
    for move in moves:
        old, sep, new = (part.strip() for part in move.partition("="))
        if not sep or not old or not new:
            raise click.BadParameter(f"{move!r} is not OLD=NEW", param_hint="--move")
        pairs[old] = new
    with app.db.session() as session:
        report = sync(session, app.shape, pairs)
    data = vars(report)

    def human() -> None:
        if not report.changed:
            click.echo("lists already in sync")
        else:
            click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items() if v))

    emit(as_json, data, human)


@lists_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and report what would change; write nothing.")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar='"HEADER=TARGET"',
    help="Read the column HEADER as TARGET: email, name, first_name, last_name, postcode, region, "
    "interests, consent_source, consent_date, field.NAME (a member field), or - (leave it out). "
    "Repeat for several columns.",
)
@click.option(
    "--welcome",
    is_flag=True,
    help="Mail each member this import adds (not those it updates) the welcome of their region's "
    "network, through the relay in mailer.toml, as a confirmed sign-up gets.",
)
@json_option
@pass_app
def import_command(
    app: App, file: Path, dry_run: bool, mapping: tuple[str, ...], welcome: bool, as_json: bool
) -> None:
    """Import members from a CSV file (never resubscribes anyone who left).

    \b
    Columns (a header line names them; only email is required):
      email, name (or first_name + last_name), postcode, region, interests (;-separated),
      consent_source, consent_date
    Headers are matched whatever their case, spaces or punctuation, and common CRM headers are
    recognised: Email Address, E-mail, Full Name, First Name + Last Name, Post Code, Postal Code,
    ZIP, … (the report says how each column was read). --map names any other: --map
    "Contact=email". Any other column becomes a member field that segments can test
    (field.student = "yes").

    Addresses are validated and normalised; rows for the same address are merged (the last
    non-empty cell wins, interests are combined); members already held are updated, and an empty
    cell never clears what is held. An empty region comes from the postcode. Rejected rows are
    reported with their line and reason and written to FILE's name + .rejected.csv (not on a dry
    run, which writes nothing at all). An address whose local part is not ASCII is rejected:
    mailer sends without SMTPUTF8, so it could never be mailed. A suppressed address stays
    suppressed, whatever the file says. The import is one transaction: it all happens, or none of
    it does. lists/regions.toml and interests.toml are synced first.

    A cell that starts with ' followed by =, +, -, @, a tab or a CR loses the ' (that is how
    `mailer lists export` writes such cells), so an export imports back unchanged; the rejected
    rows are written the same spreadsheet-safe way.

    --welcome mails each newly added member, after the import, the welcome of their region's
    network (its welcome text, their local group's contact, the next events near them and their
    preferences link); the report says how many were sent. Off by default; nothing on a dry run.

    \b
    Examples:
      mailer lists import crm-export.csv --dry-run
      mailer lists import crm-export.csv --map "Contact E-mail=email" --map "Notes=-"
      mailer lists import new-members.csv --welcome
    """
    from mailer.audience.addresses import clean_name
    from mailer.audience.importer import import_csv
    from mailer.audience.shape import sync

    shape = app.shape
    welcoming = welcome and not dry_run
    if welcoming and not app.settings.secrets:  # before anything is written
        from mailer.errors import ConfigError

        raise ConfigError(
            "--welcome mails signed preferences links and needs the key for signed links",
            field="secret",
            hint="set MAILER_SECRET or create .mailer-secret (mailer serve creates one)",
        )
    show_bar = not as_json and sys.stderr.isatty()
    bars: dict[str, Any] = {}
    labels = {"read": "Reading the file", "check": "Checking rows", "write": "Importing rows"}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "check" and not dry_run:
            return  # the write bar follows each chunk's check
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.render_finish()
            bar = bars[stage] = click.progressbar(length=total, label=labels[stage], file=sys.stderr)
        bar.update(done - bar.pos)

    with app.db.session() as session:
        synced = None if dry_run else sync(session, shape)
        report = import_csv(
            session, file, shape, dry_run=dry_run, progress=progress if show_bar else None, mapping=mapping
        )
        added: list[NewMember] = []
        if welcoming:
            from mailer.web.welcome import members_added

            added = members_added(session, report.added_ids)
    for bar in bars.values():
        bar.render_finish()
    data = report.as_dict()
    if synced is not None and synced.changed:
        data["lists_synced"] = vars(synced)
    welcomes = _send_welcomes(app, added) if welcoming else None
    if welcomes is not None:
        data["welcomes"] = welcomes.as_dict()

    def human() -> None:
        verb = "would be" if dry_run else "were"
        click.echo(f"{file}: {report.rows} row(s) read{' (dry run: nothing changed)' if dry_run else ''}")
        click.echo(f"  columns:   {clean_name(report.mapping)}")
        click.echo(f"  added:     {report.added}")
        click.echo(f"  updated:   {report.updated}")
        click.echo(f"  unchanged: {report.unchanged}")
        click.echo(f"  rejected:  {report.rejected}")
        if report.merged:
            click.echo(f"  merged:    {report.merged} row(s) repeated an earlier address and {verb} merged")
        if report.cleaned:
            click.echo(f"  cleaned:   {report.cleaned} row(s) had control characters (CR, LF, …) removed")
        if report.suppressed:
            click.echo(
                f"  suppressed, kept suppressed: {report.suppressed}"
                + (f" ({report.not_added} not added: no member record)" if report.not_added else "")
            )
        for r in report.rejections:
            click.echo(f"  line {r.row}: {clean_name(r.email) or '(no address)'}: {r.reason}")
        if report.rejected > len(report.rejections):
            more = report.rejected - len(report.rejections)
            where = f"in {report.rejected_path}" if report.rejected_path else "not listed"
            click.echo(f"  … and {more} more rejected row(s) ({where})")
        if report.rejected_path is not None:
            click.echo(f"rejected rows written to {report.rejected_path}")
        if welcomes is not None:
            click.echo(f"  welcomed:  {welcomes.sent} new member(s) mailed a welcome")
            for address, reason in welcomes.failed:
                click.echo(f"  welcome not sent to {clean_name(address)}: {reason}", err=True)

    emit(as_json, data, human)


def _send_welcomes(app: App, added: list[NewMember]) -> WelcomeReport:
    """Mail the welcome to each of ``added`` (``welcome.NewMember``s): a ``WelcomeReport``."""
    from datetime import datetime

    from mailer.web.csrf import Csrf
    from mailer.web.mail import relay_sender
    from mailer.web.pages import Pages
    from mailer.web.welcome import send_welcomes

    settings = app.settings
    pages = Pages(settings, Csrf(settings.secrets, secure=False))  # mails only: no forms
    today = datetime.now(settings.zone).date()
    with app.db.session() as session:
        return send_welcomes(
            session, pages, settings, app.shape, added, today=today, send=relay_sender(settings)
        )


@lists_group.command("generate")
@click.argument("count", type=click.IntRange(min=0))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CSV to this file instead of standard output.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed gives the same members.")
@pass_app
def generate_command(app: App, count: int, output: Path | None, seed: int) -> None:
    """Write COUNT synthetic members as CSV (example.org addresses), for demos and benchmarks.

    They are spread over the regions in lists/regions.toml with postcodes in their areas; some
    leave the region empty so that the import assigns it from the postcode.
    """
    from mailer.audience.synthetic import generate, write_csv, write_rows

    rows = generate(count, app.shape, seed=seed)
    if output is None:
        write_rows(sys.stdout, rows)
        return
    n = write_csv(output, rows)
    click.echo(f"wrote {n} member(s) to {output}", err=True)


EXPRESSION_HELP = """
\b
EXPR is a saved segment's name (lists/segments.toml) or an expression:
  region:kent                 Kent and every region below it
  interest:refugees           members who chose that interest
  field.student = "yes"       a free-form field from an imported column (also !=)
  all                         everyone
combined with and, or, not and parentheses (not binds tighter than and, and than or):
  region:kent and (interest:refugees or interest:womens-rights) and not field.student = "yes"
Quote the whole expression for your shell. Suppressed members never count. An expression
holds at most 200 conditions and 50 levels of nesting (saved segments included), and 10,000
characters.
"""


@lists_group.command("count", epilog=EXPRESSION_HELP)
@click.argument("expression", metavar="EXPR")
@json_option
@pass_app
def count_command(app: App, expression: str, as_json: bool) -> None:
    """How many members EXPR reaches.

    \b
    Examples:
      mailer lists count kent-refugees
      mailer lists count 'region:west-midlands and interest:mp-advocacy'
      mailer lists count --json all          prints {"count": N}
    """
    from mailer.audience import segments as segments_lib

    segments_lib.compile_segment(expression, app.shape)  # a bad expression fails before the database opens
    with app.db.session() as session:
        n = segments_lib.count(session, expression, app.shape)
    if as_json:
        click.echo(json.dumps({"count": n}))
    else:
        click.echo(str(n))


@lists_group.command("export", epilog=EXPRESSION_HELP)
@click.option(
    "--segment", "-s", "expression", default="all", metavar="EXPR", help="Who to export (default: all)."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CSV to this file instead of standard output.",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Write every cell as stored, without the ' that keeps a spreadsheet from running it as a formula.",
)
@pass_app
def export_command(app: App, expression: str, output: Path | None, raw: bool) -> None:
    """Export members as CSV, one row per member.

    Columns: email, name, postcode, region, interests (;-separated), then one column per
    free-form field. Suppressed members are never exported. Rows are streamed in chunks, so a
    national list does not have to fit in memory.

    Safe to open in a spreadsheet: a cell that starts with =, +, -, @, a tab or a carriage
    return is written with a ' before it, so that it shows as text instead of running as a
    formula (a name like =HYPERLINK(…) could otherwise send data elsewhere). `mailer lists
    import` takes that ' off again. --raw writes the cells as stored.

    \b
    Examples:
      mailer lists export > everyone.csv
      mailer lists export --segment 'region:kent and interest:refugees' -o kent-refugees.csv
    """
    from mailer.audience import exports
    from mailer.audience.segments import compile_segment

    shape = app.shape
    compile_segment(expression, shape)  # a bad expression fails before anything opens
    with app.db.session() as session:
        if output is None:
            try:
                exports.write_csv(session, sys.stdout, shape, expression, raw=raw)
                sys.stdout.flush()
            except BrokenPipeError:  # `mailer lists export | head`: the reader has all it wants
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # keep the exit quiet
            return
        with output.open("w", newline="", encoding="utf-8") as fh:
            n = exports.write_csv(session, fh, shape, expression, raw=raw)
    click.echo(f"wrote {n} member(s) to {output}", err=True)


def _stats_table(s: AudienceStats) -> None:
    width = max([len("(no region)"), *(2 * r.depth + len(r.name) for r in s.regions)]) + 2
    click.echo(f"{'Region':<{width}}{'Members':>9}{'Suppressed':>12}{'Own':>9}{'Own supp.':>11}")
    for r in s.regions:
        label = "  " * r.depth + r.name
        click.echo(
            f"{label:<{width}}{r.total_members:>9}{r.total_suppressed:>12}{r.members:>9}{r.suppressed:>11}"
        )
    nowhere = "(no region)"
    click.echo(f"{nowhere:<{width}}{s.without_region:>9}{s.without_region_suppressed:>12}")
    click.echo(f"{'Total':<{width}}{s.members:>9}{s.suppressed:>12}")
    click.echo("")
    iwidth = max([len("Interest"), *(len(i.name) for i in s.interests)]) + 2
    click.echo(f"{'Interest':<{iwidth}}{'Members':>9}{'Suppressed':>12}")
    for i in s.interests:
        click.echo(f"{i.name:<{iwidth}}{i.members:>9}{i.suppressed:>12}")
    click.echo("")
    click.echo(
        f"{s.reachable} of {s.members} members can be mailed; "
        f"{s.suppressions} suppression(s) on record ({s.suppressions - s.suppressed} not on the list)."
    )


@lists_group.command("stats")
@json_option
@pass_app
def stats_command(app: App, as_json: bool) -> None:
    """Members and suppressions per region and per interest.

    A region's Members and Suppressed include every region below it; Own counts only members
    whose home region is exactly that one. Suppressed members stay on the list but are never mailed.
    """
    from mailer.audience.stats import stats

    with app.db.session() as session:
        result = stats(session, app.shape)
    emit(as_json, result.as_dict(), lambda: _stats_table(result))
