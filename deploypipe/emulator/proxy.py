"""A stable per-service URL on 127.0.0.1: an HTTP/1.1 reverse proxy that sends each request to the live instance.

The proxy reads requests with h11 (``forward.py``) and chooses the instance
for every request when its head arrives, the way Render's proxy routes, so a
kept-alive client connection is never pinned to one instance: once
``switch(port, instance=, deploy=)`` has returned, no request reaches the old
instance, and requests already sent to it finish there. ``wait_drained``
tells when an instance has no request in flight any more and can be stopped.

Every request is reported to ``on_request`` with the instance and deploy that
answered it, right before its answer's last bytes go out. When no instance is
live the proxy answers 503, when the instance refuses the connection 502
(both reported without an instance), and 502 when the instance closes without
a whole answer (reported with it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import h11

from deploypipe.emulator.forward import Exchange, Peer, PeerGone, answer, describe, forward

__all__ = ["Exchange", "Served", "ServiceProxy"]


@dataclass(frozen=True)
class Served:
    """One request through the stable URL and who answered it (``instance``/``deploy`` empty: the proxy itself)."""

    exchange: Exchange
    instance: str
    deploy: str


@dataclass(frozen=True)
class _Route:
    port: int
    instance: str
    deploy: str


class ServiceProxy:
    def __init__(self, port: int = 0, host: str = "127.0.0.1", on_request: Callable[[Served], None] | None = None):
        self.host = host
        self.backend: int | None = None
        self.on_request = on_request
        self._names: dict[int, tuple[str, str]] = {}  # backend port -> (instance id, deploy id)
        self._in_flight: Counter[int] = Counter()  # backend port -> requests sent to it and not answered yet
        self._routing = threading.Condition()  # guards backend, _names, _in_flight; notified when a request ends
        self._tasks: set[asyncio.Task] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._requested_port = port
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="service-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def switch(self, backend: int, *, instance: str = "", deploy: str = "") -> None:
        """From now on send every request to ``backend`` (the instance ``instance`` of ``deploy``)."""
        with self._routing:
            self._names[backend] = (instance, deploy)
            self.backend = backend

    def wait_drained(self, backend: int, timeout_s: float) -> bool:
        """Block until no request sent to ``backend`` is in flight (True) or ``timeout_s`` passed (False)."""
        with self._routing:
            return self._routing.wait_for(lambda: not self._in_flight[backend], timeout_s)

    def _route(self) -> _Route | None:
        """The live instance for a request that just arrived, counted in flight until ``_release``."""
        with self._routing:
            if self.backend is None:
                return None
            self._in_flight[self.backend] += 1
            return _Route(self.backend, *self._names[self.backend])

    def _release(self, backend: int) -> None:
        with self._routing:
            self._in_flight[backend] -= 1
            if not self._in_flight[backend]:
                del self._in_flight[backend]
                self._routing.notify_all()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            try:
                self._server = await asyncio.start_server(self._serve, self.host, self._requested_port)
            except OSError:  # the remembered port is taken: take any
                self._server = await asyncio.start_server(self._serve, self.host, 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: its requests one after the other, each routed on its own."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        client = Peer(reader, writer, serving=True)
        try:
            while isinstance(request := await client.next_event(), h11.Request):
                await self._exchange(client, request)
                if not client.reusable():
                    break
                client.h11.start_next_cycle()
        except h11.RemoteProtocolError as exc:  # not HTTP/1.x: say so when an answer can still go out
            if client.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await answer(client, exc.error_status_hint, b"bad request\n", lambda status: None)
        except (PeerGone, asyncio.CancelledError):  # the client left, or close() ends the connection
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _exchange(self, client: Peer, request: h11.Request) -> None:
        started, t0 = time.time(), time.monotonic()
        method, path, host = describe(request)

        def finish_as(route: _Route | None) -> Callable[[int], None]:
            def finish(status: int) -> None:
                if self.on_request is not None:
                    self.on_request(Served(Exchange(started, method, path, host, status,
                                                    (time.monotonic() - t0) * 1000),
                                           route.instance if route else "", route.deploy if route else ""))
            return finish

        route = self._route()
        if route is None:
            client.skip_arrived_body()
            await answer(client, 503, b"no live instance\n", finish_as(None))
            return
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", route.port)
            except OSError:
                client.skip_arrived_body()
                await answer(client, 502, b"bad gateway: the instance refused the connection\n", finish_as(None))
                return
            try:
                await forward(client, request, Peer(up_reader, up_writer, serving=False), finish_as(route))
            finally:
                up_writer.close()
        finally:
            self._release(route.port)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
