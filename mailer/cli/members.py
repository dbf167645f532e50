"""``mailer members``: one person at a time."""

from __future__ import annotations

from mailer.cli import cli


@cli.group("members")
def members_group() -> None:
    """One member: show, export (subject access), unsubscribe, forget."""
