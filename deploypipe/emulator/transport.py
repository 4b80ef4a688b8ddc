"""A synchronous httpx transport that runs an ASGI app in-process (on its own event-loop thread).

httpx's ASGITransport is async-only; the Render client is synchronous, so this
bridges the two. Exceptions the app raises on purpose (an injected dropped
connection is ``httpx.RemoteProtocolError``) reach the client as they would
from a real network.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

__all__ = ["InProcessTransport"]


class InProcessTransport(httpx.BaseTransport):
    def __init__(self, app: Any):
        self._inner = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asgi-in-process", daemon=True)
        self._thread.start()

    async def _call(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content,
                              extensions=response.extensions, request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        try:
            return asyncio.run_coroutine_threadsafe(self._call(request), self._loop).result()
        except httpx.TransportError as exc:  # an injected network fault: say which request it hit, as httpx does
            exc.request = request
            raise

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
