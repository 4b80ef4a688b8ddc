"""The baseline's request logs, read newest first a look's spare pages at a time, widened backwards while thin.

The baseline is the ``baseline_s`` before the switch (from the previous release's ``since`` at the earliest). Its
part older than ``logs_lag_s`` before the first read has all arrived and is read first, newest first; the last
``logs_lag_s`` before the switch once they have all arrived. While a route has fewer than
``min_baseline_requests``, the span read is doubled backwards, up to ``max_baseline_s`` and at most a minute of
pages (``logs_requests_per_min``) for the older part; when that minute is spent, the baseline is what was read
(newest first, so it ends at the switch). Each entry is read exactly once. The observation gives it the pages a
look leaves after the new release's, so the first looks judge on the part read so far (``judge``'s ``early``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from deploypipe.analysis.config import TrafficConfig
from deploypipe.analysis.evidence import Evidence
from deploypipe.analysis.source import RequestLogEntry, Window

__all__ = ["BaselineReader", "ReadPages"]

# read ``window`` within ``budget`` pages, each entry to ``add``: None when whole, the unread rest, or False
# when the first page could not be read; and the pages it asked for
ReadPages = Callable[[str, Window, Callable[[list[RequestLogEntry]], None], int], tuple[Window | None | bool, int]]


class BaselineReader:
    """Reads the baseline of ``evidence`` through ``read_pages``; sets ``evidence.paths.baseline_read`` when whole."""

    def __init__(self, evidence: Evidence, config: TrafficConfig, *, clock: Callable[[], float],
                 sleep: Callable[[float], None], wait_s: Callable[[], float], read_pages: ReadPages,
                 since: float | None):
        self.evidence, self.config, self.clock, self.sleep = evidence, config, clock, sleep
        self.wait_s, self.read_pages = wait_s, read_pages
        planned = evidence.windows.baseline_logs
        self.end = planned.end
        self.earliest = min(planned.start, max(self.end - config.max_baseline_s, since or 0.0))
        settled = min(self.end, max(planned.start, clock() - config.logs_lag_s))
        self.tail: Window | None = Window(settled, self.end) if settled < self.end else None
        self.chunk: Window | None = Window(planned.start, settled) if self.earliest < self.end else None
        self.left = config.logs_requests_per_min  # pages the older part may take: a minute of them
        self.read_from = settled  # read whole from here to `settled`

    @property
    def whole(self) -> bool:
        return self.evidence.paths.baseline_read

    def read(self, budget: int) -> int:
        """Read up to ``budget`` pages (the settled tail first once it has arrived); returns the pages asked for."""
        used = 0
        while budget - used > 0 and not self.whole:
            if self.tail is not None and self.clock() + self.wait_s() >= self.end + self.config.logs_lag_s:
                part, pages = self.tail, budget - used
            elif self.chunk is not None and self.left > 0:
                part, pages = self.chunk, min(budget - used, self.left)
            else:
                break  # done, or the tail has not all arrived yet: a later look reads it
            rest, taken = self.read_pages("baseline request logs", part, self.evidence.paths.add_baseline, pages)
            used += taken
            if rest is False:
                break
            assert rest is None or isinstance(rest, Window)
            if part is self.tail:
                self.tail = rest
                continue
            self.left -= taken
            self.read_from = part.start if rest is None else rest.end
            self.chunk = rest if rest is not None else self._wider()
        if self.tail is None and (self.chunk is None or self.left <= 0):
            self._done()
        return used

    def read_rest(self) -> None:
        """Everything left (waiting for the tail to arrive), before the last judgment; stops if reads keep failing."""
        while not self.whole:
            if self.tail is not None:
                self.sleep(max(0.0, self.end + self.config.logs_lag_s - self.clock()))
            before = (self.tail, self.chunk)
            self.read(10**6)
            if (self.tail, self.chunk) == before and not self.whole:
                return

    def _wider(self) -> Window | None:
        """The next older span (doubling what was read) while a route is thin and the bound allows; else None."""
        thin = [route for route, counts in self.evidence.paths.baseline.items()
                if counts.requests < self.config.min_baseline_requests]
        if not thin or self.read_from <= self.earliest:
            return None
        return Window(max(self.earliest, self.read_from - (self.end - self.read_from)), self.read_from)

    def _done(self) -> None:
        evidence = self.evidence
        evidence.paths.baseline_read = True
        if self.read_from != evidence.windows.baseline_logs.start:
            evidence.note(f"baseline request logs from {self.read_from - self.end:.0f} s before the switch")
        evidence.windows = dataclasses.replace(evidence.windows, baseline_logs=Window(self.read_from, self.end))
