"""Filling processes hand their payloads over in shared memory (mailer.sending.fillers): every
message still reaches its own member whole, including those tried again on a fresh connection after
a lost connection (their payload is copied before the region is filled again) and those too large for a region
(sent inline through the pipe)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from smtp_server import SmtpTestServer
from sqlalchemy import select
from test_delivery import add_campaign, add_members, parse, prepare_and_enqueue, send

from mailer import tokens
from mailer.audience.shape import Shape
from mailer.db import Database
from mailer.message import delivery_id_from_verp
from mailer.models import Delivery, Member
from mailer.sending import fillers
from mailer.settings import Settings
from mailer.transport import check_payload


@pytest.mark.parametrize("region_bytes", [fillers.REGION_BYTES, 4096], ids=["shared", "inline"])
def test_helper_payloads_reach_their_members_whole(
    db: Database,
    settings: Settings,
    shape: Shape,
    workspace: Path,
    tmp_path: Path,
    smtp_server: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
    region_bytes: int,
) -> None:
    monkeypatch.setattr(fillers, "REGION_BYTES", region_bytes)  # 4096: no message fits, all inline
    add_campaign(workspace, audience="all")
    add_members(db, shape, tmp_path, 600)
    enqueued = prepare_and_enqueue(db, settings, shape)
    smtp_server.drop(nth=7, times=3, when="at-data")  # lost before the message: tried again at once
    smtp_server.drop(nth=40, times=2, when="at-data")
    summary = send(db, settings, smtp_server.url, fill_processes=1, batch_size=100)
    assert summary.sent == enqueued.deliveries == 600 and summary.failed == summary.unknown == 0
    assert summary.retried >= 1
    received = Counter(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert len(received) == 600 and max(received.values()) == 1
    with db.session() as session:
        for got in smtp_server.messages:
            check_payload(got.data + b".\r\n", thorough=True)
            assert got.data.endswith(b"--\r\n")  # the closing MIME boundary: the whole message
            delivery_id = delivery_id_from_verp(got.mail_from, settings.list_domain, keys=settings.secrets)
            assert delivery_id is not None
            d = session.get(Delivery, delivery_id)
            assert d is not None and d.status == "sent"
            member = session.get(Member, d.member_id)
            assert member is not None and got.rcpt_tos == [member.email]
            msg = parse(got.data)
            assert member.email in str(msg["To"])
            unsub = re.search(r"/u/([a-z0-9]+)>", str(msg["List-Unsubscribe"]))
            assert unsub
            token = tokens.verify(unsub.group(1), "unsubscribe", keys=settings.secrets)
            assert (token.member_id, token.campaign) == (member.id, d.campaign_id)
            assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None
        statuses = Counter(session.scalars(select(Delivery.status)))
    assert statuses == Counter({"sent": 600})
