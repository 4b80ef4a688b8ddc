"""What the local Render observed, kept bounded: proxied requests and log lines, as Render's metrics and logs see them.

Every request through a service's stable URL becomes a ``RequestRec`` (time,
method, path, status, latency, instance, deploy) and a ``request`` log line;
an instance's stdout/stderr become ``app`` log lines; build and pre-deploy
output ``build`` log lines; a one-off job's output ``app`` lines of the job.
Labels are Render's log label names only (``resource``, ``instance``,
``type``, ``level``, ``method``, ``path``, ``statusCode``, ``host``); the
response time is in the request line's text (``responseTimeMS=``), not a label.

Both stores are ring buffers (``max_requests`` / ``max_logs`` entries) that
also forget entries older than ``retention_s``, so a long-running local
default stays bounded. ``ingest_delay_s`` hides entries younger than that from
queries, the way Render's metrics and logs arrive late. Log timestamps are
whole microseconds, strictly increasing (a line recorded after a later one is
stamped one microsecond after it), so a page boundary never splits two lines
with the same time. A request line is stamped when the request arrived.

With a ``store`` (a ``TelemetryStore`` such as ``telemetry_file.TelemetryFile``:
the local Render keeps ``telemetry.jsonl`` in its data directory) both stores
outlive the process: every entry goes to the store as it is recorded, and a new
``Telemetry`` starts with what the store holds, within the same bounds, so a
release is judged against the traffic the previous run of the local Render saw.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Callable, Generic, Iterable, Iterator, Protocol, TypeVar

import structlog

__all__ = ["LogRec", "RequestRec", "Telemetry", "TelemetryStore", "iso_us", "level_of"]

log = structlog.get_logger("deploypipe.emulator")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEVEL = re.compile(r'(?:^|[\s\[{,"])(?:level"?\s*[=:]\s*"?)?(DEBUG|INFO|WARN(?:ING)?|ERROR|CRITICAL|FATAL)\b',
                    re.IGNORECASE)
_LEVELS = {"debug": "debug", "info": "info", "warn": "warning", "warning": "warning", "error": "error",
           "critical": "error", "fatal": "error"}


def iso_us(us: int) -> str:
    """An ISO 8601 UTC timestamp with microseconds from whole microseconds since the epoch."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def level_of(line: str) -> str:
    """A line's level, Render-style best effort: a level word near the start (``ERROR``, ``level=warn``, JSON
    ``"level": "error"``), a Python traceback counts as an error; otherwise ``info``."""
    head = line[:200]
    found = _LEVEL.search(head)
    if found:
        return _LEVELS[found.group(1).lower()]
    if head.startswith("Traceback (most recent call last)") or re.match(r"^[A-Za-z_.]*(Error|Exception)\b", head):
        return "error"
    return "info"


@dataclass(frozen=True)
class RequestRec:
    """One request through a service's stable URL; ``at`` is when it arrived (epoch seconds)."""

    at: float
    resource: str
    method: str
    path: str
    status: int
    latency_ms: float
    host: str = ""
    instance: str = ""
    deploy: str = ""


@dataclass(frozen=True)
class LogRec:
    """One log line; ``labels`` in Render's order and names, ``resource`` first."""

    id: str
    at_us: int
    message: str
    labels: tuple[tuple[str, str], ...]

    def label(self, name: str) -> str | None:
        return next((value for key, value in self.labels if key == name), None)


class TelemetryStore(Protocol):
    """Where a ``Telemetry`` keeps its entries across runs (``telemetry_file.TelemetryFile``)."""

    lines: int  # entries written since the last rewrite

    def read(self) -> Iterator[RequestRec | LogRec]: ...

    def append(self, rec: RequestRec | LogRec) -> None: ...

    def rewrite(self, records: Iterable[RequestRec | LogRec]) -> None: ...


T = TypeVar("T")


class _Ring(Generic[T]):
    """A deque bounded by count and by age (``age_of`` gives an entry's time in epoch seconds)."""

    def __init__(self, maxlen: int, retention_s: float, age_of: Callable[[T], float]):
        self.items: deque[T] = deque(maxlen=maxlen)
        self.retention_s = retention_s
        self.age_of = age_of

    def add(self, item: T, now: float) -> None:
        self.items.append(item)
        self.expire(now)

    def expire(self, now: float) -> None:
        while self.items and self.age_of(self.items[0]) < now - self.retention_s:
            self.items.popleft()


class Telemetry:
    """The request and log stores of one local Render (thread-safe; ``clock`` gives epoch seconds), kept in
    ``store`` across runs when one is given."""

    def __init__(self, clock: Callable[[], float] = time.time, *, max_requests: int = 50_000,
                 max_logs: int = 50_000, retention_s: float = 6 * 3600.0, ingest_delay_s: float = 0.0,
                 store: TelemetryStore | None = None):
        self.clock = clock
        self.ingest_delay_s = ingest_delay_s
        self._lock = threading.Lock()
        self._requests: _Ring[RequestRec] = _Ring(max_requests, retention_s, lambda r: r.at)
        self._logs: _Ring[LogRec] = _Ring(max_logs, retention_s, lambda r: r.at_us / 1e6)
        self._last_us = 0
        self._ids = itertools.count(1)
        self._store = store
        self._store_max_lines = 2 * (max_requests + max_logs)
        if store is not None:
            self._restore(store)

    def _restore(self, store: TelemetryStore) -> None:
        """Start with what ``store`` holds (count and age bounds applied), then rewrite it with just that."""
        last_id = 0
        for rec in store.read():
            if isinstance(rec, RequestRec):
                self._requests.items.append(rec)
            else:
                self._logs.items.append(rec)
                self._last_us = max(self._last_us, rec.at_us)
                number = rec.id.rpartition("-")[2]
                last_id = max(last_id, int(number) if number.isdigit() else 0)
        now = self.clock()
        self._requests.expire(now)
        self._logs.expire(now)
        self._ids = itertools.count(last_id + 1)
        store.rewrite(self._kept())

    def _kept(self) -> list[RequestRec | LogRec]:
        return [*self._requests.items, *self._logs.items]

    def _persist(self, rec: RequestRec | LogRec) -> None:
        """Append ``rec`` to the store (under the lock); rewrite it once it holds twice what the stores keep.

        A store that fails (disk full, permissions) is dropped with one warning: serving and recording go on, only
        in memory."""
        if self._store is None:
            return
        try:
            self._store.append(rec)
            if self._store.lines >= self._store_max_lines:
                self._store.rewrite(self._kept())
        except OSError as exc:
            self._store = None
            log.warning("telemetry_not_kept", error=f"{type(exc).__name__}: {exc}",
                        hint="requests and logs are kept in memory only until the local Render stops")

    # -- recording ---------------------------------------------------------------------------------
    def request(self, rec: RequestRec) -> None:
        """Record a proxied request and its ``request`` log line."""
        labels = [("resource", rec.resource), ("instance", rec.instance), ("type", "request"),
                  ("method", rec.method), ("path", rec.path), ("statusCode", str(rec.status)), ("host", rec.host)]
        text = f"[{rec.method}]{rec.status} {rec.host}{rec.path} responseTimeMS={round(rec.latency_ms)}"
        with self._lock:
            self._requests.add(rec, self.clock())
            self._persist(rec)
        self._log(rec.resource, text, [(k, v) for k, v in labels if v], at=rec.at)

    def log(self, resource: str, message: str, *, type: str, instance: str | None = None,
            level: str | None = None, at: float | None = None) -> None:
        """Record one line of ``type`` app or build (``level`` defaults to ``level_of(message)``)."""
        labels = [("resource", resource), *([("instance", instance)] if instance else []), ("type", type),
                  ("level", level or level_of(message))]
        self._log(resource, message.rstrip("\r\n"), labels, at=at)

    def lines(self, resource: str, lines: Iterable[str], *, type: str, instance: str | None = None) -> None:
        for line in lines:
            self.log(resource, line, type=type, instance=instance)

    def _log(self, resource: str, message: str, labels: list[tuple[str, str]], *, at: float | None) -> None:
        with self._lock:
            now = self.clock()
            us = max(round((now if at is None else at) * 1e6), self._last_us + 1)
            self._last_us = us
            rec = LogRec(id=f"log-{next(self._ids):012d}", at_us=us, message=message, labels=tuple(labels))
            self._logs.add(rec, now)
            self._persist(rec)

    # -- reading -----------------------------------------------------------------------------------
    def visible_until(self) -> float:
        """Entries after this time (epoch seconds) have not 'arrived' yet (``ingest_delay_s``)."""
        return self.clock() - self.ingest_delay_s

    def requests(self, resources: set[str], start: float, end: float) -> list[RequestRec]:
        """Requests of ``resources`` that arrived in [start, end] and are visible now, oldest first."""
        end = min(end, self.visible_until())
        with self._lock:
            return [r for r in self._requests.items if r.resource in resources and start <= r.at <= end]

    def logs(self, resources: set[str], start_us: int, end_us: int) -> list[LogRec]:
        """Log lines of ``resources`` in [start_us, end_us] visible now, oldest first."""
        end_us = min(end_us, int(self.visible_until() * 1e6))
        with self._lock:
            return [r for r in self._logs.items
                    if start_us <= r.at_us <= end_us and r.labels[0][1] in resources]

    def counts(self) -> tuple[int, int]:
        """(requests, log lines) held now."""
        with self._lock:
            return len(self._requests.items), len(self._logs.items)
