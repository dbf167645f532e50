"""``mailer serve`` as a subprocess, and the web app behind a trusted proxy, for the serving tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from support.browser import free_port


@contextmanager
def mailer_serve(env: Mapping[str, str], *args: str, log: Path, timeout: float = 60.0) -> Iterator[str]:
    """``mailer serve ARGS`` on a free port until the block ends (then SIGTERM, as a service
    manager stops it); yields its base URL once /healthz answers. Its output goes to ``log``."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailer", "serve", "--port", str(port), *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    httpx.get(f"{base}/healthz", timeout=2)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "mailer serve did not answer:\n" + log.read_text()
                    time.sleep(0.2)
            yield base
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def behind_proxy(app: ASGIApp) -> Iterator[str]:
    """``app`` served as ``mailer serve --proxy`` serves it: X-Forwarded-For from 127.0.0.1 is
    believed, so a request can come "from" any address."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)
