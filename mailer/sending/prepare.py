"""Prepare a send: everything loaded, validated and rendered before the first side effect.

``prepare`` loads and validates the issue, plans the audience's variants (narrowed by a segment if
given), renders each variant once and builds its message template. Nothing is written; a broken
issue sends nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mailer.audience.segments import compile_segment
from mailer.audience.shape import Shape
from mailer.compose import VariantPlan, plan
from mailer.db import Database
from mailer.issue import LoadedIssue, load_campaign
from mailer.message import MessageParts, MessageTemplate, dkim_keys
from mailer.message.template import check_markers
from mailer.models import Variant as VariantRow
from mailer.render import RenderedVariant, Renderer
from mailer.settings import Settings


@dataclass
class Prepared:
    """An issue ready to send: its plan, and each planned variant rendered once."""

    loaded: LoadedIssue
    audience: str
    plan: VariantPlan
    renderer: Renderer
    rendered: dict[str, RenderedVariant]

    @property
    def slug(self) -> str:
        return self.loaded.slug

    def render(self, key: str) -> RenderedVariant:
        """The rendered variant ``key``, rendering one that appeared after planning."""
        if key not in self.rendered:
            self.rendered[key] = self.renderer.render(self.plan.variant(key), self.loaded)
        return self.rendered[key]

    def by_variant(self) -> list[tuple[str, str, int]]:
        """(key, label, members) of each variant, most members first."""
        return [(p.variant.key, p.label, p.members) for p in self.plan.variants]

    def by_region(self) -> list[tuple[str, int]]:
        """(region label, members) for every home region of the audience, largest first."""
        counts: Counter[str] = Counter()
        for planned in self.plan.variants:
            for group in planned.groups:
                label = self.plan.shape.label(group.region) if group.region else "(no region)"
                counts[label] += group.members
        return counts.most_common()


def audience_of(loaded: LoadedIssue, segment: str | None) -> str:
    """The issue's audience, narrowed by ``segment`` when given (never widened)."""
    if not segment:
        return loaded.issue.audience
    return f"({loaded.issue.audience}) and ({segment})"


def prepare(
    db: Database, settings: Settings, shape: Shape, slug: str, *, segment: str | None = None
) -> Prepared:
    """Load, validate, plan and render ``slug``; raise before anything is written if any of it fails."""
    loaded = load_campaign(settings.workspace, slug, shape)
    audience = audience_of(loaded, segment)
    compile_segment(audience, shape)  # unknown names and syntax errors, now
    with db.session() as session:
        the_plan = plan(session, loaded, shape, audience)
    renderer = Renderer(settings)
    rendered = {p.variant.key: renderer.render(p.variant, loaded) for p in the_plan.variants}
    # Every template must build. What could stop one is the settings and DKIM keys, the same for
    # all (one build checks them), or an unknown slot marker, which each variant is checked for;
    # the sender builds each template once, when it first needs it.
    for r in rendered.values():
        check_markers(r.text, r.html)
    if rendered:
        template_for(settings, slug, next(iter(rendered.values())))
    return Prepared(loaded, audience, the_plan, renderer, rendered)


def template_for(settings: Settings, slug: str, rendered: RenderedVariant | VariantRow) -> MessageTemplate:
    """The message template of one variant (built once, filled per recipient), DKIM-signed with
    each key the settings name (``dkim_keys``). The rendered HTML carries its own hidden preheader."""
    parts = MessageParts(subject=rendered.subject, text=rendered.text, html=rendered.html)
    return MessageTemplate.build(
        parts,
        settings=settings,
        campaign_slug=slug,
        list_name=settings.organisation,
        default_name="friend",
        dkim=dkim_keys(settings),
    )
