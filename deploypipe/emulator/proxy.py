"""A stable per-service URL on 127.0.0.1: a TCP proxy that forwards to whichever instance is live.

Switching traffic sets a new backend port: new connections go to the new
instance at once. A connection already open to the old instance is closed as
soon as it is idle after an answer (nothing in flight for ``idle_s``), so a
kept-alive client reconnects to the new instance on its next request and an
answer in flight is never cut; ``wait_drained`` tells when the old instance
has no connections left and can be stopped (Render drains behind its HTTP
proxy in the same spirit).

Every request is reported to ``on_request`` with the instance and deploy that
answered it (``switch(port, instance=, deploy=)`` names them): a ``Sniffer``
reads each connection's bytes as they pass (``sniff.py``). When no instance
is live the proxy answers 503, when the instance refuses the connection 502,
and reports those requests too (without an instance).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from deploypipe.core.polling import poll
from deploypipe.emulator.sniff import Exchange, Sniffer, parse_request_head

__all__ = ["Served", "ServiceProxy"]

_HEAD_WAIT_S = 1.0  # how long the proxy waits for a request head it answers itself (502/503)


@dataclass(frozen=True)
class Served:
    """One request through the stable URL and who answered it (``instance``/``deploy`` empty: the proxy itself)."""

    exchange: Exchange
    instance: str
    deploy: str


@dataclass(eq=False)
class _Conn:
    backend: int
    client: asyncio.StreamWriter
    sniffer: Sniffer
    upstream: asyncio.StreamWriter | None = None
    last_activity: float = field(default_factory=time.monotonic)
    answered: bool = True  # the last bytes went backend -> client (or none went at all)
    client_gone: bool = False


class ServiceProxy:
    def __init__(self, port: int = 0, host: str = "127.0.0.1", idle_s: float = 0.05,
                 on_request: Callable[[Served], None] | None = None):
        self.host = host
        self.backend: int | None = None
        self.on_request = on_request
        self._names: dict[int, tuple[str, str]] = {}  # backend port -> (instance id, deploy id)
        self.idle_s = idle_s
        self._conns: set[_Conn] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._retirer: asyncio.Task | None = None
        self._requested_port = port
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="service-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def switch(self, backend: int, *, instance: str = "", deploy: str = "") -> None:
        """Send new connections to ``backend`` (the instance ``instance`` of ``deploy``); others close once idle."""
        self._names[backend] = (instance, deploy)
        self.backend = backend

    def _reporter(self, backend: int | None) -> Callable[[Exchange], None]:
        instance, deploy = self._names.get(backend, ("", "")) if backend is not None else ("", "")

        def report(exchange: Exchange) -> None:
            if self.on_request is not None:
                self.on_request(Served(exchange, instance, deploy))

        return report

    def wait_drained(self, backend: int, timeout_s: float) -> bool:
        """Block until no connection to ``backend`` is open (True) or ``timeout_s`` passed (False)."""
        def drained() -> bool | None:
            return True if not any(c.backend == backend for c in list(self._conns)) else None

        return bool(poll(drained, timeout_s=timeout_s, interval_s=0.01))

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            try:
                self._server = await asyncio.start_server(self._handle, self.host, self._requested_port)
            except OSError:  # the remembered port is taken: take any
                self._server = await asyncio.start_server(self._handle, self.host, 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._retirer = self._loop.create_task(self._retire_idle())
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _retire_idle(self) -> None:
        while True:
            await asyncio.sleep(self.idle_s / 2)
            now = time.monotonic()
            for conn in list(self._conns):
                if conn.backend != self.backend and conn.answered and now - conn.last_activity >= self.idle_s:
                    self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        for writer in (conn.client, conn.upstream):
            if writer is not None and not writer.is_closing():
                writer.close()

    async def _pipe(self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    downstream: bool) -> None:
        see = conn.sniffer.server if downstream else conn.sniffer.client
        try:
            while data := await reader.read(65536):
                conn.last_activity, conn.answered = time.monotonic(), downstream
                see(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if downstream:
                conn.sniffer.server_closed(client_gone=conn.client_gone)
            else:
                conn.client_gone = True
            self._close(conn)

    async def _answer_myself(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                             answer: bytes) -> None:
        """Answer ``status`` without an instance, and report the request when its head arrives in time."""
        started, t0 = time.time(), time.monotonic()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_WAIT_S)
            method, path, host = parse_request_head(head[:-4])
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            method = ""
        try:
            writer.write(answer)
            await writer.drain()
            writer.close()
        except ConnectionError:
            pass
        if method:
            self._reporter(None)(Exchange(started=started, method=method, path=path, host=host, status=status,
                                          latency_ms=(time.monotonic() - t0) * 1000))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = self.backend
        if backend is None:
            await self._answer_myself(reader, writer, 503, b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 18"
                                      b"\r\nconnection: close\r\n\r\nno live instance\r\n")
            return
        conn = _Conn(backend=backend, client=writer, sniffer=Sniffer(self._reporter(backend)))
        self._conns.add(conn)  # before connecting: the old instance must not be stopped under this connection
        try:
            up_reader, conn.upstream = await asyncio.open_connection("127.0.0.1", backend)
        except OSError:
            self._conns.discard(conn)
            await self._answer_myself(reader, writer, 502, b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n"
                                      b"connection: close\r\n\r\n")
            return
        await asyncio.gather(self._pipe(conn, reader, conn.upstream, False), self._pipe(conn, up_reader, writer, True))

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            if self._retirer is not None:
                self._retirer.cancel()
            for conn in list(self._conns):
                self._close(conn)

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
