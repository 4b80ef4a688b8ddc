"""HTTP/1.x exchanges read from a proxied connection's bytes as they pass: method, path, host, status, latency.

The stable per-service URL forwards raw bytes; a ``Sniffer`` per connection
is fed a copy of each direction and finds message boundaries the way an
HTTP/1.1 peer does (heads, then bodies by ``Content-Length``, chunked
encoding, or until the server closes; no body for HEAD, 1xx, 204 and 304).
Requests and answers pair up in order (no pipelining is needed for that: a
queue holds requests still waiting). An exchange is reported when its answer
is complete; a request the server closed the connection on without an answer
is reported as 502, as Render's proxy would answer it. A protocol switch
(101) or anything unparseable stops the sniffing, never the forwarding.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

__all__ = ["Exchange", "Sniffer", "parse_request_head"]

_MAX_HEAD = 64 * 1024
BodyRule = tuple[str, int]  # ("length", n) | ("chunked", 0) | ("close", 0) | ("opaque", 0)


@dataclass(frozen=True)
class Exchange:
    """One request and its answer; ``started`` is wall-clock epoch seconds when the request head arrived."""

    started: float
    method: str
    path: str
    host: str
    status: int
    latency_ms: float


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return lines[0], fields


def parse_request_head(head: bytes) -> tuple[str, str, str]:
    """(method, path without the query, host) of a request head; ValueError when it is not one."""
    start, fields = _headers(head)
    method, target, _version = start.split(" ", 2)
    if "://" in target:  # absolute form
        target = urlsplit(target).path or "/"
    return method.upper(), target.split("?", 1)[0] or "/", fields.get("host", "")


def _body_of(fields: dict[str, str]) -> BodyRule:
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return "chunked", 0
    if "content-length" in fields:
        return "length", int(fields["content-length"])
    return "close", 0


class _Framer:
    """Message boundaries in one direction: ``on_head(head) -> body rule`` for each head, ``on_end()`` per message."""

    def __init__(self, on_head: Callable[[bytes], BodyRule], on_end: Callable[[], None]):
        self.on_head, self.on_end = on_head, on_end
        self.buf = bytearray()
        self.mode, self.left = "head", 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        while self.buf and self.mode != "opaque":
            if not self._step():
                return

    def _line(self) -> bytes | None:
        end = self.buf.find(b"\r\n")
        if end < 0:
            return None
        line = bytes(self.buf[:end])
        del self.buf[:end + 2]
        return line

    def _step(self) -> bool:
        """Consume what the current mode can; False when more bytes are needed."""
        if self.mode == "head":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > _MAX_HEAD:
                    self.mode = "opaque"
                return False
            head = bytes(self.buf[:end])
            del self.buf[:end + 4]
            self._begin(self.on_head(head))
        elif self.mode in ("length", "chunk_data"):
            taken = min(self.left, len(self.buf))
            del self.buf[:taken]
            self.left -= taken
            if self.left:
                return False
            if self.mode == "length":
                self._done()
            else:
                self.mode = "chunk_size"
        elif self.mode == "chunk_size":
            line = self._line()
            if line is None:
                return False
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            self.mode, self.left = ("chunk_data", size + 2) if size else ("trailer", 0)
        elif self.mode == "trailer":
            line = self._line()
            if line is None:
                return False
            if not line:
                self._done()
        else:  # "close": everything until the connection closes is body
            self.buf.clear()
            return False
        return True

    def _begin(self, rule: BodyRule) -> None:
        kind, size = rule
        if kind == "length" and size == 0:
            self._done()
        elif kind == "chunked":
            self.mode = "chunk_size"
        else:
            self.mode, self.left = kind, size

    def _done(self) -> None:
        self.mode, self.left = "head", 0
        self.on_end()


@dataclass
class _Pending:
    started: float
    t0: float
    method: str
    path: str
    host: str


class Sniffer:
    """Feed ``client()``/``server()`` with copies of each direction; ``report(Exchange)`` gets each exchange."""

    def __init__(self, report: Callable[[Exchange], None], *, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic):
        self.report, self.wall, self.mono = report, wall, mono
        self.pending: deque[_Pending] = deque()
        self.status: int | None = None
        self.requests = _Framer(self._request_head, lambda: None)
        self.answers = _Framer(self._answer_head, self._answer_end)
        self.broken = False

    def client(self, data: bytes) -> None:
        self._safely(self.requests.feed, data)

    def server(self, data: bytes) -> None:
        self._safely(self.answers.feed, data)

    def server_closed(self, *, client_gone: bool) -> None:
        """The server closed: an answer read until close is complete; requests left unanswered become 502."""
        if self.broken:
            return
        if self.answers.mode == "close" and self.status is not None:
            self._answer_end()
        while self.pending and not client_gone:
            self._emit(self.pending.popleft(), 502)
        self.pending.clear()

    def _safely(self, feed: Callable[[bytes], None], data: bytes) -> None:
        if self.broken:
            return
        try:
            feed(data)
        except (ValueError, IndexError):  # not HTTP/1.x as expected: stop looking, keep forwarding
            self.broken = True

    def _request_head(self, head: bytes) -> BodyRule:
        method, path, host = parse_request_head(head)
        self.pending.append(_Pending(self.wall(), self.mono(), method, path, host))
        rule = _body_of(_headers(head)[1])
        return ("length", 0) if rule[0] == "close" else rule  # a request without a length has no body

    def _answer_head(self, head: bytes) -> BodyRule:
        start, fields = _headers(head)
        status = int(start.split(" ", 2)[1])
        if not self.pending:
            raise ValueError("an answer without a request")
        if status == 101:  # switching protocols: report it, then stop looking
            self._emit(self.pending.popleft(), status)
            self.requests.mode = "opaque"
            return "opaque", 0
        if 100 <= status < 200:
            return "length", 0  # informational: the final answer follows
        self.status = status
        if self.pending[0].method == "HEAD" or status in (204, 304):
            return "length", 0
        return _body_of(fields)

    def _answer_end(self) -> None:
        if self.status is None:  # the end of an informational answer
            return
        status, self.status = self.status, None
        self._emit(self.pending.popleft(), status)

    def _emit(self, request: _Pending, status: int) -> None:
        self.report(Exchange(started=request.started, method=request.method, path=request.path, host=request.host,
                             status=status, latency_ms=(self.mono() - request.t0) * 1000))
