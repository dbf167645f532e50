"""Test sends (proofs): the campaign to named addresses, subject marked [TEST], nothing recorded.

Each address gets the variant its member would get, or the full issue when it is nobody's
address, with that member's links (member 0's for nobody's). Nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from mailer import tokens
from mailer.audience.addresses import normalise
from mailer.compose import compose_all
from mailer.db import Database
from mailer.message import MessageTemplate, Recipient
from mailer.models import Member
from mailer.render import RenderedVariant
from mailer.sending.prepare import Prepared, template_for
from mailer.settings import Settings
from mailer.transport import SendResult, Transport


def test_recipients(
    db: Database, settings: Settings, prepared: Prepared, addresses: list[str]
) -> Iterator[tuple[MessageTemplate, Recipient]]:
    """For each address: the variant its member would get (or the full issue), ready to fill."""
    full = prepared.renderer.render(compose_all(prepared.loaded.issue), prepared.loaded)
    with db.session() as session:
        for i, address in enumerate(addresses, 1):
            email = normalise(address)
            member = session.scalars(select(Member).where(Member.email == email)).one_or_none()
            rendered = full
            if member is not None:
                region = member.region.slug if member.region else None
                variant = prepared.plan.variant_for(region, frozenset(x.slug for x in member.interests))
                rendered = prepared.render(variant.key)
            marked = RenderedVariant(
                subject="[TEST] " + rendered.subject,
                preheader=rendered.preheader,
                text=rendered.text,
                html=rendered.html,
                variant_key=rendered.variant_key,
            )
            template = template_for(
                settings, prepared.slug, marked, kind=prepared.loaded.issue.kind, identity=prepared.identity
            )
            member_id = member.id if member is not None else 0
            keys = settings.secrets
            yield (
                template,
                Recipient(
                    delivery_id=0 if member is None else -i,
                    member_id=member_id,
                    email=email,
                    name=member.name if member is not None else "",
                    first_name=member.first_name if member is not None else "",
                    unsubscribe_token=tokens.sign("unsubscribe", member_id, keys=keys),
                    preferences_token=tokens.sign("preferences", member_id, keys=keys),
                    rsvp_token="",  # a test copy's RSVP links open the public event pages
                ),
            )


async def send_tests(
    db: Database, settings: Settings, prepared: Prepared, addresses: list[str], transport: Transport
) -> list[SendResult]:
    """Send the test copies; the database is not written."""
    results = []
    for template, recipient in test_recipients(db, settings, prepared, addresses):
        payload = template.fill_wire(recipient)
        results.append(await transport.send(template.return_path(recipient), recipient.email, payload))
    return results
