"""Steady traffic for the local default, so a release is judged on real requests even on a bare machine.

A background thread sends a seeded, weighted mix of requests (the pipeline's
``local.traffic.requests``: for the sample app GET /, GET /notes, POST /notes
and its chronically flaky GET /flaky) to a service's stable URL on 127.0.0.1
at ``rate_per_s``. It is bounded: it stops
by itself after ``max_s`` seconds or ``max_requests`` requests, and it only
ever talks to loopback.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import httpx
import structlog

from deploypipe.errors import UsageError
from deploypipe.spec.model import TrafficSpec

__all__ = ["TrafficGenerator"]

log = structlog.get_logger("deploypipe.local")


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TrafficGenerator:
    """Sends ``spec``'s mix to ``base_url`` from a daemon thread until stopped or its bounds are reached."""

    def __init__(self, base_url: str, spec: TrafficSpec, *, seed: int = 0):
        if not _loopback(base_url):
            raise UsageError(f"local.traffic: {base_url} is not on loopback; the local default only sends traffic "
                             "to 127.0.0.1")
        self.base_url = base_url.rstrip("/")
        self.spec = spec
        self.random = random.Random(seed)
        self.sent: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-traffic", daemon=True)

    def start(self) -> TrafficGenerator:
        self._thread.start()
        log.info("local_traffic_started", url=self.base_url, rate_per_s=self.spec.rate_per_s,
                 max_s=self.spec.max_s, max_requests=self.spec.max_requests)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        log.info("local_traffic_stopped", sent=sum(self.sent.values()), by_status=dict(self.sent))

    def _run(self) -> None:
        requests = self.spec.requests
        weights = [r.weight for r in requests]
        interval = 1.0 / self.spec.rate_per_s
        ends = time.monotonic() + self.spec.max_s
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            while not self._stop.is_set() and time.monotonic() < ends \
                    and sum(self.sent.values()) < self.spec.max_requests:
                chosen = self.random.choices(requests, weights)[0]
                try:
                    answer = http.request(chosen.method, self.base_url + chosen.path, json=chosen.json)
                    self.sent[str(answer.status_code)] += 1
                except httpx.HTTPError as exc:
                    self.sent[type(exc).__name__] += 1
                self._stop.wait(self.random.expovariate(1.0 / interval))
