"""Scaffolding: ``mailer campaigns new`` writes a commented skeleton of an issue file.

The skeletons are ``scaffold_templates/newsletter.yaml`` and ``alert.yaml`` (``string.Template``
with the workspace's regions, interests and segments filled in). Every value to fill in says TODO,
which ``check`` reports until it is replaced. They stay in the package rather than in ``templates/``
(the mail and pages a network may restyle, which a workspace overrides by name): a skeleton is the
issue schema written out, and a workspace's own copy would fall behind the schema it documents.
"""

from __future__ import annotations

import textwrap
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from mailer.errors import ContentError, Problem
from mailer.issue.load import campaign_path
from mailer.issue.schema import SLUG

if TYPE_CHECKING:
    from mailer.audience.shape import Shape

KINDS = ("newsletter", "alert")  # a digest is written by hand: docs/events.md
"""The kinds of issue a skeleton exists for."""


def scaffold(kind: str, slug: str, shape: Shape | None, today: date) -> str:
    """The commented skeleton of a new issue file: every field explained, every value to fill in
    marked TODO (``check`` reports each one until it is filled in)."""
    if kind not in KINDS:
        raise ContentError([Problem(f"unknown kind {kind!r}", field="kind", hint="newsletter or alert")])
    source = files("mailer.issue").joinpath("scaffold_templates", f"{kind}.yaml").read_text(encoding="utf-8")

    def listed(names: list[str]) -> str:
        text = ", ".join(names) if names else "(none yet: see lists/)"
        return "\n#   ".join(textwrap.wrap(text, 90, break_on_hyphens=False))

    regions = list(shape.regions) if shape else []
    interests = list(shape.interests) if shape else []
    segments = list(shape.segments) if shape else []
    top = [r for r in regions if shape and shape.regions[r].parent is None]
    event_day = today + timedelta(days=7)
    if kind == "alert":
        audience = f"interest:{interests[0]}" if interests else "all"
    else:
        audience = f"region:{top[0]}" if top else "all"
    return Template(source).substitute(
        slug=slug,
        date=today.isoformat(),
        audience=audience,
        region_example=regions[-1] if regions else "my-town",
        interest_example=interests[0] if interests else "refugees",
        event_start=f"{event_day.isoformat()} 19:30",
        event_day=event_day.isoformat(),
        event_end="21:00",
        regions="\n#   " + listed(regions),
        interests="\n#   " + listed(interests),
        segments="\n#   " + listed(segments),
    )


def new_campaign(
    workspace: Path,
    slug: str,
    kind: str = "newsletter",
    shape: Shape | None = None,
    today: date | None = None,
) -> Path:
    """Write ``campaigns/<slug>/issue.yaml`` with a commented skeleton; never overwrites a file."""
    if not SLUG.match(slug):
        raise ContentError(
            [
                Problem(
                    f"not a valid campaign name: {slug!r}",
                    field="SLUG",
                    hint="use lower-case letters, digits and hyphens, e.g. 2025-12-kent-network",
                )
            ]
        )
    path = campaign_path(workspace, slug)
    if path.exists():
        raise ContentError(
            [
                Problem(
                    "the campaign already exists",
                    path=path,
                    field="SLUG",
                    hint="edit that file, or choose another name",
                )
            ]
        )
    text = scaffold(kind, slug, shape, today or date.today())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as f:  # "x": never overwrite, even in a race
        f.write(text)
    return path


__all__ = ["KINDS", "new_campaign", "scaffold"]
