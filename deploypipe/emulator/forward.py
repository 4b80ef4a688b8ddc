"""One request through the stable URL, over h11: sent on to an instance, its answer streamed back to the client.

A ``Peer`` is one side of a connection held by an h11 state machine (h11
frames every message: ``Content-Length``, chunked, until close; no body for
HEAD, 1xx, 204 and 304). ``forward`` sends a client's request to an instance
on a fresh connection (``Connection: close``) while the rest of the request
body follows, and streams the answer back as it arrives, re-framed for the
client's connection so it stays kept alive. ``finish(status)`` is called once,
right before the client's last bytes are written, so whoever waits for an
answer finds it recorded: the instance's status, or 502 when the instance
closed without a whole answer (the client then gets a 502 when nothing of the
answer was sent yet, else its connection is closed). Hop-by-hop headers
(``Connection`` and the ones it names, ``Keep-Alive``, ``TE``, ``Trailer``,
``Upgrade``) stay on their side, so no protocol switch passes and trailers
are dropped. When the client goes away first, ``PeerGone`` is raised and
nothing is reported.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import h11

__all__ = ["Exchange", "Peer", "PeerGone", "answer", "describe", "forward"]

_READ = 65536
_MAX_HEAD = 64 * 1024
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"})
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Exchange:
    """One request and its answer; ``started`` is wall-clock epoch seconds when the request head arrived."""

    started: float
    method: str
    path: str
    host: str
    status: int
    latency_ms: float


class PeerGone(Exception):
    """The peer closed or reset its connection while it was written to."""


class Peer:
    """Our side of an HTTP/1.1 connection (``serving``: the server's side): bytes read into h11 events, events sent
    as bytes (buffered until ``flush``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, serving: bool):
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.SERVER if serving else h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self._out = bytearray()

    async def next_event(self, before_wait: Callable[[], Awaitable[None]] | None = None) -> object:
        """The next h11 event; ``before_wait()`` runs whenever more bytes must be read first."""
        while (event := self.h11.next_event()) is h11.NEED_DATA:
            if before_wait is not None:
                await before_wait()
            try:
                data = await self.reader.read(_READ)
            except ConnectionError:
                data = b""
            self.h11.receive_data(data)
        return event

    def send(self, event: h11.Event) -> None:
        self._out += self.h11.send(event) or b""

    async def flush(self) -> None:
        if not self._out:
            return
        data, self._out = bytes(self._out), bytearray()
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError as exc:
            raise PeerGone(str(exc)) from exc

    def skip_arrived_body(self) -> None:
        """Read past what already arrived of the request's body (all of it for a request without one)."""
        while self.h11.their_state is h11.SEND_BODY and self.h11.next_event() not in (h11.NEED_DATA, h11.PAUSED):
            pass

    def reusable(self) -> bool:
        """Both messages of the exchange are complete and neither side asked to close."""
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE


def describe(request: h11.Request) -> tuple[str, str, str]:
    """(method, path without the query, host) of a request."""
    target = request.target.decode("latin-1")
    path = urlsplit(target).path if "://" in target else target.split("?", 1)[0]
    host = next((value for name, value in request.headers if name == b"host"), b"")
    return request.method.decode("ascii").upper(), path or "/", host.decode("latin-1")


def _end_to_end(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    pairs = list(headers)
    named = {token.strip() for name, value in pairs if name == b"connection" for token in value.lower().split(b",")}
    return [(name, value) for name, value in pairs if name not in _HOP_BY_HOP and name not in named]


def _onward(request: h11.Request, client: Peer, upstream: Peer) -> h11.Request:
    """The request as the instance gets it: origin-form target, end-to-end headers, ``X-Forwarded-For``."""
    target = request.target
    if b"://" in target:
        parts = urlsplit(target.decode("latin-1"))
        target = (parts.path or "/").encode("latin-1") + (b"?" + parts.query.encode("latin-1") if parts.query else b"")
    headers = _end_to_end(request.headers)
    if not any(name == b"host" for name, _ in headers):
        host, port = upstream.writer.get_extra_info("peername")[:2]
        headers.append((b"host", f"{host}:{port}".encode()))
    peer = client.writer.get_extra_info("peername")
    seen = [value for name, value in headers if name == b"x-forwarded-for"]
    headers = [(name, value) for name, value in headers if name != b"x-forwarded-for"]
    if peer:
        seen.append(str(peer[0]).encode())
    headers += [(b"x-forwarded-for", b", ".join(seen))] if seen else []
    return h11.Request(method=request.method, target=target, headers=[*headers, (b"connection", b"close")])


async def _send_body(client: Peer, upstream: Peer, request: h11.Request) -> bool:
    """Send the request and its body on; False when the client went away before it ended."""
    try:
        upstream.send(_onward(request, client, upstream))
        await upstream.flush()
        while True:
            event = await client.next_event()
            if isinstance(event, h11.Data):
                upstream.send(h11.Data(data=event.data))
            elif isinstance(event, h11.EndOfMessage):
                upstream.send(h11.EndOfMessage())
                await upstream.flush()
                return True
            else:
                raise h11.RemoteProtocolError("the client closed before its request ended")
            await upstream.flush()
    except PeerGone:  # the instance stopped reading: its answer, if any, still comes
        return True
    except h11.RemoteProtocolError:
        upstream.writer.close()  # the instance sees the request end unfinished
        return False


async def answer(client: Peer, status: int, text: bytes, finish: Callable[[int], None]) -> None:
    """Answer the proxy's own ``status`` with a short plain-text body."""
    finish(status)
    client.send(h11.Response(status_code=status, headers=[
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode())]))
    client.send(h11.Data(data=text))
    client.send(h11.EndOfMessage())
    await client.flush()


async def forward(client: Peer, request: h11.Request, upstream: Peer, finish: Callable[[int], None]) -> None:
    """Send ``request`` (and the rest of its body) to ``upstream``; stream the answer back to ``client``."""
    body = asyncio.create_task(_send_body(client, upstream, request))
    answered, status = False, 502
    try:
        while True:
            event = await upstream.next_event(client.flush)
            if isinstance(event, h11.InformationalResponse):
                client.send(h11.InformationalResponse(status_code=event.status_code, reason=event.reason,
                                                      headers=_end_to_end(event.headers)))
            elif isinstance(event, h11.Response):
                answered, status = True, event.status_code
                client.send(h11.Response(status_code=status, reason=event.reason, headers=_end_to_end(event.headers)))
            elif isinstance(event, h11.Data):
                client.send(h11.Data(data=event.data))
            elif isinstance(event, h11.EndOfMessage):
                client.send(h11.EndOfMessage())
                finish(status)
                await client.flush()
                return
            else:
                raise h11.RemoteProtocolError("the instance closed the connection before answering")
    except h11.RemoteProtocolError:
        if body.done() and not body.result():
            raise PeerGone("the client closed before its request ended") from None
        if answered:  # part of the answer is out: the client's connection ends unfinished
            finish(502)
        else:
            await answer(client, 502, b"bad gateway: the instance closed the connection\n", finish)
    finally:
        body.cancel()
