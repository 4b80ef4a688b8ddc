"""Render's rate limits, counted per fixed one-minute window on the emulator's (injectable) clock.

Buckets (api-docs.render.com/reference/rate-limiting): triggering a deploy and
updating a service share 10/minute *per service*; other GETs 400/minute and
other writes 30/minute per API key. ``Ratelimit-Reset`` is the number of
seconds until the window resets (Render's example value reads that way).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Decision", "RateLimiter"]

_PER_SERVICE = re.compile(r"^(?:POST /services/([^/]+)/deploys|PATCH /services/([^/]+))$")


@dataclass(frozen=True)
class Decision:
    """The outcome for one request and the headers every answer carries."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        headers = {"Ratelimit-Limit": str(self.limit), "Ratelimit-Remaining": str(self.remaining),
                   "Ratelimit-Reset": str(self.reset_s)}
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_s)
        return headers


@dataclass
class RateLimiter:
    clock: Callable[[], float]
    deploy_per_service: int = 10
    get_per_key: int = 400
    write_per_key: int = 30
    _counts: dict[tuple[str, int], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def bucket(self, key_id: str, method: str, path: str) -> tuple[str, int]:
        """(bucket name, limit per minute) for a request; ``path`` is without the ``/v1`` prefix."""
        found = _PER_SERVICE.match(f"{method} {path.rstrip('/')}")
        if found:
            return f"service:{found.group(1) or found.group(2)}", self.deploy_per_service
        if method == "GET":
            return f"get:{key_id}", self.get_per_key
        return f"write:{key_id}", self.write_per_key

    def check(self, key_id: str, method: str, path: str, *, consume: bool = True) -> Decision:
        """Count this request (unless ``consume`` is False) and say whether it is within its bucket's limit."""
        name, limit = self.bucket(key_id, method, path)
        now = self.clock()
        window = int(now // 60)
        reset_s = max(1, math.ceil(60 - now % 60))
        with self._lock:
            for stale in [k for k in self._counts if k[1] < window]:
                del self._counts[stale]
            used = self._counts.get((name, window), 0)
            allowed = used < limit
            if allowed and consume:
                used += 1
                self._counts[(name, window)] = used
        return Decision(allowed=allowed, limit=limit, remaining=max(0, limit - used), reset_s=reset_s)
