"""The fixed cost of a send: what ``campaigns send`` does outside the delivery engine.

Opening an up-to-date database leaves Alembic unimported (it is read only to migrate), planning
counts members by (region, interest mask), and a renderer reuses what variants share. Each shortcut
is checked against the long way round, on SQLite and PostgreSQL where a database is involved.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from support.members import MEMBERS, add_members

from mailer import db as database
from mailer.audience.segments import compile_segment
from mailer.audience.shape import Shape
from mailer.compose import compose, counts_by_mask, counts_by_name, plan, relevant_interests
from mailer.db import Database
from mailer.issue import LoadedIssue, load_issue
from mailer.models import Interest
from mailer.render import Renderer
from mailer.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SEED_PATH = REPO / "campaigns" / "2025-11-kent-network" / "issue.yaml"


def _alembic_imported_by_opening(url: str) -> bool:
    """Whether opening the database at ``url`` in a fresh interpreter imports Alembic."""
    code = (
        "import sys\n"
        "from mailer.db import open_database\n"
        f"open_database({url!r}).dispose()\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip() == "True"


def test_the_migration_files_head_is_alembics() -> None:
    assert database.latest_revision() == database.head_revision()


def test_opening_an_up_to_date_database_does_not_import_alembic(database_url: str) -> None:
    engine = database.make_engine(database_url)
    assert database.stored_revision(engine) == database.head_revision()
    engine.dispose()
    assert not _alembic_imported_by_opening(database_url)


def test_a_database_behind_is_still_migrated_on_opening(empty_database_url: str) -> None:
    engine = database.make_engine(empty_database_url)
    database.upgrade(engine, "0001")
    assert database.stored_revision(engine) == "0001"
    engine.dispose()
    assert _alembic_imported_by_opening(empty_database_url)  # it had to migrate
    engine = database.make_engine(empty_database_url)
    assert database.current_revision(engine) == database.stored_revision(engine) == database.head_revision()
    engine.dispose()


def test_an_empty_database_is_migrated_on_opening(empty_database_url: str) -> None:
    engine = database.make_engine(empty_database_url)
    assert database.stored_revision(engine) is None
    engine.dispose()
    opened = database.open_database(empty_database_url)
    assert database.current_revision(opened.engine) == database.head_revision()
    opened.dispose()


def test_counting_by_interest_mask_counts_as_by_name(db: Database, shape: Shape) -> None:
    """Both ways of grouping members agree: the mask (up to 62 interests that decide variants) and
    the names joined (any number), for every audience and set of relevant interests tried."""
    add_members(db, [*MEMBERS, ("nowhere@example.org", None, ["schools", "refugees"])])
    with db.session() as session:
        every = frozenset(session.scalars(select(Interest.slug)))
        for expression in ("all", "region:kent", "interest:refugees", "region:kent and not interest:schools"):
            condition = compile_segment(expression, shape)
            for relevant in (frozenset(), frozenset({"schools"}), frozenset({"refugees", "training"}), every):
                by_mask = counts_by_mask(session, condition, relevant)
                assert by_mask == counts_by_name(session, condition, relevant), (expression, relevant)
        everyone = counts_by_mask(session, compile_segment("all", shape), every)
    assert sum(everyone.values()) == len(MEMBERS)  # the suppressed member out, the one with no region in
    assert everyone[None, frozenset({"schools", "refugees"})] == 1
    assert everyone["maidstone-medway-swale", frozenset({"refugees", "training"})] == 1


def test_plan_composes_each_group_as_compose_does(db: Database, shape: Shape) -> None:
    """Groups that see alike are composed once; each group's variant is still the one ``compose`` gives."""
    add_members(db, MEMBERS)
    seed = load_issue(SEED_PATH, shape)
    with db.session() as session:
        variant_plan = plan(session, seed, shape, "all")
    relevant = relevant_interests(seed.issue)
    for planned in variant_plan.variants:
        for group in planned.groups:
            assert (
                compose(seed.issue, shape, group.region, group.interests & relevant).key == group.variant_key
            )
            assert group.variant_key == planned.variant.key


@pytest.mark.slow
def test_one_renderer_renders_each_variant_as_a_fresh_one(settings: Settings, shape: Shape) -> None:
    """What a renderer keeps between variants (calendar entries, sections, wrapped lines) changes
    nothing: every variant of the seed comes out as a renderer of its own makes it."""
    seed: LoadedIssue = load_issue(SEED_PATH, shape)
    groups = [(r, frozenset(i)) for r in (None, "kent", "canterbury", "thanet") for i in ([], ["schools"])]
    groups += [("maidstone-medway-swale", frozenset({"refugees", "mp-advocacy"}))]
    variants = [compose(seed.issue, shape, region, interests) for region, interests in groups]
    shared = Renderer(settings)
    for variant in [*variants, *reversed(variants)]:
        assert shared.render(variant, seed) == Renderer(settings).render(variant, seed)
