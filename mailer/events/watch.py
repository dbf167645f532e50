"""The workers' ``events-sync`` chore: the events table kept in step with issue files edited after
their send by hand or from the command line (the desk syncs its own edits at once, a send as it
enqueues). Every five minutes it syncs each campaign with events from its file; what changed is
left in the table (``sequence`` above ``announced_sequence``) for the attendees to be told.

A later stage than ``mailer.events`` (it needs the workers' ``Chore``): listed in ``mailer.chores``.
"""

from __future__ import annotations

from datetime import timedelta

from mailer.audience.shape import load_shape
from mailer.events.sync import sync_from_file, synced_slugs
from mailer.sending.chores import Chore, ChoreContext


async def sync_edited(ctx: ChoreContext) -> str:
    """Sync every campaign with events from its issue file; a line naming what changed."""
    shape = load_shape(ctx.settings.path("lists"))
    changed: list[str] = []
    with ctx.db.session() as session:
        for slug in synced_slugs(session):
            result = sync_from_file(session, ctx.settings, shape, slug, ctx.now)
            if result is not None and not result.nothing:
                changed.append(f"{slug}: {result.as_dict()}")
    return "; ".join(changed)


EVENTS_SYNC = Chore("events-sync", timedelta(minutes=5), sync_edited)
