"""A TCP proxy between mailer and its database server that can fail on demand.

    with DbProxy(("127.0.0.1", 5432)) as proxy:
        url = proxy.url_for("postgresql+psycopg://postgres@127.0.0.1:5432/db")
        ...
        proxy.drop()          # every connection through it is cut (the server "restarts")
        proxy.refuse(15.0)    # cut everything and refuse new connections for 15 s

Each connection is two threads copying bytes. ``refuse`` closes the listening socket, so a client
gets "connection refused" at once, as from a server that is down, and listens again after the time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

from sqlalchemy import make_url


class DbProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = False
        self.refusing_until = 0.0
        self.connections = 0  # accepted so far

    # -- life -----------------------------------------------------------------------------------
    def __enter__(self) -> DbProxy:
        self._listen(0)
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._closed = True
        self._close_listener()
        self.drop()

    def url_for(self, url: str, application_name: str = "") -> str:
        """``url`` pointed at this proxy (optionally naming the client to the server)."""
        parsed = make_url(url).set(host="127.0.0.1", port=self.port)
        if application_name:
            parsed = parsed.update_query_dict({"application_name": application_name})
        return parsed.render_as_string(hide_password=False)

    # -- faults ---------------------------------------------------------------------------------
    def drop(self) -> None:
        """Cut every connection through the proxy."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def refuse(self, seconds: float) -> None:
        """Cut every connection and refuse new ones for ``seconds`` (then accept again)."""
        self.refusing_until = time.monotonic() + seconds
        self._close_listener()
        self.drop()

    @property
    def refusing(self) -> bool:
        return time.monotonic() < self.refusing_until

    # -- inside ---------------------------------------------------------------------------------
    def _listen(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.settimeout(0.1)
        self.port = sock.getsockname()[1]
        self._listener = sock

    def _close_listener(self) -> None:
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            if self._listener is None:
                if self.refusing:
                    time.sleep(0.05)
                    continue
                self._listen(self.port)
            listener = self._listener
            assert listener is not None
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by refuse()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._pairs.append((client, server))
                self.connections += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, dest: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                dest.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
