"""The report page (``mailer campaigns report --html`` and the web app's ``/admin/``): the figures
gathered once, drawn as SVG charts beside their tables, rendered from ``report.html.j2``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.reports.campaign import LABELS, CampaignReport, Figures, IssueRow, campaign_report, issues
from mailer.reports.history import History, history
from mailer.settings import Settings

if TYPE_CHECKING:
    import jinja2

# -- the page -------------------------------------------------------------------------------------------

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_LINES = 7


def month_label(month: str) -> str:
    """``2025-11`` → ``Nov 2025``."""
    year, number = month.split("-")
    return f"{MONTHS[int(number) - 1]} {year}"


@dataclass(frozen=True)
class Page:
    """Everything the report page shows: a campaign (optional), the list over time, every issue."""

    organisation: str
    report: CampaignReport | None
    history: History
    issues: tuple[IssueRow, ...]
    generated_at: datetime


def page_data(
    session: Session, shape: Shape, organisation: str, slug: str | None = None, *, now: datetime | None = None
) -> Page:
    """Gather the figures of the report page (of campaign ``slug``, or of the list as a whole)."""
    moment = now or datetime.now(UTC)
    return Page(
        organisation=organisation,
        report=campaign_report(session, shape, slug) if slug else None,
        history=history(session, shape, months=24, now=moment),
        issues=issues(session, shape),
        generated_at=moment,
    )


def charts_for(page: Page) -> dict[str, Any]:
    """The SVG charts of a page: ``members`` (over time by region), ``issues`` (unsubscribes and
    bounces per issue) and, for a campaign, ``regions`` (its losses by region)."""
    from mailer.reports import charts

    out: dict[str, Any] = dict.fromkeys(("members", "issues", "regions"))  # None: no chart (no data)
    h = page.history
    labels = [month_label(m) for m in h.months]
    groups = sorted(h.groups, key=lambda g: -h.members[g][-1] if h.months else 0)
    lines: list[tuple[str, tuple[int, ...]]] = [(g, h.members[g]) for g in groups[:MAX_LINES]]
    if len(groups) > MAX_LINES:
        rest = groups[MAX_LINES:]
        lines.append(
            ("Other regions", tuple(sum(h.members[g][i] for g in rest) for i in range(len(h.months))))
        )
    if labels:
        latest = ", ".join(f"{name} {values[-1]:,}" for name, values in lines)
        out["members"] = charts.line_chart(
            "Members over time by region",
            f"Members still on the list at the end of each month, from {labels[0]} to {labels[-1]}, "
            f"one line per region. At the end of {labels[-1]}: {latest}.",
            labels,
            lines,
            y_label="Members",
            chart_id="chart-members",
        )
    if page.issues:
        cats = [f"{i.issue_date}" for i in page.issues]
        series = [
            ("Unsubscribes", [i.figures.unsubscribes for i in page.issues]),
            ("Hard bounces", [i.figures.hard_bounces for i in page.issues]),
            ("Soft bounces", [i.figures.soft_bounces for i in page.issues]),
            ("Complaints", [i.figures.complaints for i in page.issues]),
        ]
        words = "; ".join(
            f"{i.issue_date} {i.title}: {i.figures.unsubscribes} unsubscribes, {i.figures.hard_bounces} hard "
            f"and {i.figures.soft_bounces} soft bounces, {i.figures.complaints} complaints"
            for i in page.issues
        )
        out["issues"] = charts.bar_chart(
            "Unsubscribes and bounces per issue",
            f"For each issue, by issue date: {words}.",
            cats,
            series,
            y_label="Members",
            chart_id="chart-issues",
        )
    if page.report is not None and page.report.by_region:
        rows = page.report.by_region
        names = [r.label.rsplit(" › ", 1)[-1] for r in rows]
        series = [
            ("Unsubscribes", [r.figures.unsubscribes for r in rows]),
            ("Bounces", [r.figures.bounces for r in rows]),
            ("Complaints", [r.figures.complaints for r in rows]),
        ]
        words = "; ".join(
            f"{name}: {r.figures.unsubscribes} unsubscribes, {r.figures.bounces} bounces, "
            f"{r.figures.complaints} complaints"
            for name, r in zip(names, rows, strict=True)
        )
        out["regions"] = charts.bar_chart(
            f"Who left after {page.report.slug}, by region",
            f"Members lost after this issue in each region: {words}.",
            names,
            series,
            y_label="Members",
            chart_id="chart-regions",
        )
    return out


_ENVIRONMENTS: dict[tuple[tuple[str, int], ...], jinja2.Environment] = {}


def _environment(settings: Settings) -> jinja2.Environment:
    """The Jinja2 environment of the report's templates, made once per process for the same
    template folders, so a page does not compile its templates again. A template edited is read
    again (Jinja2 checks its file's time); a template added to a folder changes the folder's time
    and so makes a new environment."""
    import jinja2

    from mailer.render import template_loader

    def stamp(folder: Path) -> int:
        try:
            return folder.stat().st_mtime_ns
        except OSError:
            return 0

    key = tuple((str(p), stamp(Path(p))) for p in settings.template_folders)
    env = _ENVIRONMENTS.get(key)
    if env is None:
        env = jinja2.Environment(
            loader=template_loader(settings),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        if len(_ENVIRONMENTS) >= 8:
            _ENVIRONMENTS.clear()
        _ENVIRONMENTS[key] = env
    return env


def render_page(settings: Settings, page: Page, *, template: str = "report.html.j2", **extra: Any) -> str:
    """The report page as HTML (``report.html.j2``, overridable in the workspace's templates/)."""
    return (
        _environment(settings)
        .get_template(template)
        .render(
            page=page,
            report=page.report,
            history=page.history,
            issues=page.issues,
            charts=charts_for(page),
            labels=LABELS,
            figure_names=Figures.names(),
            month_label=month_label,
            nav=extra.pop("nav", None),
            **extra,
        )
    )
