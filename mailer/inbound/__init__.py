"""Inbound mail: bounces, complaints, mailed unsubscribes and auto-replies (issue 6).

``sources`` reads a Maildir, an mbox file or an IMAP folder; ``classify`` says what each mail is;
``process`` acts on it once. ``process_source(db, settings, "path/to/Maildir")`` is the entry point.
"""

from mailer.inbound.classify import Classification, Failure, classify
from mailer.inbound.process import Outcome, ProcessReport, process_message, process_source

__all__ = [
    "Classification",
    "Failure",
    "Outcome",
    "ProcessReport",
    "classify",
    "process_message",
    "process_source",
]
