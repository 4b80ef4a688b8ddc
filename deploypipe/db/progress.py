"""How far a dump or a restore has got, with an ETA, sampled from PostgreSQL's own progress views.

The dump: ``pg_stat_progress_copy`` on production shows the table pg_dump is
copying and its rows so far; each table weighs its ``pg_table_size`` and its
exact row count comes from the dump's snapshot. A restore run with ``-v``:
its "finished item" lines against the number of entries it restores. A
:class:`Sampler` thread reports a :class:`Progress` every ``interval_s``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import psycopg

__all__ = ["DumpWatch", "ItemCounter", "Progress", "Sampler"]


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` (``unit``: bytes or items) in phase ``phase`` after ``elapsed_s``."""

    phase: str
    done: float
    total: float
    unit: str
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None until 2 % is done)."""
        if self.fraction < 0.02:
            return None
        return round(self.elapsed_s * (1 - self.fraction) / self.fraction, 1)

    def fields(self) -> dict[str, Any]:
        return {"phase": self.phase, "done": round(self.done), "total": round(self.total), "unit": self.unit,
                "percent": round(100 * self.fraction, 1), "elapsed_s": round(self.elapsed_s, 1),
                "eta_s": self.eta_s}


@dataclass
class DumpWatch:
    """Dump progress from production's ``pg_stat_progress_copy``, for the pg_dump whose application_name is ours."""

    url: str
    application_name: str
    sizes: Mapping[int, tuple[int, float]]  # table oid -> (pg_table_size, expected rows)
    _done: set[int] = field(default_factory=set)
    _current: dict[int, float] = field(default_factory=dict)
    _conn: psycopg.Connection | None = None

    @property
    def total(self) -> int:
        return sum(size for size, _ in self.sizes.values())

    def done_bytes(self) -> float:
        rows = self._query()
        finished = set(self._current) - {oid for oid, _ in rows}
        self._done |= finished
        self._current = {oid: tuples for oid, tuples in rows if oid in self.sizes}
        done = float(sum(self.sizes[oid][0] for oid in self._done))
        for oid, tuples in self._current.items():
            size, expected = self.sizes[oid]
            done += size * min(1.0, tuples / expected) if expected > 0 else 0
        return done

    def _query(self) -> list[tuple[int, float]]:
        if self._conn is None:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        return [(int(oid), float(tuples)) for oid, tuples in self._conn.execute(
            "select p.relid, p.tuples_processed from pg_stat_progress_copy p join pg_stat_activity a using (pid) "
            "where a.application_name = %s", (self.application_name,)).fetchall()]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_FINISHED = re.compile(r"finished item \d+")


@dataclass
class ItemCounter:
    """Counts the "finished item" lines of ``pg_restore -v -j N`` against the entries it restores."""

    total: int
    done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, line: str) -> None:
        if _FINISHED.search(line):
            with self._lock:
                self.done += 1


class Sampler:
    """Calls ``report(Progress)`` every ``interval_s`` while running; ``measure()`` returns (done, total).

    A failing measurement (e.g. the progress view is not readable) stops the reports, never the work.
    """

    def __init__(self, phase: str, unit: str, measure: Callable[[], tuple[float, float]],
                 report: Callable[[Progress], None], *, interval_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        self.phase, self.unit, self.measure, self.report = phase, unit, measure, report
        self.interval_s, self.clock = interval_s, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress-{phase}", daemon=True)
        self._started = clock()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                done, total = self.measure()
            except (psycopg.Error, OSError, ValueError):
                return
            self.report(Progress(self.phase, done, total, self.unit, self.clock() - self._started))
