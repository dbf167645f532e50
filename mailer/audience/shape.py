"""The audience's shape: regions (a tree), interests, saved segments and postcode areas.

Read from the workspace's ``lists/regions.toml``, ``lists/interests.toml``, ``lists/segments.toml``
and ``lists/postcode_areas.csv``; validated as a whole (every problem at once, with file and line);
loaded into the database idempotently by ``sync``.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.audience.networks import NETWORKS_FILE, Network, check_region_sender, load_networks
from mailer.errors import InvalidInput, Problem, toml_error_location
from mailer.models import Interest, Member, MemberInterest, Region

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
POSTCODE_AREA = re.compile(r"^([A-Z]{1,2})[0-9]")


@dataclass(frozen=True)
class RegionDef:
    """A region. A local group's region may carry its own sender name and Reply-To (used when a
    mailing's audience is that group alone) and a ``contact`` line for the welcome mail."""

    slug: str
    name: str
    parent: str | None = None
    from_name: str = ""
    reply_to: str = ""
    contact: str = ""


@dataclass(frozen=True)
class InterestDef:
    slug: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class SegmentDef:
    name: str
    expression: str
    description: str = ""


@dataclass(frozen=True)
class Shape:
    """Regions, interests, saved segments and postcode areas of a workspace."""

    regions: dict[str, RegionDef] = field(default_factory=dict)
    interests: dict[str, InterestDef] = field(default_factory=dict)
    segments: dict[str, SegmentDef] = field(default_factory=dict)
    postcode_areas: dict[str, str] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)

    def ancestors(self, slug: str) -> list[str]:
        """``slug`` and every region above it, nearest first."""
        out = []
        current: str | None = slug
        while current is not None:
            out.append(current)
            current = self.regions[current].parent
        return out

    def descendants(self, slug: str) -> list[str]:
        """``slug`` and every region below it."""
        children: dict[str | None, list[str]] = {}
        for r in self.regions.values():
            children.setdefault(r.parent, []).append(r.slug)
        out, todo = [], [slug]
        while todo:
            s = todo.pop()
            out.append(s)
            todo.extend(children.get(s, []))
        return out

    def path(self, slug: str) -> str:
        """``/south-east/kent/`` for kent: a prefix of every descendant's path."""
        return "/" + "/".join(reversed(self.ancestors(slug))) + "/"

    def label(self, slug: str) -> str:
        """``South East › Kent`` for kent."""
        return " › ".join(self.regions[s].name for s in reversed(self.ancestors(slug)))

    def region_for_postcode(self, postcode: str) -> str | None:
        """The region of a UK postcode's area (``ME14 1HH`` → the ME area's region), if known."""
        m = POSTCODE_AREA.match(postcode.strip().upper())
        return self.postcode_areas.get(m.group(1)) if m else None

    def walk(self) -> Iterator[tuple[int, RegionDef]]:
        """Every region with its depth, parents before children, in file order."""
        children: dict[str | None, list[RegionDef]] = {}
        for r in self.regions.values():
            children.setdefault(r.parent, []).append(r)

        def visit(parent: str | None, depth: int) -> Iterator[tuple[int, RegionDef]]:
            for r in children.get(parent, []):
                yield depth, r
                yield from visit(r.slug, depth + 1)

        yield from visit(None, 0)


def _block_lines(text: str, header: str) -> list[int]:
    """Line numbers (1-based) of each ``[[header]]`` table in a TOML text."""
    pattern = re.compile(r"^\s*\[\[\s*" + re.escape(header) + r"\s*\]\]")
    return [i for i, line in enumerate(text.splitlines(), 1) if pattern.match(line)]


def _read_toml(path: Path, header: str, problems: list[Problem]) -> list[tuple[int | None, dict[str, Any]]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg, line, col = toml_error_location(exc)
        problems.append(Problem(f"not valid TOML: {msg}", path=path, line=line, column=col))
        return []
    entries = data.get(header, [])
    if not isinstance(entries, list):
        problems.append(Problem(f"expected [[{header}]] tables", path=path, field=header))
        return []
    lines = _block_lines(text, header)
    return [(lines[i] if i < len(lines) else None, e) for i, e in enumerate(entries)]


def _text(entry: dict[str, Any], key: str, path: Path, line: int | None, problems: list[Problem]) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        problems.append(Problem(f"expected text, got {value!r}", path=path, line=line, field=key))
        return ""
    return value.strip()


def load_shape(lists_dir: Path) -> Shape:
    """Read and validate the shape files in ``lists_dir``; raise ``InvalidInput`` listing every problem."""
    problems: list[Problem] = []
    regions: dict[str, RegionDef] = {}
    interests: dict[str, InterestDef] = {}
    segments: dict[str, SegmentDef] = {}
    areas: dict[str, str] = {}

    rpath = lists_dir / "regions.toml"
    parents_at: dict[str, int | None] = {}
    for line, entry in _read_toml(rpath, "region", problems):
        slug = _text(entry, "slug", rpath, line, problems)
        name = _text(entry, "name", rpath, line, problems)
        parent = _text(entry, "parent", rpath, line, problems) or None
        if not SLUG.match(slug):
            problems.append(
                Problem(
                    f"bad slug {slug!r}",
                    path=rpath,
                    line=line,
                    field="slug",
                    hint="use lower-case letters, digits and single hyphens, e.g. tunbridge-wells",
                )
            )
            continue
        if slug in regions:
            problems.append(Problem(f"duplicate region {slug!r}", path=rpath, line=line, field="slug"))
            continue
        if not name:
            problems.append(Problem("a region needs a name", path=rpath, line=line, field="name"))
        regions[slug] = RegionDef(
            slug,
            name or slug,
            parent,
            from_name=_text(entry, "from_name", rpath, line, problems),
            reply_to=_text(entry, "reply_to", rpath, line, problems),
            contact=_text(entry, "contact", rpath, line, problems),
        )
        check_region_sender(regions[slug], rpath, line, problems)
        parents_at[slug] = line
    for slug, r in regions.items():
        if r.parent is not None and r.parent not in regions:
            problems.append(
                Problem(
                    f"region {slug!r} names unknown parent {r.parent!r}",
                    path=rpath,
                    line=parents_at[slug],
                    field="parent",
                    hint="define the parent region too, or leave parent out for a top-level region",
                )
            )
    for slug in regions:  # cycles
        seen: set[str] = set()
        current: str | None = slug
        while current is not None and current in regions:
            if current in seen:
                problems.append(
                    Problem(
                        f"region {slug!r} is its own ancestor",
                        path=rpath,
                        line=parents_at[slug],
                        field="parent",
                    )
                )
                break
            seen.add(current)
            current = regions[current].parent

    ipath = lists_dir / "interests.toml"
    for line, entry in _read_toml(ipath, "interest", problems):
        slug = _text(entry, "slug", ipath, line, problems)
        if not SLUG.match(slug):
            problems.append(Problem(f"bad slug {slug!r}", path=ipath, line=line, field="slug"))
            continue
        if slug in interests:
            problems.append(Problem(f"duplicate interest {slug!r}", path=ipath, line=line, field="slug"))
            continue
        name = _text(entry, "name", ipath, line, problems)
        interests[slug] = InterestDef(slug, name or slug, _text(entry, "description", ipath, line, problems))

    spath = lists_dir / "segments.toml"
    for line, entry in _read_toml(spath, "segment", problems):
        name = _text(entry, "name", spath, line, problems)
        expression = _text(entry, "expression", spath, line, problems)
        if not SLUG.match(name):
            problems.append(Problem(f"bad segment name {name!r}", path=spath, line=line, field="name"))
            continue
        if name in segments:
            problems.append(Problem(f"duplicate segment {name!r}", path=spath, line=line, field="name"))
            continue
        if not expression:
            problems.append(
                Problem("a segment needs an expression", path=spath, line=line, field="expression")
            )
        segments[name] = SegmentDef(name, expression, _text(entry, "description", spath, line, problems))

    apath = lists_dir / "postcode_areas.csv"
    if apath.exists():
        with apath.open(newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), start=2):
                area = (row.get("area") or "").strip().upper()
                region = (row.get("region") or "").strip()
                if region not in regions:
                    problems.append(
                        Problem(
                            f"postcode area {area!r} names unknown region {region!r}", path=apath, line=lineno
                        )
                    )
                    continue
                areas[area] = region

    networks = load_networks(lists_dir / NETWORKS_FILE, regions, problems)

    if problems:
        raise InvalidInput(problems, summary=f"the lists in {lists_dir} have {len(problems)} problem(s)")
    return Shape(regions, interests, segments, areas, networks)


@dataclass
class SyncReport:
    regions_added: int = 0
    regions_updated: int = 0
    regions_removed: int = 0
    interests_added: int = 0
    interests_updated: int = 0
    interests_removed: int = 0

    @property
    def changed(self) -> bool:
        return any(vars(self).values())


def sync(session: Session, shape: Shape) -> SyncReport:
    """Make the database's regions and interests match ``shape``; running it twice changes nothing.

    A region or interest that members still use is never removed: that is an error naming it.
    """
    report = SyncReport()
    existing = {r.slug: r for r in session.scalars(select(Region))}
    by_slug: dict[str, Region] = {}
    for _depth, rdef in shape.walk():
        row = existing.get(rdef.slug)
        parent_id = by_slug[rdef.parent].id if rdef.parent else None
        path = shape.path(rdef.slug)
        if row is None:
            row = Region(slug=rdef.slug, name=rdef.name, parent_id=parent_id, path=path)
            session.add(row)
            session.flush()
            report.regions_added += 1
        elif (row.name, row.parent_id, row.path) != (rdef.name, parent_id, path):
            row.name, row.parent_id, row.path = rdef.name, parent_id, path
            report.regions_updated += 1
        by_slug[rdef.slug] = row
    gone = [r for slug, r in existing.items() if slug not in shape.regions]
    problems = []
    for r in gone:
        used = session.scalar(select(func.count()).select_from(Member).where(Member.region_id == r.id)) or 0
        if used:
            problems.append(
                Problem(
                    f"region {r.slug!r} is not in regions.toml but {used} member(s) live in it",
                    field="region",
                    hint="keep the region, or move its members first",
                )
            )
    existing_i = {i.slug: i for i in session.scalars(select(Interest))}
    for idef in shape.interests.values():
        irow = existing_i.get(idef.slug)
        if irow is None:
            session.add(Interest(slug=idef.slug, name=idef.name, description=idef.description))
            report.interests_added += 1
        elif (irow.name, irow.description) != (idef.name, idef.description):
            irow.name, irow.description = idef.name, idef.description
            report.interests_updated += 1
    gone_i = [i for slug, i in existing_i.items() if slug not in shape.interests]
    for i in gone_i:
        used = (
            session.scalar(
                select(func.count()).select_from(MemberInterest).where(MemberInterest.interest_id == i.id)
            )
            or 0
        )
        if used:
            problems.append(
                Problem(
                    f"interest {i.slug!r} is not in interests.toml but {used} member(s) chose it",
                    field="interest",
                    hint="keep the interest; members' choices are not dropped silently",
                )
            )
    if problems:
        raise InvalidInput(problems, summary="lists sync would drop data members depend on")
    # Remove unused regions children first.
    for r in sorted(gone, key=lambda r: -r.path.count("/")):
        session.delete(r)
        report.regions_removed += 1
    for i in gone_i:
        session.delete(i)
        report.interests_removed += 1
    session.flush()
    return report
