"""Filling processes hand their payloads over in shared memory (mailer.sending.fillers): every
message still reaches its own member whole, including those tried again on a fresh connection after
a lost connection (their payload is copied before the region is filled again) and those too large for a region
(sent inline through the pipe).

Batches of 16 rows to the helper (not 64) let 200 members make 13 batches, more than the helper's
``REGIONS`` (8): every region is filled again while earlier messages may still be waiting for a retry."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select
from support.sending import Mailing, check_unsubscribe_token, parse, sent_to
from support.smtp_server import SmtpTestServer

from mailer.db import Database
from mailer.models import Delivery
from mailer.sending import engine, fillers
from mailer.settings import Settings
from mailer.transport import check_payload


@pytest.mark.slow
@pytest.mark.parametrize("region_bytes", [fillers.REGION_BYTES, 4096], ids=["shared", "inline"])
def test_helper_payloads_reach_their_members_whole(
    db: Database,
    settings: Settings,
    smtp_server: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
    region_bytes: int,
    mailing: Mailing,
) -> None:
    monkeypatch.setattr(fillers, "REGION_BYTES", region_bytes)  # 4096: no message fits, all inline
    monkeypatch.setattr(engine, "HELPER_ROWS", 16)
    assert fillers.REGIONS < 200 // 16
    mailing.add(200, audience="all")
    enqueued = mailing.enqueue()
    smtp_server.drop(nth=7, times=3, when="at-data")  # lost before the message: tried again at once
    smtp_server.drop(nth=40, times=2, when="at-data")
    summary = mailing.send(fill_processes=1, batch_size=40)
    assert summary.sent == enqueued.deliveries == 200 and summary.failed == summary.unknown == 0
    assert summary.retried >= 1
    received = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert len(received) == 200 and max(received.values()) == 1
    with db.session() as session:
        for got in smtp_server.messages:
            check_payload(got.data + b".\r\n", thorough=True)
            assert got.data.endswith(b"--\r\n")  # the closing MIME boundary: the whole message
            d, member = sent_to(session, got, settings)
            msg = parse(got.data)
            assert member.email in str(msg["To"])
            check_unsubscribe_token(msg, settings, d, member)
            assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None
        statuses = Counter(session.scalars(select(Delivery.status)))
    assert statuses == Counter({"sent": 200})
