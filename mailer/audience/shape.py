"""The audience's shape read and synced: regions (a tree), interests, saved segments, postcode areas
and networks.

Read from the workspace's ``lists/regions.toml``, ``lists/interests.toml``, ``lists/segments.toml``,
``lists/postcode_areas.csv`` and ``lists/networks.toml`` (through :mod:`mailer.audience.networks`);
validated as a whole (every problem at once, with file and line) into the plain values of
:mod:`mailer.audience.tree` (re-exported here: ``Shape``, ``RegionDef``, ``InterestDef``,
``SegmentDef``); loaded into the database idempotently by ``sync``. The last of the audience map's
modules: ``tree ← segments ← networks ← shape``.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailer.audience.networks import NETWORKS_FILE, check_region_sender, load_networks
from mailer.audience.tree import SLUG, InterestDef, RegionDef, SegmentDef, Shape
from mailer.errors import InvalidInput, Problem, suggest, toml_error_location
from mailer.models import Interest, Member, MemberInterest, Region

__all__ = ["InterestDef", "RegionDef", "SegmentDef", "Shape", "SyncReport", "load_shape", "sync"]


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
    for key in data.keys() - {header}:
        line = next(
            (n for n, t in enumerate(text.splitlines(), 1) if t.strip().strip("[]").strip() == key), None
        )
        problems.append(
            Problem(
                f"unknown table [[{key}]]: nothing in it is read",
                path=path,
                line=line,
                field=key,
                hint=f"write [[{header}]] for each entry",
            )
        )
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


def _bad_slug(slug: str, path: Path, line: int | None, field: str = "slug") -> Problem:
    return Problem(
        f"bad slug {slug!r}",
        path=path,
        line=line,
        field=field,
        hint="use lower-case letters, digits and single hyphens, e.g. tunbridge-wells",
    )


def _renamed_from(entry: dict[str, Any], path: Path, line: int | None, problems: list[Problem]) -> str:
    old = _text(entry, "renamed_from", path, line, problems)
    if old and not SLUG.match(old):
        problems.append(_bad_slug(old, path, line, "renamed_from"))
        return ""
    return old


def _load_regions(rpath: Path, problems: list[Problem]) -> dict[str, RegionDef]:
    regions: dict[str, RegionDef] = {}
    lines: dict[str, int | None] = {}
    for line, entry in _read_toml(rpath, "region", problems):
        slug = _text(entry, "slug", rpath, line, problems)
        name = _text(entry, "name", rpath, line, problems)
        if not SLUG.match(slug):
            problems.append(_bad_slug(slug, rpath, line))
            continue
        if slug in regions:
            problems.append(Problem(f"duplicate region {slug!r}", path=rpath, line=line, field="slug"))
            continue
        if not name:
            problems.append(Problem("a region needs a name", path=rpath, line=line, field="name"))
        regions[slug] = RegionDef(
            slug,
            name or slug,
            _text(entry, "parent", rpath, line, problems) or None,
            from_name=_text(entry, "from_name", rpath, line, problems),
            reply_to=_text(entry, "reply_to", rpath, line, problems),
            contact=_text(entry, "contact", rpath, line, problems),
            renamed_from=_renamed_from(entry, rpath, line, problems),
        )
        check_region_sender(regions[slug], rpath, line, problems)
        lines[slug] = line
    _check_tree(regions, rpath, lines, problems)
    _check_renames(regions, rpath, lines, problems)
    return regions


def _check_tree(
    regions: dict[str, RegionDef], rpath: Path, lines: dict[str, int | None], problems: list[Problem]
) -> None:
    """Every parent defined, and no region its own ancestor."""
    for slug, r in regions.items():
        if r.parent is not None and r.parent not in regions:
            problems.append(
                Problem(
                    f"region {slug!r} names unknown parent {r.parent!r}",
                    path=rpath,
                    line=lines[slug],
                    field="parent",
                    hint="define the parent region too, or leave parent out for a top-level region",
                )
            )
    for slug in regions:
        seen: set[str] = set()
        current: str | None = slug
        while current is not None and current in regions:
            if current in seen:
                problems.append(
                    Problem(
                        f"region {slug!r} is its own ancestor", path=rpath, line=lines[slug], field="parent"
                    )
                )
                break
            seen.add(current)
            current = regions[current].parent


def _check_renames(
    defs: Mapping[str, RegionDef | InterestDef],
    path: Path,
    lines: Mapping[str, int | None],
    problems: list[Problem],
) -> None:
    """A ``renamed_from`` names a slug that is not in the file any more, and only one entry's."""
    claimed: dict[str, str] = {}
    for slug, d in defs.items():
        old = d.renamed_from
        if not old:
            continue
        if old in defs:
            problems.append(
                Problem(
                    f"{slug!r} is renamed from {old!r}, which is still in the file",
                    path=path,
                    line=lines.get(slug),
                    field="renamed_from",
                    hint=f"remove the entry {old!r}, or the renamed_from line",
                )
            )
        elif old in claimed:
            problems.append(
                Problem(
                    f"{slug!r} and {claimed[old]!r} are both renamed from {old!r}",
                    path=path,
                    line=lines.get(slug),
                    field="renamed_from",
                )
            )
        claimed[old] = slug


def _load_interests(ipath: Path, problems: list[Problem]) -> dict[str, InterestDef]:
    interests: dict[str, InterestDef] = {}
    lines: dict[str, int | None] = {}
    for line, entry in _read_toml(ipath, "interest", problems):
        slug = _text(entry, "slug", ipath, line, problems)
        if not SLUG.match(slug):
            problems.append(_bad_slug(slug, ipath, line))
            continue
        if slug in interests:
            problems.append(Problem(f"duplicate interest {slug!r}", path=ipath, line=line, field="slug"))
            continue
        name = _text(entry, "name", ipath, line, problems)
        interests[slug] = InterestDef(
            slug,
            name or slug,
            _text(entry, "description", ipath, line, problems),
            renamed_from=_renamed_from(entry, ipath, line, problems),
        )
        lines[slug] = line
    _check_renames(interests, ipath, lines, problems)
    return interests


def _load_segments(spath: Path, problems: list[Problem]) -> dict[str, SegmentDef]:
    segments: dict[str, SegmentDef] = {}
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
    return segments


def _load_areas(apath: Path, regions: dict[str, RegionDef], problems: list[Problem]) -> dict[str, str]:
    areas: dict[str, str] = {}
    if not apath.exists():
        return areas
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
    return areas


def load_shape(lists_dir: Path) -> Shape:
    """Read and validate the shape files in ``lists_dir``; raise ``InvalidInput`` listing every problem."""
    problems: list[Problem] = []
    regions = _load_regions(lists_dir / "regions.toml", problems)
    interests = _load_interests(lists_dir / "interests.toml", problems)
    segments = _load_segments(lists_dir / "segments.toml", problems)
    areas = _load_areas(lists_dir / "postcode_areas.csv", regions, problems)
    networks = load_networks(lists_dir / NETWORKS_FILE, regions, problems)
    if problems:
        raise InvalidInput(problems, summary=f"the lists in {lists_dir} have {len(problems)} problem(s)")
    return Shape(regions, interests, segments, areas, networks)


@dataclass
class SyncReport:
    regions_added: int = 0
    regions_updated: int = 0
    regions_renamed: int = 0
    regions_removed: int = 0
    interests_added: int = 0
    interests_updated: int = 0
    interests_renamed: int = 0
    interests_removed: int = 0
    members_moved: int = 0

    @property
    def changed(self) -> bool:
        return any(vars(self).values())


def sync(session: Session, shape: Shape, moves: Mapping[str, str] | None = None) -> SyncReport:
    """Make the database's regions and interests match ``shape``, whatever the edit (regions added,
    renamed, moved under another parent, removed, or the whole tree replaced); running it twice
    changes nothing.

    A slug changed in the file with ``renamed_from = "old"`` keeps its row, so its members (or their
    choices) follow it. ``moves`` (``{"old": "new"}``, a region or an interest) moves the members of
    one that goes to another first. A region or interest that goes while members still use it is
    refused, naming it, its members and the fix; nothing is changed then.
    """
    moves = dict(moves or {})
    report = SyncReport()
    problems: list[Problem] = []
    gone = _sync_regions(session, shape, moves, report, problems)
    gone_i = _sync_interests(session, shape, moves, report, problems)
    unknown = sorted(set(moves) - {r.slug for r in gone} - {i.slug for i in gone_i})
    for old in unknown:
        problems.append(
            Problem(
                f"--move {old}={moves[old]}: {old!r} is not a region or interest that this sync removes",
                field="--move",
                hint="move the members of a region or interest that is gone from the file",
            )
        )
    if problems:
        raise InvalidInput(problems, summary="lists sync would drop data members depend on")
    # Detach what goes from the tree first, so that no row points at a deleted one, whatever order
    # the database deletes them in.
    for r in gone:
        r.parent_id = None
    session.flush()
    for r in gone:
        session.delete(r)
        report.regions_removed += 1
    for i in gone_i:
        session.delete(i)
        report.interests_removed += 1
    session.flush()
    return report


def _rename(existing: dict[str, Any], defs: Mapping[str, RegionDef | InterestDef], session: Session) -> int:
    """Give the rows of renamed entries their new slug; the number renamed."""
    renamed = 0
    for d in defs.values():
        old = d.renamed_from
        if old and old in existing and d.slug not in existing:
            row = existing.pop(old)
            row.slug = d.slug
            existing[d.slug] = row
            renamed += 1
    session.flush()
    return renamed


def _sync_regions(
    session: Session, shape: Shape, moves: dict[str, str], report: SyncReport, problems: list[Problem]
) -> list[Region]:
    """Add and update the regions of ``shape``; the rows that go (checked, not yet deleted)."""
    existing = {r.slug: r for r in session.scalars(select(Region))}
    report.regions_renamed = _rename(existing, shape.regions, session)
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
    for r in gone:
        target = moves.get(r.slug)
        if target is not None and target in by_slug:
            moved = session.execute(
                update(Member).where(Member.region_id == r.id).values(region_id=by_slug[target].id)
            )
            report.members_moved += int(getattr(moved, "rowcount", 0) or 0)
            continue
        if target is not None:
            problems.append(
                Problem(
                    f"--move {r.slug}={target}: there is no region {target!r} in regions.toml",
                    field="--move",
                    hint=suggest(target, shape.regions, "regions"),
                )
            )
            continue
        used = session.scalar(select(func.count()).select_from(Member).where(Member.region_id == r.id)) or 0
        if used:
            problems.append(
                Problem(
                    f"region {r.slug!r} ({r.name}) is not in regions.toml but {used} member(s) live in it",
                    field="region",
                    hint=f'keep it; or, if another region takes its place, add renamed_from = "{r.slug}" to '
                    f"that region; or move its members: mailer lists sync --move {r.slug}=OTHER-REGION",
                )
            )
    return gone


def _sync_interests(
    session: Session, shape: Shape, moves: dict[str, str], report: SyncReport, problems: list[Problem]
) -> list[Interest]:
    """Add and update the interests of ``shape``; the rows that go (checked, not yet deleted)."""
    existing = {i.slug: i for i in session.scalars(select(Interest))}
    report.interests_renamed = _rename(existing, shape.interests, session)
    for idef in shape.interests.values():
        row = existing.get(idef.slug)
        if row is None:
            row = Interest(slug=idef.slug, name=idef.name, description=idef.description)
            session.add(row)
            existing[idef.slug] = row
            report.interests_added += 1
        elif (row.name, row.description) != (idef.name, idef.description):
            row.name, row.description = idef.name, idef.description
            report.interests_updated += 1
    session.flush()
    gone = [i for slug, i in existing.items() if slug not in shape.interests]
    for i in gone:
        target = moves.get(i.slug)
        if target is not None and target in shape.interests:
            _merge_choices(session, i.id, existing[target].id)
            continue
        used = (
            session.scalar(
                select(func.count()).select_from(MemberInterest).where(MemberInterest.interest_id == i.id)
            )
            or 0
        )
        if target is not None or used:
            problems.append(
                Problem(
                    f"interest {i.slug!r} ({i.name}) is not in interests.toml but {used} member(s) chose it"
                    if target is None
                    else f"--move {i.slug}={target}: there is no interest {target!r} in interests.toml",
                    field="interest",
                    hint=f'keep it; or, if another interest takes its place, add renamed_from = "{i.slug}" '
                    f"to it; or move the members' choices: mailer lists sync --move {i.slug}=OTHER-INTEREST",
                )
            )
    return gone


def _merge_choices(session: Session, old: int, new: int) -> None:
    """Members who chose interest ``old`` have chosen ``new`` (once); ``old``'s choices go."""
    have = select(MemberInterest.member_id).where(MemberInterest.interest_id == new)
    session.execute(
        update(MemberInterest)
        .where(MemberInterest.interest_id == old, MemberInterest.member_id.not_in(have))
        .values(interest_id=new)
    )
    session.execute(delete(MemberInterest).where(MemberInterest.interest_id == old))
