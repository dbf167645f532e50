"""Reports an organiser can read at a glance: what one campaign did, and how the list grows.

``campaign_report(session, shape, slug)``: for one campaign, overall, by region (the region each
delivery was snapshotted with) and by variant:

- ``deliveries``: members the send snapshotted; ``sent``: accepted by the relay; ``failed``: refused
  at sending time (the relay's 5xx, or given up after retries);
- ``hard_bounces``: deliveries refused at sending time with a 5.1.x code, or bounced later with one;
  ``soft_bounces``: bounced later with a soft status (4.x.x, 5.2.2, …) and never hard;
  ``policy``: refused or bounced for policy (5.7.x: spam filter, DMARC), never hard;
  a delivery counts once, under its worst bounce (hard, then policy, then soft);
- ``complaints``: deliveries an ARF feedback report complained of;
- ``unsubscribes``: members whose unsubscribe (web link, one-click, mailto) names this campaign in
  the consent log, counted once each.

``history(session, shape)``: members joined and lost per calendar month (UTC), and the members still
reachable at the end of each month by region. Joined is ``members.created_at``; lost is the date of
each suppression, by its reason. The regions are those of the shallowest level of the region tree at
which members split into more than one group (so a county network sees its districts and a national
one its nations and regions).

``issues(session, shape)``: the headline figures of every campaign, by issue date, for the
"unsubscribes and bounces per issue" chart.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.orm import Session

from mailer.audience.shape import Shape
from mailer.errors import UnknownName
from mailer.inbound.classify import reply_status, status_kind
from mailer.models import BounceEvent, Campaign, ConsentEvent, Delivery, Member, Region, Suppression, Variant
from mailer.settings import Settings

NO_REGION = "(no region)"
UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class Figures:
    """The counts of one campaign, or of one region or variant of it."""

    deliveries: int = 0
    sent: int = 0
    failed: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    policy: int = 0
    complaints: int = 0
    unsubscribes: int = 0

    @property
    def bounces(self) -> int:
        return self.hard_bounces + self.soft_bounces

    @staticmethod
    def names() -> list[str]:
        return [f.name for f in fields(Figures)]


LABELS = {
    "deliveries": "Deliveries",
    "sent": "Sent",
    "failed": "Failed at sending",
    "hard_bounces": "Hard bounces",
    "soft_bounces": "Soft bounces",
    "policy": "Blocked (policy)",
    "complaints": "Complaints",
    "unsubscribes": "Unsubscribes",
}


@dataclass(frozen=True)
class Row:
    """One region or variant of a report."""

    key: str
    label: str
    figures: Figures


@dataclass(frozen=True)
class CampaignReport:
    slug: str
    title: str
    subject: str
    kind: str
    status: str
    issue_date: str
    started_at: datetime | None
    finished_at: datetime | None
    total: Figures
    by_region: tuple[Row, ...]
    by_variant: tuple[Row, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "title": self.title,
            "subject": self.subject,
            "kind": self.kind,
            "status": self.status,
            "issue_date": self.issue_date,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "total": asdict(self.total),
            "by_region": [{"region": r.key, "label": r.label, **asdict(r.figures)} for r in self.by_region],
            "by_variant": [
                {"variant": r.key, "label": r.label, **asdict(r.figures)} for r in self.by_variant
            ],
        }


def campaign_report(session: Session, shape: Shape, slug: str) -> CampaignReport:
    """The figures of campaign ``slug``; see the module docstring for what each one counts."""
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        known = session.scalars(select(Campaign.slug).order_by(Campaign.id)).all()
        raise UnknownName(
            f"no campaign {slug!r} has been sent",
            hint=("sent campaigns: " + ", ".join(known))
            if known
            else "send one with `mailer campaigns send`",
        )
    cid = campaign.id
    region_slugs = dict(session.execute(select(Region.id, Region.slug)).all())
    variants = {
        vid: (key, label or key)
        for vid, key, label in session.execute(
            select(Variant.id, Variant.key, Variant.label).where(Variant.campaign_id == cid)
        )
    }

    # Each delivery's (region, variant) and outcome counts, grouped in SQL.
    groups: dict[tuple[int | None, int], Counter[str]] = defaultdict(Counter)
    for region_id, variant_id, status, n in session.execute(
        select(Delivery.region_id, Delivery.variant_id, Delivery.status, func.count())
        .where(Delivery.campaign_id == cid)
        .group_by(Delivery.region_id, Delivery.variant_id, Delivery.status)
    ):
        counter = groups[(region_id, variant_id)]
        counter["deliveries"] += n
        if status in ("sent", "failed"):
            counter[status] += n

    # Bounces: failures at sending time (from the recorded reply) and bounce mails, worst kind each.
    where: dict[int, tuple[int | None, int]] = {}
    kinds: dict[int, set[str]] = defaultdict(set)
    for did, region_id, variant_id, code, error in session.execute(
        select(
            Delivery.id, Delivery.region_id, Delivery.variant_id, Delivery.last_code, Delivery.last_error
        ).where(Delivery.campaign_id == cid, Delivery.status == "failed")
    ):
        where[did] = (region_id, variant_id)
        kinds[did].add(status_kind(reply_status(code, error)))
    complained: set[int] = set()
    for did, region_id, variant_id, kind in session.execute(
        select(Delivery.id, Delivery.region_id, Delivery.variant_id, BounceEvent.kind)
        .join(Delivery, Delivery.id == BounceEvent.delivery_id)
        .where(BounceEvent.campaign_id == cid)
    ):
        where[did] = (region_id, variant_id)
        if kind == "complaint":
            complained.add(did)
        elif kind in ("hard", "soft", "policy"):
            kinds[did].add(kind)
    for did, found in kinds.items():
        worst = next((k for k in ("hard", "policy", "soft") if k in found), None)
        if worst is not None:
            groups[where[did]][
                {"hard": "hard_bounces", "soft": "soft_bounces", "policy": "policy"}[worst]
            ] += 1
    for did in complained:
        groups[where[did]]["complaints"] += 1

    # Unsubscribes attributed to this campaign in the consent log, once per address.
    seen: set[str] = set()
    for address_hash, region_id, variant_id in session.execute(
        select(ConsentEvent.address_hash, Delivery.region_id, Delivery.variant_id)
        .outerjoin(Delivery, (Delivery.member_id == ConsentEvent.member_id) & (Delivery.campaign_id == cid))
        .where(ConsentEvent.campaign == slug, ConsentEvent.action == "unsubscribe")
        .order_by(ConsentEvent.id)
    ):
        if address_hash in seen:
            continue
        seen.add(address_hash)
        groups[(region_id, variant_id if variant_id is not None else -1)]["unsubscribes"] += 1

    by_region: Counter[str] = Counter()
    region_counts: dict[str, Counter[str]] = defaultdict(Counter)
    variant_counts: dict[int, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for (region_id, variant_id), counter in groups.items():
        region_key = region_slugs.get(region_id, NO_REGION) if region_id is not None else NO_REGION
        region_counts[region_key].update(counter)
        variant_counts[variant_id].update(counter)
        total.update(counter)
        by_region[region_key] += counter["deliveries"]

    def label_of_region(key: str) -> str:
        return shape.label(key) if key in shape.regions else key

    region_rows = tuple(
        Row(key, label_of_region(key), _figures(c))
        for key, c in sorted(region_counts.items(), key=lambda kv: label_of_region(kv[0]))
    )
    variant_rows = tuple(
        Row(variants[vid][0], variants[vid][1], _figures(c))
        if vid in variants
        else Row(UNKNOWN, UNKNOWN, _figures(c))
        for vid, c in sorted(variant_counts.items(), key=lambda kv: -kv[1]["deliveries"])
    )
    return CampaignReport(
        slug=campaign.slug,
        title=campaign.title,
        subject=campaign.subject,
        kind=campaign.kind,
        status=campaign.status,
        issue_date=campaign.issue_date,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        total=_figures(total),
        by_region=region_rows,
        by_variant=variant_rows,
    )


def _figures(counter: Counter[str]) -> Figures:
    return Figures(**{name: int(counter.get(name, 0)) for name in Figures.names()})


# -- the list over time -------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """Members over time, month by month (``YYYY-MM``, UTC)."""

    months: tuple[str, ...]
    groups: tuple[str, ...]  # the region labels members are grouped by (NO_REGION last)
    members: dict[str, tuple[int, ...]]  # group → reachable members at the end of each month
    joined: tuple[int, ...]
    left: dict[str, tuple[int, ...]]  # suppression reason → suppressions in each month

    @property
    def left_total(self) -> tuple[int, ...]:
        return tuple(sum(v[i] for v in self.left.values()) for i in range(len(self.months)))

    @property
    def reachable(self) -> tuple[int, ...]:
        return tuple(sum(v[i] for v in self.members.values()) for i in range(len(self.months)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "months": [
                {
                    "month": month,
                    "joined": self.joined[i],
                    "left": self.left_total[i],
                    "left_by_reason": {reason: v[i] for reason, v in self.left.items() if v[i]},
                    "reachable": self.reachable[i],
                    "by_region": {group: self.members[group][i] for group in self.groups},
                }
                for i, month in enumerate(self.months)
            ],
            "regions": list(self.groups),
        }


def month_of(session: Session, column: Any) -> ColumnElement[str]:
    """``YYYY-MM`` of a timestamp column, in SQL, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, literal_column("'YYYY-MM'"))
    return func.strftime(literal_column("'%Y-%m'"), column)


def history(
    session: Session, shape: Shape, *, months: int | None = None, now: datetime | None = None
) -> History:
    """Members joined and lost per month, and reachable members by region; the last ``months`` only
    if given (the counts before them still count towards the reachable totals)."""
    region_slugs = dict(session.execute(select(Region.id, Region.slug)).all())
    joined_rows = session.execute(
        select(Member.region_id, month_of(session, Member.created_at), func.count()).group_by(
            Member.region_id, month_of(session, Member.created_at)
        )
    ).all()
    lost_rows = session.execute(
        select(Member.region_id, month_of(session, Suppression.created_at), func.count())
        .join(Suppression, Suppression.address_hash == Member.address_hash)
        .group_by(Member.region_id, month_of(session, Suppression.created_at))
    ).all()
    reason_rows = session.execute(
        select(month_of(session, Suppression.created_at), Suppression.reason, func.count()).group_by(
            month_of(session, Suppression.created_at), Suppression.reason
        )
    ).all()

    slugs = [region_slugs.get(r) if r is not None else None for r, _m, _n in [*joined_rows, *lost_rows]]
    group_of = _grouping(shape, [s for s in slugs if s is not None])

    def group(region_id: int | None) -> str:
        slug = region_slugs.get(region_id) if region_id is not None else None
        return group_of(slug)

    current = (now or datetime.now(UTC)).strftime("%Y-%m")
    seen_months = (
        {m for _r, m, _n in joined_rows} | {m for _r, m, _n in lost_rows} | {m for m, _r, _n in reason_rows}
    )
    all_months = _month_range(min(seen_months | {current}), max(seen_months | {current}))
    index = {m: i for i, m in enumerate(all_months)}

    net: dict[str, list[int]] = defaultdict(lambda: [0] * len(all_months))
    joined = [0] * len(all_months)
    for region_id, month, n in joined_rows:
        net[group(region_id)][index[month]] += n
        joined[index[month]] += n
    for region_id, month, n in lost_rows:
        net[group(region_id)][index[month]] -= n
    left: dict[str, list[int]] = defaultdict(lambda: [0] * len(all_months))
    for month, reason, n in reason_rows:
        left[reason][index[month]] += n

    members: dict[str, tuple[int, ...]] = {}
    for name, deltas in net.items():
        running, out = 0, []
        for d in deltas:
            running += d
            out.append(running)
        members[name] = tuple(out)
    start = max(0, len(all_months) - months) if months else 0
    order = sorted(members, key=lambda g: (g == NO_REGION, g))
    return History(
        months=tuple(all_months[start:]),
        groups=tuple(order),
        members={g: members[g][start:] for g in order},
        joined=tuple(joined[start:]),
        left={reason: tuple(v[start:]) for reason, v in sorted(left.items())},
    )


def _grouping(shape: Shape, slugs: Iterable[str]) -> Callable[[str | None], str]:
    """A function from a region slug to the label of its group: its ancestor at the shallowest depth
    of the tree at which the given regions fall into more than one group."""
    known = [s for s in set(slugs) if s in shape.regions]

    def at_depth(slug: str, depth: int) -> str:
        chain = list(reversed(shape.ancestors(slug)))  # top first
        return chain[min(depth, len(chain) - 1)]

    depth = 0
    max_depth = max((len(shape.ancestors(s)) - 1 for s in known), default=0)
    while depth < max_depth and len({at_depth(s, depth) for s in known}) <= 1:
        depth += 1

    def group_of(slug: str | None) -> str:
        if slug is None:
            return NO_REGION
        if slug not in shape.regions:
            return slug
        return shape.regions[at_depth(slug, depth)].name

    return group_of


def _month_range(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out


# -- every issue ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueRow:
    slug: str
    title: str
    issue_date: str
    figures: Figures


def issues(session: Session, shape: Shape, *, last: int | None = 12) -> tuple[IssueRow, ...]:
    """The figures of each sent (or sending) campaign, oldest issue first; the ``last`` few only."""
    rows = session.execute(
        select(Campaign.slug, Campaign.title, Campaign.issue_date)
        .where(Campaign.status != "draft")
        .order_by(Campaign.issue_date, Campaign.id)
    ).all()
    if last:
        rows = rows[-last:]
    return tuple(
        IssueRow(slug, title, issue_date, campaign_report(session, shape, slug).total)
        for slug, title, issue_date in rows
    )


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
    from mailer import charts

    out: dict[str, Any] = {}
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


def render_page(settings: Settings, page: Page, *, template: str = "report.html.j2", **extra: Any) -> str:
    """The report page as HTML (``report.html.j2``, overridable in the workspace's templates/)."""
    import jinja2

    from mailer.render import template_loader

    env = jinja2.Environment(
        loader=template_loader(settings),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(template).render(
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
