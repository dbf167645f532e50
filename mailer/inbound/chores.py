"""The workers read the reply mailboxes on a schedule (docs/decisions.md, Replies asking to leave), so a
member's "please unsubscribe me" is honoured, or put in front of a person, without anyone running
``mailer inbound process`` by hand or from cron.

``READ_REPLIES`` runs every ``EVERY`` on one worker at a time (``mailer.sending.chores``); it is listed
by ``mailer.chores.default_chores`` only when the ``reply_sources`` setting names a mailbox. A
mailbox that cannot be read is said in the worker's log line and the others are still read.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final

from mailer.errors import MailerError
from mailer.inbound.process import process_source
from mailer.sending.chores import Chore, ChoreContext

EVERY: Final = timedelta(minutes=5)


async def read_replies(context: ChoreContext) -> str:
    """Process every mailbox of ``reply_sources`` (in a thread: DNS look-ups and mailbox reads block);
    a line for the worker's log, "" when there was nothing new."""
    said: list[str] = []
    for spec in context.settings.reply_source_list:
        try:
            report = await asyncio.to_thread(process_source, context.db, context.settings, spec)
        except MailerError as exc:
            said.append(f"{spec}: not read: {exc}")
            continue
        new = report.messages - report.duplicates
        if new:
            said.append(
                f"{report.source}: {new} new, {report.suppressed} suppressed, {report.pending} waiting for "
                f"a person, {report.quarantined} quarantined"
            )
    return "; ".join(said)


READ_REPLIES: Final = Chore("read-replies", EVERY, read_replies)
