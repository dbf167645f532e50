"""``mailer demo``: the whole story on the embedded defaults, top to bottom.

A workspace with the demo's two networks (Kent, Central England), their lists and campaigns; the
demo members imported; the Kent newsletter, the ECHR alert and the Central England newsletter sent to
the Maildir outbox, each as its own network; a summary and where to look. Running it
again on the same folder sends nothing twice: it reports what is there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from mailer import sending as delivery
from mailer import tokens
from mailer.audience.importer import Options, import_csv
from mailer.audience.shape import load_shape, sync
from mailer.audience.stats import stats
from mailer.db import open_database
from mailer.models import Member
from mailer.settings import ensure_secret, load
from mailer.transport import transport_for
from mailer.workspace import init_workspace, write_dkim_keys

# The Kent newsletter and alert speak as the Kent Network, the December newsletter as Central England.
CAMPAIGNS = ("2025-11-kent-network", "2025-11-echr-alert", "2025-12-central-england")


@dataclass
class DemoResult:
    workspace: Path
    members: int
    suppressed: int
    sent: dict[str, delivery.CampaignStatus] = field(default_factory=dict)
    outbox: Path | None = None
    unsubscribe_link: str = ""


def run_demo(directory: Path, echo: Callable[[str], None] = print) -> DemoResult:
    """Make (or reuse) the demo workspace in ``directory`` and send its campaigns to the outbox."""
    directory = directory.resolve()
    init_workspace(directory, demo=True)
    settings = ensure_secret(load(directory))
    write_dkim_keys(directory, settings)  # every message DKIM-signed (RSA-2048 and Ed25519)
    shape = load_shape(settings.path("lists"))
    db = open_database(settings)
    try:
        with db.session() as session:
            sync(session, shape)
            # Its consent_source column is the basis; greet members by their name's first word.
            report = import_csv(
                session,
                settings.path("lists", "members.csv"),
                shape,
                options=Options(first_name_from_name=True),
            )
        echo(
            f"imported {settings.path('lists', 'members.csv')}: {report.added} added, "
            f"{report.updated} updated, {report.unchanged} unchanged, {report.rejected} rejected"
        )
        with db.session() as session:
            audience = stats(session, shape)
        echo(f"audience: {audience.members} members, {audience.suppressed} suppressed")
        result = DemoResult(directory, audience.members, audience.suppressed)
        for slug in CAMPAIGNS:
            with db.session() as session:
                existing = delivery.find_campaign(session, slug)
            if existing is None or existing.status != "sent":
                prepared = delivery.prepare(db, settings, shape, slug)
                echo(
                    f"sending {slug} to {prepared.plan.total} members "
                    f"in {len(prepared.plan.variants)} variant(s)"
                )
                delivery.enqueue(db, prepared)
                engine = delivery.Engine(db, settings, slug)

                async def go(engine: delivery.Engine = engine) -> delivery.Summary:
                    async with transport_for(settings) as transport:
                        return await engine.run(transport)

                summary = asyncio.run(go())
                echo(f"  sent {summary.sent}, failed {summary.failed} in {summary.seconds:.1f}s")
            result.sent[slug] = delivery.campaign_status(db, shape, slug)
        result.outbox = Path(settings.relays[0].removeprefix("maildir://"))
        with db.session() as session:
            first = session.scalars(select(Member).order_by(Member.id).limit(1)).first()
            if first is not None:
                token = tokens.sign("unsubscribe", first.id, keys=settings.secrets)
                result.unsubscribe_link = tokens.link(settings.base_url, "unsubscribe", token)
        return result
    finally:
        db.dispose()
