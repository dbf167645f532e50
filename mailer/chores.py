"""The workers' chores, in one list: what runs on a schedule without cron.

Each chore lives with what it does (its module names it and how often it is due); this list is
what ``mailer worker`` and the worker embedded in ``mailer serve`` run, through
:func:`mailer.sending.chores.run_due_chores`, once across all workers.
"""

from __future__ import annotations

from mailer.events.digest import DIGESTS
from mailer.events.reminders import EVENT_MAILS
from mailer.events.watch import EVENTS_SYNC
from mailer.sending.chores import Chore
from mailer.settings import Settings


def default_chores(settings: Settings) -> list[Chore]:
    """The chores every worker runs, in order."""
    # the events in step with edited issues first, so that a change is mailed in the same round
    chores: list[Chore] = [EVENTS_SYNC, EVENT_MAILS, DIGESTS]
    return chores
