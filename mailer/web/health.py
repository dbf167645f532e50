"""What an operator watches: ``/healthz``, ``/metrics``, and the web app's guard against overload.

- ``GET /healthz``: JSON for a load balancer or a monitor: the database reachable, the sending
  workers' heartbeats, how long the oldest due message has waited, the inbound backlog when known
  (``mailer.sending.health``); 200 when all is well, 503 (with the problems named) otherwise.
- ``GET /metrics``: Prometheus's text format (``prometheus-client``). Messages by outcome, bounces,
  complaints, unsubscribes, the queue's depth and the workers alive are read from the database at
  scrape time, so every process says the same; web requests by route template and status are
  counted in each process and added up across the processes of ``mailer serve`` by
  prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which ``mailer serve`` sets).
  Only this machine may read it, unless the address is listed in ``metrics_allow`` or the request
  carries the bearer token ``MAILER_METRICS_TOKEN``; anyone else gets 404, as if there were nothing.
- ``Guard``: counts each request by route template and status, and answers 503 with Retry-After at
  once when a process already works on ``web_max_requests`` requests, so that overload gets an
  answer rather than a closed connection (docs/decisions.md, Serving).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.db import Database
from mailer.errors import ConfigError
from mailer.sending import health as sending_health
from mailer.settings import Settings
from mailer.web.context import web

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
RETRY_AFTER = "5"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_networks(settings: Settings) -> list[Network]:
    """The networks ``metrics_allow`` lists, besides this machine; a bad entry is refused with its place."""
    nets: list[Network] = list(LOOPBACK)
    for item in (p.strip() for p in settings.metrics_allow.split(",")):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"{item!r} is not an address or a network",
                field="metrics_allow",
                hint="list addresses or CIDR networks, comma-separated: 10.0.0.5, 192.168.1.0/24",
            ) from exc
    return nets


def may_read_metrics(request: Request, nets: list[Network], token: str) -> bool:
    """This machine, an address of ``metrics_allow``, or the bearer token."""
    if token:
        given = request.headers.get("authorization", "")
        if given[:7].lower() == "bearer " and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
            return True
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in nets)


class DatabaseCollector(Collector):
    """The figures read from the database for one scrape (``mailer.sending.health.counts``)."""

    def __init__(self, counts: sending_health.Counts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        c = self.counts
        messages = CounterMetricFamily(
            "mailer_messages", "Deliveries by state, every campaign.", labels=["state"]
        )
        for state, n in c.messages.items():
            messages.add_metric([state], n)
        yield messages
        yield CounterMetricFamily("mailer_bounces", "Bounces received and proved ours.", value=c.bounces)
        yield CounterMetricFamily(
            "mailer_complaints", "Complaints (spam reports) received.", value=c.complaints
        )
        yield CounterMetricFamily(
            "mailer_unsubscribes", "Unsubscribes, from every source.", value=c.unsubscribes
        )
        yield GaugeMetricFamily(
            "mailer_queue_depth", "Messages still to send of campaigns being sent.", value=c.queue_depth
        )
        yield GaugeMetricFamily("mailer_workers_alive", "Sending workers alive now.", value=c.workers_alive)


class Metrics:
    """The web app's metrics: this process's requests counter, and a scrape of everything."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # In multiprocess mode the counter writes to the shared folder and a scrape reads it there.
        self.own = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "mailer_http_requests",
            "Web requests answered, by route template and status.",
            ["route", "status"],
            registry=None if self.multiprocess else self.own,
        )
        self.nets = allowed_networks(settings)
        self.token = settings.metrics_token

    def scrape(self) -> bytes:
        """Prometheus's text: the database's figures now, and the web requests of every process."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(sending_health.counts(self.db, self.settings)))
        if self.multiprocess:
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(registry) + generate_latest(self.own)


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "")) or "(none)"


class Guard:
    """Counts requests by route template and status; 503 with Retry-After past ``limit`` at once."""

    def __init__(self, app: ASGIApp, metrics: Metrics, limit: int) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = limit
        self.busy = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.busy >= self.limit:
            self.metrics.requests.labels("(overload)", "503").inc()
            response = PlainTextResponse(
                "Busy: please try again in a few seconds.",
                status_code=503,
                headers={"Retry-After": RETRY_AFTER},
            )
            await response(scope, receive, send)
            return
        status = [500]

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        self.busy += 1
        try:
            await self.app(scope, receive, counted)
        finally:
            self.busy -= 1
            self.metrics.requests.labels(route_of(scope), str(status[0])).inc()


async def healthz(request: Request) -> Response:
    w = web(request)
    report = await run_in_threadpool(sending_health.health, w.db, w.settings)
    headers = {"Cache-Control": "no-store"}
    return JSONResponse(report.as_dict(), status_code=200 if report.ok else 503, headers=headers)


async def metrics(request: Request) -> Response:
    m: Metrics = request.app.state.metrics
    if not may_read_metrics(request, m.nets, m.token):
        return PlainTextResponse("Not found.", status_code=404)
    body = await run_in_threadpool(m.scrape)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
