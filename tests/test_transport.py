"""Transports against a real aiosmtpd server (tests/support/smtp_server.py) and a real Maildir."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from support.smtp_server import SmtpTestServer, refused_port

from mailer.errors import ConfigError, TransportError
from mailer.secret_key import new_secret
from mailer.settings import Settings, load
from mailer.transport import (
    MaildirTransport,
    Outgoing,
    RateLimiter,
    SendResult,
    SmtpPool,
    check_payload,
    data_payload,
    enhanced_status,
    message_from_payload,
    open_transport,
    parse_relay,
    transport_for,
)

SENDER = "bounces+17@lists.example.org"


def build(recipient: str, n: int = 0) -> bytes:
    """A message as the email package writes it for SMTP (CRLF), with lines that need stuffing."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Kent Network <newsletter@example.org>"
    msg["To"] = recipient
    msg["Subject"] = f"Rhif {n}: café and ‘quotes’"
    msg.set_content(
        f"Hello {n}\n.\n.starts with a dot\n..two dots\nend.\n" + "A fairly long line of text. " * 40
    )
    msg.add_alternative(f"<p>Hello {n}</p>\n<p>.dot</p>", subtype="html")
    msg.set_boundary(f"=={n}==")
    return msg.as_bytes()


def outgoing(recipient: str, n: int = 0) -> Outgoing:
    return Outgoing(SENDER, recipient, data_payload(build(recipient, n)), key=n)


async def collect(
    pool: Any, messages: list[Outgoing], retry: int = 0, delay: float = 0.0
) -> list[SendResult]:
    """Send all, requeueing temporary failures up to ``retry`` times each; return final results."""
    tries: dict[Any, int] = {}
    results: list[SendResult] = []
    stream = pool.send_many(messages)
    async for result in stream:
        if result.temporary and tries.get(result.key, 0) < retry:
            tries[result.key] = tries.get(result.key, 0) + 1
            assert result.message is not None
            stream.requeue(result.message, delay=delay)
            continue
        results.append(result)
    return sorted(results, key=lambda r: r.key)


# -- payloads -------------------------------------------------------------------------------------


def test_data_payload_stuffs_dots_normalises_endings_and_round_trips() -> None:
    raw = b".first\nsecond\r\n..third\rfourth\r\n.\r\nlast"
    payload = data_payload(raw)
    assert payload == b"..first\r\nsecond\r\n...third\r\nfourth\r\n..\r\nlast\r\n.\r\n"
    check_payload(payload, thorough=True)
    assert message_from_payload(payload) == b".first\r\nsecond\r\n..third\r\nfourth\r\n.\r\nlast\r\n"


@pytest.mark.parametrize(
    "bad",
    [b"no terminator\r\n", b"bare lf\n.\n", b"early\r\n.\r\nsmuggled\r\n.\r\n", b".\r\n"],
)
def test_check_payload_refuses_what_is_not_a_data_payload(bad: bytes) -> None:
    with pytest.raises(ValueError):
        check_payload(bad, thorough=True)


def test_enhanced_status_is_parsed_from_reply_text() -> None:
    assert enhanced_status("5.1.1 <x@y>: Recipient address rejected") == "5.1.1"
    assert enhanced_status("4.7.0 try later") == "4.7.0"
    assert enhanced_status("Requested action not taken") is None


# -- delivery --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False])
def test_messages_arrive_intact_over_few_reused_connections(
    smtp_server_factory: Callable[..., SmtpTestServer], pipelining: bool
) -> None:
    server = smtp_server_factory(pipelining=pipelining)
    messages = [outgoing(f"member{n}+kent@example.net", n) for n in range(60)]

    async def run() -> list[SendResult]:
        async with SmtpPool(server.url, concurrency=3, local_hostname="client.test") as pool:
            return await collect(pool, messages)

    results = asyncio.run(run())
    assert all(r.ok and r.code == 250 for r in results), results[:3]
    assert set(server.ehlo_names) == {"client.test"}
    got = {m.rcpt_tos[0]: m for m in server.messages}
    assert len(server.messages) == 60
    for n, message in enumerate(messages):
        received = got[message.recipient]
        assert received.mail_from == SENDER
        assert received.data == message_from_payload(message.payload) == build(message.recipient, n)
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        assert parsed["Subject"] == f"Rhif {n}: café and ‘quotes’"
        text = parsed.get_body(("plain",))
        assert text is not None
        assert "\n.starts with a dot\n..two dots\n" in text.get_content().replace("\r\n", "\n")
    # Reused connections: 60 messages over at most 3 of them.
    assert server.connections <= 3
    assert len({m.connection for m in server.messages}) <= 3
    # With PIPELINING, RCPT and DATA are already waiting when MAIL is handled; without, never.
    mails = [waiting for _, command, waiting in server.commands if command == "MAIL"]
    assert len(mails) == 60
    if pipelining:
        assert all(waiting > 0 for waiting in mails)
    else:
        assert all(waiting == 0 for waiting in mails)


def test_single_send_and_result_fields(smtp_server: SmtpTestServer) -> None:
    async def run() -> SendResult:
        async with SmtpPool([smtp_server.url], concurrency=1) as pool:
            return await pool.send(
                SENDER, "one@example.net", data_payload(build("one@example.net")), key="d1"
            )

    result = asyncio.run(run())
    assert result.ok and not result.temporary and not result.permanent
    assert (result.code, result.recipient, result.key) == (250, "one@example.net", "d1")
    assert result.relay == smtp_server.url
    assert smtp_server.messages[0].rcpt_tos == ["one@example.net"]


def test_tempfail_is_temporary_and_a_requeued_message_goes_through(smtp_server: SmtpTestServer) -> None:
    smtp_server.tempfail(r"^busy", times=2)
    messages = [outgoing("busy@example.net", 0), *(outgoing(f"m{n}@example.net", n) for n in range(1, 10))]

    async def run() -> tuple[list[SendResult], list[SendResult]]:
        async with SmtpPool(smtp_server.url, concurrency=2) as pool:
            first = await collect(pool, messages)
            again = await collect(pool, messages[:1], retry=3, delay=0.05)
            return first, again

    first, again = asyncio.run(run())
    busy = first[0]
    assert not busy.ok and busy.temporary and busy.code == 451 and busy.enhanced == "4.3.0"
    assert all(r.ok for r in first[1:])
    assert again[0].ok  # the second refusal was retried by requeue, the third try went through
    assert [m.rcpt_tos for m in smtp_server.messages].count(["busy@example.net"]) == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_rcpt_rejection_is_permanent_with_code_and_the_connection_goes_on(
    smtp_server_factory: Callable[..., SmtpTestServer], pipelining: bool
) -> None:
    server = smtp_server_factory(pipelining=pipelining)
    server.reject(r"^(nobody|gone)@")
    names = ["a", "nobody", "b", "gone", "nobody", "c", "d"]
    messages = [outgoing(f"{name}@example.net", n) for n, name in enumerate(names)]

    async def run() -> list[SendResult]:
        async with SmtpPool(server.url, concurrency=1) as pool:
            return await collect(pool, messages)

    results = asyncio.run(run())
    for result, name in zip(results, names, strict=True):
        if name in ("nobody", "gone"):
            assert result.permanent and result.code == 550 and result.enhanced == "5.1.1"
            assert f"<{name}@example.net>" in result.text
        else:
            assert result.ok, result
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [f"{x}@example.net" for x in "abcd"]
    assert server.connections == 1  # refusals did not cost the connection (RSET, then on)


def test_connection_dropped_in_data_is_temporary_and_the_pool_recovers(smtp_server: SmtpTestServer) -> None:
    smtp_server.drop(nth=4)
    messages = [outgoing(f"m{n}@example.net", n) for n in range(20)]

    async def run() -> tuple[list[SendResult], list[SendResult]]:
        async with SmtpPool(smtp_server.url, concurrency=2) as pool:
            first = await collect(pool, messages)
            failed = [r.message for r in first if not r.ok and r.message is not None]
            return first, await collect(pool, failed)

    first, second = asyncio.run(run())
    failed = [r for r in first if not r.ok]
    assert failed and all(r.temporary and r.code is None for r in failed)
    assert "closed the connection" in failed[0].text or "abandoned" in failed[0].text
    # The client had written the whole message when the line went dead: it cannot tell that the
    # server hung up before the end, so the outcome is unknown; one pipelined behind it is safe.
    assert [r.unknown for r in failed].count(True) == 1
    assert all(r.connection_fault for r in failed if not r.unknown)
    assert all(r.ok for r in second)
    # Everything arrived, exactly once, and the broken connection was replaced.
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(m.recipient for m in messages)
    assert smtp_server.connections >= 3


def test_server_slower_than_the_timeout_is_temporary(smtp_server: SmtpTestServer) -> None:
    smtp_server.delay(2.5, r"^slow@", times=1)
    messages = [outgoing("slow@example.net", 0), *(outgoing(f"m{n}@example.net", n) for n in range(1, 6))]

    async def run() -> tuple[list[SendResult], list[SendResult]]:
        async with SmtpPool(smtp_server.url, concurrency=1, timeout=1.0) as pool:
            first = await collect(pool, messages)
            failed = [r.message for r in first if not r.ok and r.message is not None]
            return first, await collect(pool, failed)

    first, again = asyncio.run(run())
    slow = first[0]
    assert not slow.ok and slow.temporary and slow.code is None and slow.unknown and slow.after_dot
    assert "did not reply within 1 s" in slow.text and "may have been delivered" in slow.text
    # Only what was on the timed-out connection failed (at most the message pipelined behind it).
    assert sum(not r.ok for r in first) <= 2 and all(r.temporary for r in first if not r.ok)
    assert all(r.ok for r in again)
    assert smtp_server.connections >= 2  # the timed-out connection was replaced
    # The server did take the slow message after all, later: the duplicate a timeout can cause.
    received = [m.rcpt_tos[0] for m in smtp_server.messages]
    assert sorted(set(received)) == sorted(m.recipient for m in messages)


@pytest.mark.parametrize("pipelining", [True, False])
def test_each_fault_says_whether_the_relay_may_have_the_message(
    smtp_server_factory: Callable[..., SmtpTestServer], pipelining: bool
) -> None:
    """A 4xx at MAIL, RCPT, DATA or after the dot, and a drop before the message, leave nothing on
    the relay: safe to send again. No valid reply after the whole message (a drop, garbage, silence)
    is unknown: the relay may have it (RFC 5321, 4.1.1.4)."""
    server = smtp_server_factory(pipelining=pipelining)
    faults: list[tuple[str, Callable[[], object]]] = [
        ("mail", lambda: server.tempfail(stage="mail", times=1)),
        ("rcpt", lambda: server.tempfail(stage="rcpt", times=1, reply="450 4.2.1 Mailbox busy")),
        ("data", lambda: server.tempfail(stage="data", times=1, reply="452 4.3.1 Out of memory")),
        ("dot", lambda: server.tempfail(stage="dot", times=1)),
        ("drop-before", lambda: server.drop(when="at-data")),
        ("drop-after", lambda: server.drop(when="after-dot")),
        ("garbage", lambda: server.garbage()),
        ("silence", lambda: server.hang()),
        ("fine", lambda: None),
    ]

    async def run() -> dict[str, SendResult]:
        results = {}
        async with SmtpPool(server.url, concurrency=1, timeout=1.0) as pool:
            for n, (name, fault) in enumerate(faults):
                fault()
                rcpt = f"{name}@example.net"
                results[name] = await pool.send(SENDER, rcpt, data_payload(build(rcpt, n)))
        return results

    results = asyncio.run(run())
    for name in ("mail", "rcpt", "data", "dot"):
        r = results[name]
        assert r.refused_for_now and r.temporary and not r.unknown and not r.connection_fault, r
        assert r.after_dot == (name == "dot")
    assert [results[n].code for n in ("mail", "rcpt", "data", "dot")] == [451, 450, 452, 451]
    before = results["drop-before"]
    assert before.connection_fault and not before.unknown and not before.after_dot
    for name in ("drop-after", "garbage", "silence"):
        r = results[name]
        assert r.unknown and r.after_dot and r.code is None and not r.connection_fault, r
    assert "malformed reply" in results["garbage"].text
    assert "did not reply within 1 s" in results["silence"].text
    assert results["fine"].ok and results["fine"].after_dot
    assert [m.rcpt_tos for m in server.messages] == [["fine@example.net"]]
    unanswered = [m.rcpt_tos[0] for m in server.unanswered]
    assert unanswered == ["drop-after@example.net", "garbage@example.net", "silence@example.net"]


def test_421_closes_the_connection_and_the_message_is_temporary(smtp_server: SmtpTestServer) -> None:
    smtp_server.tempfail(nth=3, reply="421 4.3.2 Service shutting down")
    messages = [outgoing(f"m{n}@example.net", n) for n in range(8)]

    async def run() -> list[SendResult]:
        async with SmtpPool(smtp_server.url, concurrency=1) as pool:
            return await collect(pool, messages)

    results = asyncio.run(run())
    failed = [r for r in results if not r.ok]
    assert failed[0].code == 421 and failed[0].temporary and failed[0].enhanced == "4.3.2"
    # At most the message pipelined behind it went down with the connection.
    assert len(failed) <= 2 and all(r.temporary for r in failed)
    assert smtp_server.connections == 2
    assert len(smtp_server.messages) == 8 - len(failed)


def test_a_bad_payload_in_a_stream_raises_after_what_was_in_flight(smtp_server: SmtpTestServer) -> None:
    good = [outgoing(f"m{n}@example.net", n) for n in range(5)]
    bad = Outgoing(SENDER, "bad@example.net", b"not stuffed\n")

    async def run() -> list[SendResult]:
        got: list[SendResult] = []
        async with SmtpPool(smtp_server.url, concurrency=2) as pool:
            with pytest.raises(ValueError, match="not a DATA payload"):
                async for result in pool.send_many([*good, bad, good[0]]):
                    got.append(result)
        return got

    got = asyncio.run(run())
    assert sorted(r.recipient for r in got) == sorted(m.recipient for m in good)
    assert len(smtp_server.messages) == 5


def test_closed_pool_refuses_to_send(smtp_server: SmtpTestServer) -> None:
    async def run() -> None:
        pool = SmtpPool(smtp_server.url, concurrency=1)
        async with pool:
            pass
        await pool.send(SENDER, "late@example.net", data_payload(build("late@example.net")))

    with pytest.raises(TransportError, match="not open"):
        asyncio.run(run())
    assert smtp_server.messages == []
    assert "QUIT" in {command for _, command, _ in smtp_server.commands}  # closed politely


def test_refused_first_relay_fails_over_to_the_second(smtp_server: SmtpTestServer) -> None:
    with refused_port() as port:
        dead = f"smtp://127.0.0.1:{port}"

        async def run() -> tuple[list[SendResult], str]:
            async with SmtpPool([dead, smtp_server.url], concurrency=2) as pool:
                results = await collect(pool, [outgoing(f"m{n}@example.net", n) for n in range(5)])
                return results, pool.url

        results, active = asyncio.run(run())
    assert all(r.ok and r.relay == smtp_server.url for r in results)
    assert active == smtp_server.url
    assert len(smtp_server.messages) == 5


def test_no_relay_reachable_raises_before_sending_anything() -> None:
    with refused_port() as first, refused_port() as second:

        async def run() -> None:
            async with SmtpPool([f"smtp://127.0.0.1:{first}", f"smtp://127.0.0.1:{second}"]):
                raise AssertionError("opened")

        with pytest.raises(TransportError) as caught:
            asyncio.run(run())
    assert caught.value.temporary
    assert f"127.0.0.1:{first}" in str(caught.value) and f"127.0.0.1:{second}" in str(caught.value)


def test_relay_that_goes_away_mid_send_gives_temporary_results(smtp_server: SmtpTestServer) -> None:
    async def run() -> list[SendResult]:
        async with SmtpPool(smtp_server.url, concurrency=1, timeout=2) as pool:
            results = [await pool.send(SENDER, "a@example.net", data_payload(build("a@example.net")))]
            smtp_server.refuse = True  # new connections are closed at once
            smtp_server.drop(times=None)  # and the open one is dropped in DATA
            for rcpt in ("b@example.net", "c@example.net"):
                results.append(await pool.send(SENDER, rcpt, data_payload(build(rcpt))))
            return results

    ok, dropped, unreachable = asyncio.run(run())
    assert ok.ok
    assert dropped.temporary and not dropped.ok and "closed the connection" in dropped.text
    assert unreachable.temporary and "no relay could be reached" in unreachable.text
    assert [m.rcpt_tos for m in smtp_server.messages] == [["a@example.net"]]


# -- rate limits -------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_rate_limiter_per_second_spreads_sends() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=2, clock=clock)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.5]
    clock.now += 0.5
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == 0.5
    slow = RateLimiter(per_second=0.5, clock=clock)
    assert slow.reserve() == 0.0 and slow.reserve() == 2.0
    assert slow.reserve(take=False) == 2.0


def test_rate_limiter_per_hour_is_a_sliding_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_hour=3, clock=clock)
    for _ in range(3):
        assert limiter.reserve() == 0.0
        clock.now += 600
    assert limiter.reserve() == pytest.approx(1800)  # the first send leaves the window at +3600
    clock.now += 1800
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(600)


def test_pool_respects_the_rate_limit_across_connections(smtp_server: SmtpTestServer) -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=2, per_hour=100, clock=clock, sleep=clock.sleep)

    async def run() -> list[SendResult]:
        async with SmtpPool(smtp_server.url, concurrency=4, limiters=[limiter]) as pool:
            return await collect(pool, [outgoing(f"m{n}@example.net", n) for n in range(10)])

    results = asyncio.run(run())
    assert all(r.ok for r in results) and len(smtp_server.messages) == 10
    # 2 at once, then one every half second: 8 × 0.5 s, whichever of the 4 connections sent them.
    assert clock.now - 1000.0 >= 4.0 - 1e-9


# -- TLS and AUTH ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for 127.0.0.1, from a throwaway CA."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_tls_and_auth(
    smtp_server_factory: Callable[..., SmtpTestServer], tls: tuple[ssl.SSLContext, ssl.SSLContext], mode: str
) -> None:
    server_ctx, client_ctx = tls
    options: dict[str, Any] = {"starttls": server_ctx} if mode == "starttls" else {"implicit_tls": server_ctx}
    server = smtp_server_factory(users={"editor": "s3cret"}, **options)
    url = server.url.replace("://", "://editor@")
    messages = [outgoing(f"m{n}@example.net", n) for n in range(12)]

    async def run() -> list[SendResult]:
        async with SmtpPool(
            url, concurrency=2, tls_context=client_ctx, env={"MAILER_RELAY_PASSWORD": "s3cret"}
        ) as pool:
            return await collect(pool, messages)

    results = asyncio.run(run())
    assert all(r.ok for r in results)
    assert sorted(m.data for m in server.messages) == sorted(build(m.recipient, m.key) for m in messages)
    assert "s3cret" not in results[0].relay

    async def wrong_password() -> None:
        async with SmtpPool(url, tls_context=client_ctx, env={"MAILER_RELAY_PASSWORD": "nope"}):
            raise AssertionError("logged in")

    with pytest.raises(TransportError) as caught:
        asyncio.run(wrong_password())
    assert not caught.value.temporary and "535" in str(caught.value)


def test_tls_relay_with_an_untrusted_certificate_is_refused(
    smtp_server_factory: Callable[..., SmtpTestServer], tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server = smtp_server_factory(implicit_tls=tls[0])

    async def run() -> None:
        async with SmtpPool(server.url, timeout=5):  # the system's trust store: no throwaway CA
            raise AssertionError("connected")

    with pytest.raises(TransportError, match=r"(?i)certificate"):
        asyncio.run(run())


# -- relay URLs and settings ----------------------------------------------------------------------------


def test_relay_urls_and_passwords() -> None:
    relay = parse_relay("smtps://news@mail.example.org", env={"MAILER_RELAY_PASSWORD": "pw"})
    assert (relay.scheme, relay.host, relay.port, relay.username, relay.password) == (
        "smtps",
        "mail.example.org",
        465,
        "news",
        "pw",
    )
    assert relay.label == "smtps://news@mail.example.org:465" and "pw" not in repr(relay)
    assert parse_relay("smtp+starttls://u:p%40ss@h", env={}).password == "p@ss"
    assert parse_relay("smtp://h", env={}).port == 25
    with pytest.raises(ConfigError, match="needs a password"):
        parse_relay("smtp+starttls://u@h", env={})
    with pytest.raises(ConfigError, match="unknown relay scheme"):
        parse_relay("http://h", env={})


def test_transport_for_settings_picks_maildir_or_smtp(tmp_path: Path) -> None:
    maildir = transport_for(Settings(workspace=tmp_path))
    assert isinstance(maildir, MaildirTransport) and maildir.path == tmp_path / "outbox"
    pool = transport_for(Settings(workspace=tmp_path, relay="smtp://a:2525, smtp://b:2525", concurrency=3))
    assert isinstance(pool, SmtpPool) and [r.label for r in pool.relays] == ["smtp://a:2525", "smtp://b:2525"]
    assert pool.concurrency == 3
    with pytest.raises(ConfigError, match="cannot be combined"):
        open_transport(["maildir:///tmp/x", "smtp://a"])


def test_the_greeting_names_the_sending_host(smtp_server: SmtpTestServer, tmp_path: Path) -> None:
    """EHLO gives the ehlo_hostname setting, else the list domain (never localhost or whatever the
    machine calls itself), for a campaign's transport and for the web app's system mails alike."""
    from dataclasses import replace

    from mailer.web.mail import relay_sender

    settings = Settings(workspace=tmp_path, relay=smtp_server.url, list_domain="lists.cen-network.org.uk")
    assert settings.ehlo_name == "lists.cen-network.org.uk"

    async def send(transport: Any) -> None:
        async with transport:
            assert (await transport.send(SENDER, "a@example.net", data_payload(build("a@example.net")))).ok

    asyncio.run(send(transport_for(settings)))
    assert smtp_server.ehlo_names == ["lists.cen-network.org.uk"]
    named = replace(settings, ehlo_hostname="Mail.CEN-Network.org.uk")
    asyncio.run(send(transport_for(named)))
    message = EmailMessage()
    message["To"] = "b@example.net"
    message["Subject"] = "Confirm"
    message.set_content("Hello")
    asyncio.run(relay_sender(named)(message))
    assert smtp_server.ehlo_names[1:] == ["mail.cen-network.org.uk"] * 2
    assert len(smtp_server.messages) == 3


@pytest.mark.parametrize(
    "name", ["mail.example.org\r\nRSET", "mail example.org", "", "-mail.example.org", "a" * 254, "[::1"]
)
def test_a_greeting_name_that_is_not_a_host_name_is_refused(name: str, tmp_path: Path) -> None:
    (tmp_path / "mailer.toml").write_text(f"ehlo_hostname = {name!r}\n".replace("'", '"'), encoding="utf-8")
    if name:
        with pytest.raises(ConfigError, match="ehlo_hostname: not a host name for the SMTP greeting"):
            load(tmp_path, env={"MAILER_SECRET": new_secret()})
    with pytest.raises(ConfigError, match="not a host name for the SMTP greeting"):
        SmtpPool("smtp://127.0.0.1:25", local_hostname=name)
    for good in ("mail.example.org", "[192.0.2.1]", "[IPv6:2001:db8::1]", "localhost"):
        assert SmtpPool("smtp://127.0.0.1:25", local_hostname=good).local_hostname == good


# -- Maildir ----------------------------------------------------------------------------------------


def test_maildir_delivery(tmp_path: Path) -> None:
    messages = [outgoing(f"m{n}@example.net", n) for n in range(25)]
    outbox = tmp_path / "outbox"

    async def run() -> tuple[list[SendResult], SendResult]:
        async with open_transport(f"maildir://{outbox}") as transport:
            one = await transport.send(SENDER, "solo@example.net", data_payload(build("solo@example.net")))
            return await collect(transport, messages), one

    results, one = asyncio.run(run())
    assert one.ok and all(r.ok and not r.temporary for r in results)
    assert sorted(p.name for p in outbox.iterdir()) == ["cur", "new", "tmp"]
    assert not list((outbox / "tmp").iterdir())
    box = mailbox.Maildir(outbox, factory=None, create=False)
    assert len(box) == 26
    by_rcpt = {m["Delivered-To"]: m for m in box}
    for n, message in enumerate(messages):
        stored = by_rcpt[message.recipient]
        assert stored["Return-Path"] == f"<{SENDER}>"
        raw = stored.as_bytes()
        original = build(message.recipient, n).replace(b"\r\n", b"\n")
        assert raw.endswith(original)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Subject"] == f"Rhif {n}: café and ‘quotes’"


def test_maildir_that_cannot_be_created_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    async def run() -> None:
        async with MaildirTransport(f"maildir://{blocker}/outbox"):
            raise AssertionError("opened")

    with pytest.raises(TransportError) as caught:
        asyncio.run(run())
    assert not caught.value.temporary


def test_stopped_stream_finishes_what_is_in_flight(smtp_server: SmtpTestServer) -> None:
    messages = [outgoing(f"m{n}@example.net", n) for n in range(200)]

    async def run() -> list[SendResult]:
        got: list[SendResult] = []
        async with SmtpPool(smtp_server.url, concurrency=2) as pool:
            stream = pool.send_many(messages, window=8)
            async for result in stream:
                got.append(result)
                if len(got) == 5:
                    stream.stop()
        return got

    got = asyncio.run(run())
    assert 5 <= len(got) <= 8 + 5 and all(r.ok for r in got)
    # Every message the server accepted was reported, and nothing else was sent.
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(r.recipient for r in got)
