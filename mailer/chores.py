"""The workers' chores, in one list: what runs on a schedule without cron.

Each chore lives with what it does (its module names it and how often it is due); this list is
what ``mailer worker`` and the worker embedded in ``mailer serve`` run, through
:func:`mailer.sending.chores.run_due_chores`, once across all workers.
"""

from __future__ import annotations

from mailer.events.digest import DIGESTS
from mailer.events.reminders import EVENT_MAILS
from mailer.events.watch import EVENTS_SYNC
from mailer.inbound.chores import READ_REPLIES
from mailer.rights.retention import PURGE
from mailer.sending.chores import Chore
from mailer.settings import Settings


def default_chores(settings: Settings) -> list[Chore]:
    """The chores every worker runs, in order."""
    # the events in step with edited issues first, so that a change is mailed in the same round; then
    # what is past its retention (docs/data.md, Retention)
    chores: list[Chore] = [EVENTS_SYNC, EVENT_MAILS, DIGESTS, PURGE]
    if settings.reply_source_list:  # the reply mailboxes (docs/decisions.md, Replies asking to leave)
        chores.append(READ_REPLIES)
    return chores
