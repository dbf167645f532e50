"""Inbound mail: bounces, complaints, mailed unsubscribes and auto-replies (issues 6 and 11).

``sources`` reads a Maildir, an mbox file or an IMAP folder; ``parse`` reads each mail defensively;
``classify`` says what it is; ``evidence`` finds what proves the delivery it answers; ``process``
acts on it once, and only with proof. ``process_source(db, settings, "path/to/Maildir")`` is the
entry point. A mail that cannot be read is quarantined and the run goes on.
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
