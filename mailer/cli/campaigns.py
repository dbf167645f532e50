"""``mailer campaigns``: issues and alerts, from writing to sending."""

from __future__ import annotations

from mailer.cli import cli


@cli.group("campaigns")
def campaigns_group() -> None:
    """Newsletters and alerts: new, check, variants, preview, send."""
