"""Prepare a send: everything loaded, validated and rendered before the first side effect.

``prepare`` loads and validates the issue, resolves who it speaks as (its network, and a local
group's own sender: :mod:`mailer.identity`), plans the audience's variants (narrowed by a segment if
given), renders each variant once and builds its message template. Nothing is written; a broken
issue, or one whose network cannot be told, sends nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import object_session

from mailer.audience.segments import compile_segment
from mailer.audience.shape import Shape
from mailer.compose import VariantPlan, plan
from mailer.db import Database
from mailer.errors import DeliveryError, Problem
from mailer.identity import Identity, campaign_identity, default_identity, issue_identity
from mailer.issue import LoadedIssue, load_campaign
from mailer.issue.yaml_loader import read_yaml
from mailer.message import MessageParts, MessageTemplate, dkim_keys
from mailer.message.template import check_markers
from mailer.models import Campaign
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
    network: str = ""  # the network the campaign speaks as (its slug; "": the workspace's only one)
    identity: Identity | None = None  # who it speaks as: the network, and a local group's sender

    @property
    def speaks_as(self) -> Identity:
        """The identity of its messages (the workspace's own when none was resolved)."""
        return self.identity or default_identity(self.renderer.settings)

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
    issue = loaded.issue
    if issue.kind == "digest":
        raise DeliveryError(
            f"{slug} is a digest: the workers send it on its schedule ({loaded.path})",
            hint="run `mailer worker` (or `mailer serve`); each run goes out as a campaign of its own",
        )
    # Who it speaks as (docs/decisions.md, Networks): the network it names or its audience implies; an
    # unknown or ambiguous one is a ConfigError naming the file's `network:` and the fix.
    identity = issue_identity(
        shape, settings, issue.network, issue.audience, path=loaded.path, line=network_line(loaded)
    )
    audience = audience_of(loaded, segment)
    compile_segment(audience, shape)  # unknown names and syntax errors, now
    network = identity.network.slug if shape.networks else ""  # "": the workspace's only network
    with db.session() as session:
        the_plan = plan(session, loaded, shape, audience, network)
    renderer = Renderer(settings, identity)
    rendered = {p.variant.key: renderer.render(p.variant, loaded) for p in the_plan.variants}
    # Every template must build. What could stop one is the settings and DKIM keys, the same for
    # all (one build checks them), or an unknown slot marker, which each variant is checked for;
    # the sender builds each template once, when it first needs it.
    for r in rendered.values():
        check_markers(r.text, r.html)
    if rendered:
        template_for(settings, slug, next(iter(rendered.values())), kind=loaded.issue.kind, identity=identity)
    return Prepared(loaded, audience, the_plan, renderer, rendered, network, identity)


def network_line(loaded: LoadedIssue) -> int | None:
    """The line of the issue's ``network:`` (or of its ``audience:``, which implies it)."""
    return loaded.lines.get("network") or loaded.lines.get("audience")


def template_for(
    settings: Settings,
    slug: str,
    rendered: RenderedVariant | VariantRow,
    *,
    kind: str,
    identity: Identity | None = None,
) -> MessageTemplate:
    """The message template of one variant (built once, filled per recipient), DKIM-signed with
    each key the settings name (``dkim_keys``) for the signing domain of the network it speaks as.
    The rendered HTML carries its own hidden preheader; ``kind`` (the issue's: newsletter or alert)
    goes into its Feedback-ID.

    ``identity``: who it speaks as (From, Reply-To, List-Id, DKIM domain). Without it, a stored
    variant (``VariantRow``, at send time) speaks as its campaign (``Campaign.network``, the issue's
    audience); a rendered one as the workspace's single network."""
    if identity is None:
        identity = stored_identity(settings, rendered) if isinstance(rendered, VariantRow) else None
    identity = identity or default_identity(settings)
    speaking = identity.settings(settings)
    parts = MessageParts(subject=rendered.subject, text=rendered.text, html=rendered.html)
    return MessageTemplate.build(
        parts,
        settings=speaking,
        campaign_slug=slug,
        kind=kind,
        list_name=identity.list_name,
        list_slug=identity.list_slug,
        default_name="friend",
        dkim=dkim_keys(speaking),
    )


def stored_identity(settings: Settings, row: VariantRow) -> Identity:
    """Who a stored variant's campaign speaks as: its ``network`` and its issue's audience (from the
    issue file as sent; a local group's own sender depends on it), resolved against the lists."""
    session = object_session(row)
    campaign = session.get(Campaign, row.campaign_id) if session is not None else None
    if campaign is None:
        return default_identity(settings)
    return campaign_identity(settings, campaign.network, issue_audience(campaign))


def issue_audience(campaign: Campaign) -> str:
    """The audience of the issue as sent (``Campaign.source``), else the campaign's audience."""
    problems: list[Problem] = []
    data, _lines = read_yaml(campaign.source or "", Path(f"{campaign.slug}/issue.yaml"), problems)
    audience = data.get("audience", "all") if isinstance(data, dict) else None
    return audience if isinstance(audience, str) and audience.strip() else campaign.audience
