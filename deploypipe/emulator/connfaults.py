"""Connection-level faults: close a connection without an answer, or stall an answer past the client's timeout.

The API handler marks the ASGI scope (``mark_drop`` / ``mark_stall``) and
``with_connection_faults`` (wrapped around the whole app) acts on it. Over
uvicorn it aborts the TCP connection (found through uvicorn's
``RequestResponseCycle.transport``, the object behind ``send``), so the
client sees "server disconnected without sending a response". In-process
(httpx's ASGI transport, no socket) it raises the httpx error a client would
see on a real network: ``RemoteProtocolError`` for a drop, ``ReadTimeout`` for
a stall. A stall over loopback waits ``stall_s`` (or until the server closes)
and then drops the connection rather than answering late.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, MutableMapping

import httpx

__all__ = ["mark_drop", "mark_stall", "with_connection_faults"]

_DROP = "deploypipe.emulator.drop"
_STALL = "deploypipe.emulator.stall_s"


def mark_drop(scope: MutableMapping[str, Any]) -> None:
    """Close this request's connection without sending the answer."""
    scope[_DROP] = True


def mark_stall(scope: MutableMapping[str, Any], stall_s: float) -> None:
    """Hold this request's answer for ``stall_s`` seconds, then close the connection without it."""
    scope[_STALL] = stall_s


def _socket_of(send: Any) -> tuple[Any, Any] | tuple[None, None]:
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    return (cycle, transport) if transport is not None else (None, None)


async def with_connection_faults(app: Any, scope: dict[str, Any], receive: Any, send: Any,
                                 closing: threading.Event) -> None:
    """Run the ASGI ``app`` and apply the marks it left; ``closing`` cuts stalls short when the server stops."""
    if scope["type"] != "http":
        await app(scope, receive, send)
        return

    async def held(message: dict[str, Any]) -> None:
        if not (scope.get(_DROP) or _STALL in scope):
            await send(message)

    await app(scope, receive, held)
    if not (scope.get(_DROP) or _STALL in scope):
        return
    cycle, transport = _socket_of(send)
    if transport is None:  # in-process: no socket to close, so raise what httpx raises for one
        if _STALL in scope:
            raise httpx.ReadTimeout("injected fault: the request was accepted but no answer came in time")
        raise httpx.RemoteProtocolError("injected fault: server disconnected without sending a response")
    if _STALL in scope:
        deadline = time.monotonic() + float(scope[_STALL])
        while time.monotonic() < deadline and not closing.is_set():
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    transport.abort()
    assert cycle is not None  # a transport is only found on a cycle
    cycle.disconnected = True  # uvicorn must not try to send its own 500 on the aborted socket
