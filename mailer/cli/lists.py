"""``mailer lists``: the audience's shape and members in bulk."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailer.cli import App, actor_of, actor_option, cli, emit, json_option, pass_app

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailer.audience.importer import ImportReport
    from mailer.audience.members import NewMember
    from mailer.audience.stats import AudienceStats
    from mailer.web.welcome import WelcomeReport


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
    "interests, consent_source, consent_date, opted_in, opted_out, bounced, status, field.NAME (a "
    "member field), or - (leave it out). Repeat for several columns.",
)
@click.option(
    "--consent",
    metavar='"BASIS"',
    help="The basis on which everyone in a file with no status column agreed to be mailed (recorded "
    'in the consent log for each member), e.g. --consent "signed the 2025 petition, tick box".',
)
@click.option(
    "--unknown-region",
    type=click.Choice(["reject", "blank"]),
    default="reject",
    show_default=True,
    help="A row whose region or local group is not in lists/regions.toml: reject it, or import it "
    "with no region.",
)
@click.option(
    "--first-name-from-name",
    is_flag=True,
    help="Greet members whose file has no first-name column by the first word of their name.",
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
    app: App,
    file: Path,
    dry_run: bool,
    mapping: tuple[str, ...],
    consent: str | None,
    unknown_region: str,
    first_name_from_name: bool,
    welcome: bool,
    as_json: bool,
) -> None:
    """Import members from a CSV file (never resubscribes anyone who left).

    \b
    Columns (a header line names them; only email is required):
      email, name (or first_name + last_name), postcode, region, interests (;-separated),
      consent_source, consent_date, and the status columns below
    Headers are matched whatever their case, spaces or punctuation, and common CRM headers are
    recognised: Email Address, E-mail, Full Name, First Name + Last Name, Surname, Post Code, ZIP,
    Local Group, Group, Branch, Area, Tags, Topics, Date Joined, … (the report shows how each
    column was read). --map names any other: --map "Contact=email". Any other column becomes a
    member field that segments can test (field.student = "yes").

    Consent is data: the columns by which CRMs and list tools say whether an address may be
    mailed are read as the member's status (Opted In, Do Not Email, Email Opt Out, Unsubscribed,
    On Hold, Bounced, CiviCRM's do_not_email, Salesforce's HasOptedOutOfEmail, NationBuilder's
    email_opt_in, Action Network's can2_subscription_status, Mailchimp's exports, … see
    docs/import.md). A row that says no is never mailed: suppressed, or "not opted in". A "no"
    from any file wins over a "yes" from another. Do Not Call, Do Not Mail (post) and other
    phone or post flags change nothing about email. A file with no status column and no
    consent_source column is refused unless --consent gives the basis.

    Members' own choices win: a name, region, interests or status a member set themselves
    (preferences page, sign-up) is kept; the report counts them and lists them in FILE's name +
    .kept.csv.

    Addresses are validated and normalised; rows for the same address are merged (the last
    non-empty cell wins, interests are combined); members already held are updated, and an empty
    cell never clears what is held. An empty region comes from the postcode. Rejected rows are
    reported with their line and reason and written to FILE's name + .rejected.csv (mode 0600;
    not on a dry run, which writes nothing at all). The import is one transaction: it all
    happens, or none of it does. lists/regions.toml and interests.toml are synced first.

    A cell that starts with ' followed by =, +, -, @, a tab or a CR loses the ' (that is how
    `mailer lists export` writes such cells), so an export imports back unchanged.

    --welcome mails each newly added member, after the import, the welcome of their region's
    network; the report says how many were sent. Off by default; nothing on a dry run.

    \b
    Examples:
      mailer lists import crm-export.csv --dry-run
      mailer lists import crm-export.csv --map "Contact E-mail=email" --map "Notes=-"
      mailer lists import petition.csv --consent "signed the petition with the email tick box"
      mailer lists import new-members.csv --welcome
    """
    from mailer.audience.importer import Options, import_csv
    from mailer.audience.shape import sync

    welcoming = welcome and not dry_run
    if welcoming:
        _require_secret(app)  # before anything is written
    options = Options(
        consent=consent,
        unknown_region_blank=unknown_region == "blank",
        first_name_from_name=first_name_from_name,
    )
    bars = _Bars(dry_run)
    with app.db.session() as session:
        synced = None if dry_run else sync(session, app.shape)
        report = import_csv(
            session,
            file,
            app.shape,
            dry_run=dry_run,
            progress=bars.progress(as_json),
            mapping=mapping,
            options=options,
        )
        added: list[NewMember] = []
        if welcoming:
            from mailer.audience.members import members_added

            added = members_added(session, report.added_ids)
    bars.finish()
    data = report.as_dict()
    if synced is not None and synced.changed:
        data["lists_synced"] = vars(synced)
    welcomes = _send_welcomes(app, added) if welcoming else None
    if welcomes is not None:
        data["welcomes"] = welcomes.as_dict()
    emit(as_json, data, lambda: _print_import(report, welcomes))


def _require_secret(app: App) -> None:
    if not app.settings.secrets:
        from mailer.errors import ConfigError

        raise ConfigError(
            "--welcome mails signed preferences links and needs the key for signed links",
            field="secret",
            hint="set MAILER_SECRET or create .mailer-secret (mailer serve creates one)",
        )


_BAR_LABELS = {"read": "Reading the file", "check": "Checking rows", "write": "Importing rows"}


class _Bars:
    """Progress bars on standard error while a long import runs (a terminal only)."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.bars: dict[str, Any] = {}

    def progress(self, as_json: bool) -> Callable[[str, int, int], None] | None:
        return None if as_json or not sys.stderr.isatty() else self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if stage == "check" and not self.dry_run:
            return  # the write bar follows each chunk's check
        bar = self.bars.get(stage)
        if bar is None:
            for other in self.bars.values():
                other.render_finish()
            bar = self.bars[stage] = click.progressbar(
                length=total, label=_BAR_LABELS[stage], file=sys.stderr
            )
        bar.update(done - bar.pos)

    def finish(self) -> None:
        for bar in self.bars.values():
            bar.render_finish()


def _print_mapping(report: ImportReport) -> None:
    """The column mapping as a table, and loudly what was not found."""
    from mailer.audience.addresses import clean_name

    width = min(40, max([len("Column"), *(len(clean_name(c)) for c, _t in report.columns)]))
    click.echo(f"  {'Column':<{width}}  Read as")
    for cell, target in report.columns:
        shown = "(left out)" if target == "-" else target
        if cell in report.status_kinds:
            shown += f" ({report.status_kinds[cell]})"
        if cell in report.not_email:
            shown += "  (phone/post only: not an email status)"
        click.echo(f"  {clean_name(cell)[:40]:<{width}}  {shown}")
    _print_missing(report)


def _print_missing(report: ImportReport) -> None:
    """Loudly, on standard error: which of email, region, interests and status has no column."""
    for missing in report.missing:
        if missing == "region" and report.postcode_column:
            click.echo("  note: no region column: regions come from the postcodes", err=True)
        elif missing == "status":
            basis = f"basis: --consent {report.consent!r}" if report.consent else "basis: consent_source"
            click.echo(f"  WARNING: no status column (Opted In, Do Not Email, …); {basis}", err=True)
        else:
            click.echo(
                f"  WARNING: no {missing} column was found: no member gets one from this file", err=True
            )


def _print_import(report: ImportReport, welcomes: WelcomeReport | None) -> None:
    from mailer.audience.addresses import clean_name

    dry_run = report.dry_run
    verb = "would be" if dry_run else "were"
    click.echo(f"{report.path}: {report.rows} row(s) read{' (dry run: nothing changed)' if dry_run else ''}")
    click.echo(f"  columns:   {clean_name(report.mapping)}")
    if dry_run:
        _print_mapping(report)
    else:
        _print_missing(report)
    for label, value in (
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
    ):
        click.echo(f"  {label + ':':<11}{value}")
    click.echo(f"  rejected:  {report.rejected}")
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items()))
    if statuses:
        click.echo(f"  status in the file: {statuses}")
    if report.merged:
        click.echo(f"  merged:    {report.merged} row(s) repeated an earlier address and {verb} merged")
    if report.cleaned:
        click.echo(f"  cleaned:   {report.cleaned} row(s) had control characters (CR, LF, …) removed")
    notes = (
        (report.newly_suppressed, f"said no: {verb} suppressed (never mailed; new addresses not added)"),
        (report.not_opted_in, f"not opted in: {verb} kept from all mail until they sign up themselves"),
        (report.blank_regions, f"row(s) with an unknown region {verb} imported with no region"),
    )
    for count, text in notes:
        if count:
            click.echo(f"  {count} {text}")
    if report.suppressed:
        click.echo(
            f"  suppressed, kept suppressed: {report.suppressed}"
            + (f" ({report.not_added} not added: no member record)" if report.not_added else "")
        )
    _print_kept(report)
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


def _print_kept(report: ImportReport) -> None:
    from mailer.audience.addresses import clean_name

    if not report.kept:
        return
    fields = ", ".join(f"{k} {v}" for k, v in sorted(report.kept_fields.items()))
    click.echo(f"  kept as members chose them: {report.kept} member(s) ({fields})")
    for k in report.kept_rows:
        click.echo(
            f"  line {k.row}: {clean_name(k.email)}: {k.field} kept as {clean_name(k.kept)!r} "
            f"(file: {clean_name(k.in_file)!r}; chosen {k.chosen})"
        )
    if report.kept_path is not None:
        click.echo(f"kept fields written to {report.kept_path}")


def _send_welcomes(app: App, added: list[NewMember]) -> WelcomeReport:
    """Mail the welcome to each of ``added`` (``members.NewMember``s): a ``WelcomeReport``."""
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
    """How many members EXPR reaches: those who would really be mailed (not suppressed, not
    "not opted in", and not gone from the mail of the network EXPR's regions belong to), the
    number a send to EXPR would confirm.

    \b
    Examples:
      mailer lists count kent-refugees
      mailer lists count 'region:west-midlands and interest:mp-advocacy'
      mailer lists count --json all          prints {"count": N}
    """
    from mailer.audience import segments as segments_lib
    from mailer.audience.mailable import count_reachable

    condition = segments_lib.compile_segment(expression, app.shape)  # fails before the database opens
    with app.db.session() as session:
        n = count_reachable(session, condition, _network_of(app, expression))
    if as_json:
        click.echo(json.dumps({"count": n}))
    else:
        click.echo(str(n))


def _network_of(app: App, expression: str) -> str:
    """The network a mailing to ``expression`` would speak as, as a send names it ("" for a
    workspace's only one, or when the expression implies no single network)."""
    from mailer.audience import networks
    from mailer.errors import ConfigError

    if not app.shape.networks:
        return ""
    try:
        return networks.campaign_network(app.shape, app.settings, audience=expression).slug
    except ConfigError:
        return ""


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
@actor_option
@pass_app
def export_command(app: App, expression: str, output: Path | None, raw: bool, actor: str | None) -> None:
    """Export members as CSV, one row per member. Recorded in the audit log (who, when, which
    segment, where to; docs/data.md, Audit).

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
    from mailer.rights import auditing

    shape = app.shape
    compile_segment(expression, shape)  # a bad expression fails before anything opens
    with app.db.session() as session:
        # Recorded before the first row goes out: an export cut short still gave some away.
        where = str(output) if output is not None else "standard output"
        auditing.record(
            session, "lists.export", actor=actor_of(actor), object=expression, detail=f"to {where}"
        )
    with app.db.session() as session:
        if output is None:
            try:
                exports.write_csv(session, sys.stdout, shape, expression, raw=raw)
                sys.stdout.flush()
            except BrokenPipeError:  # `mailer lists export | head`: the reader has all it wants
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # keep the exit quiet
            return
        with exports.open_private(output) as fh:
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
