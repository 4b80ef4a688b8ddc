"""The observation loop: look at the traffic every interval within a request budget until the verdict is certain.

Requests are paced by one :class:`_Slot` per kind (retries included: a retry waits for its slot):

* metrics, at most one per ``interval_s``: request counts over the baseline and the new window at once (one
  request covers both, and re-reading the whole span picks up late data); once the window is over, when the logs
  carry no response times, one read of the latency quantile over the same span;
* request logs, at most ``logs_requests_per_min`` pages a minute, every page followed (``LogPage.next``). At
  each look, first the new release's entries from the cursor up to ``logs_lag_s`` before now, at most
  ``interval_s`` worth of pages (what is left is read at the next look); then, with the pages the look has left,
  the baseline's, newest first (``baseline.BaselineReader``). Each entry is read exactly once as long as none
  arrives later than ``logs_lag_s``.

Every look is judged (``judge``, valid at every look) after the new release's pages, and again after baseline
pages; while the baseline is not read whole, on the part read so far (the service on the metrics' counts). A
failure stops the observation (fail-fast). After the window, the loop reads what is left of the baseline and
waits until the logs are read to the window's end, or, when the metrics count, until two reads agree and the
last bucket is there (at most ``late_data_s``); then it judges for good. Transient source errors are retried with
tenacity on the injected sleep; a read that still fails leaves the previous data and a note.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from deploypipe.analysis.baseline import BaselineReader
from deploypipe.analysis.config import TrafficConfig
from deploypipe.analysis.evidence import COUNTED_FROM_LOGS, Evidence, Windows, plan_windows
from deploypipe.analysis.figures import baseline_figures, look_figures
from deploypipe.analysis.judge import judge
from deploypipe.analysis.source import LogPage, RequestLogEntry, TrafficSource, Window
from deploypipe.analysis.verdict import Verdict
from deploypipe.errors import TransientError

__all__ = ["observe"]

log = structlog.get_logger("deploypipe.analysis")
_YEAR_2000 = 946_684_800.0
T = TypeVar("T")


@dataclass
class _Slot:
    """One kind of request: at most one per ``gap_s``; every attempt counts."""

    kind: str
    gap_s: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    calls: list[float] = field(default_factory=list)

    def wait_s(self) -> float:
        return 0.0 if not self.calls else max(0.0, self.calls[-1] + self.gap_s - self.clock())

    def take(self) -> None:
        wait = self.wait_s()
        if wait > 0:
            self.sleep(wait)
        self.calls.append(self.clock())


def _retry_after(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    value = getattr(exc, "retry_after_s", None)
    return float(value) if isinstance(value, (int, float)) else 0.0


class _Observation:
    def __init__(self, source: TrafficSource, config: TrafficConfig, windows: Windows,
                 clock: Callable[[], float], sleep: Callable[[float], None],
                 on_look: Callable[[dict[str, Any]], None] | None = None,
                 on_baseline: Callable[[dict[str, Any]], None] | None = None, since: float | None = None):
        self.source, self.config, self.windows = source, config, windows
        self.on_look, self.on_baseline, self.since = on_look, on_baseline, since
        self.clock, self.sleep = clock, sleep
        self.evidence = Evidence(windows)
        self.metrics = _Slot("metrics", config.interval_s, clock, sleep)
        self.logs = _Slot("logs", config.logs_gap_s, clock, sleep)
        self.cursor = windows.new_logs.start
        self.pending: Window | None = None  # the part of [.., cursor) whose pages are still to be read
        self.baseline = BaselineReader(self.evidence, config, clock=clock, sleep=sleep, wait_s=self.logs.wait_s,
                                       read_pages=self._pages, since=since)
        self.baseline_logged = False
        self.previous_counts: tuple[int, int, int, int] | None = None
        self.logs_end = windows.requested_end + config.logs_lag_s
        self.deadline = max(windows.new.end + config.late_data_s, self.logs_end) + config.interval_s
        self.max_looks = math.ceil((self.deadline - windows.switched_at) / config.interval_s) + 2
        self.started = clock()

    # -- requests ------------------------------------------------------------------------------
    def _call(self, slot: _Slot, what: str, read: Callable[[], T]) -> T | None:
        def wait(state: RetryCallState) -> float:
            return max(slot.wait_s(), _retry_after(state))

        def stop(state: RetryCallState) -> bool:
            return (state.attempt_number >= self.config.retry_attempts
                    or self.clock() + wait(state) > self.deadline)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("traffic_source_retrying", request=what, attempt=state.attempt_number,
                        wait_s=round(state.next_action.sleep if state.next_action else 0.0, 3),
                        reason=str(exc) or type(exc).__name__)

        retrying = Retrying(retry=retry_if_exception_type(TransientError), stop=stop, wait=wait, sleep=self.sleep,
                            reraise=True, before_sleep=before_sleep)
        try:
            for attempt in retrying:
                with attempt:
                    slot.take()
                    result = read()
                    self.evidence.notes = [n for n in self.evidence.notes if not n.startswith(f"{what} unavailable")]
                    return result
        except TransientError as exc:
            self.evidence.note(f"{what} unavailable: {exc}")
            log.warning("traffic_source_unavailable", request=what, reason=str(exc) or type(exc).__name__)
        return None

    def _read_counts(self) -> None:
        span, resolution = self.windows.metrics_span, self.config.resolution_s
        buckets = self._call(self.metrics, "request counts",
                             lambda: self.source.request_counts(Window(span.start, min(self.clock(), span.end)),
                                                                resolution))
        if buckets is not None:
            self.evidence.take_counts(buckets)

    def _read_latency(self) -> None:
        span, config = self.windows.metrics_span, self.config
        buckets = self._call(self.metrics, f"{config.latency_label} latency",
                             lambda: self.source.latency(span, config.resolution_s, config.latency_quantile))
        if buckets is not None:
            self.evidence.take_latency(buckets)

    def _pages(self, what: str, window: Window, add: Callable[[list[RequestLogEntry]], None],
               budget: int) -> tuple[Window | None | bool, int]:
        """Read ``window`` page by page within ``budget`` pages: (None when whole, the unread rest, or False; the
        pages asked for)."""
        rest: Window | None = window
        before = len(self.logs.calls)
        while rest is not None and budget > 0:
            budget -= 1
            part = rest
            page = self._call(self.logs, what,
                              lambda part=part: self.source.request_logs(part, self.config.log_page))  # type: ignore[misc]
            if page is None:
                return (False if rest == window else rest), len(self.logs.calls) - before
            add(_inside(page, part))
            rest = page.next if page.has_more and page.next is not None and page.next != part else None
        return rest, len(self.logs.calls) - before

    def _read_logs(self) -> int:
        """The new release's entries from the cursor up to the logs' lag, within a look's pages; the pages read."""
        tally = self.evidence.paths
        if self.pending is None:
            target = min(self.clock() - self.config.logs_lag_s, self.windows.new_logs.end)
            if target <= self.cursor:
                return 0
            self.pending, self.cursor = Window(self.cursor, target), target
        rest, pages = self._pages("request logs", self.pending, tally.add_new, self.config.logs_pages_per_look())
        self.pending = self.pending if rest is False else rest  # type: ignore[assignment]
        tally.behind = self.pending is not None
        return pages

    # -- the loop -------------------------------------------------------------------------------
    def _settled(self, looks_after_end: int) -> bool:
        """After the window: two equal reads with the last bucket present, or the late-data wait is over."""
        evidence = self.evidence
        counts = (evidence.requests, evidence.errors, evidence.baseline_requests, evidence.baseline_errors)
        previous, self.previous_counts = self.previous_counts, counts
        if looks_after_end > 1 and counts == previous and evidence.last_bucket_seen:
            return True
        if self.clock() < self.windows.new.end + self.config.late_data_s:
            return False
        if not evidence.last_bucket_seen or (looks_after_end > 1 and counts != previous):
            evidence.note(f"late data: the counts were still incomplete or changing {self.config.late_data_s:g} s "
                          f"after the window; judged what had arrived")
        return True

    def _judge(self, looks: int) -> Verdict | None:
        """An interim judgment on what was read so far (the baseline's part read so far while it is not whole)."""
        self._count(self.evidence.logs_complete)
        if self.evidence.paths.baseline_read and not self.baseline_logged:
            self._log_baseline()
        if not self.config.fail_fast:
            return None
        verdict = judge(self.evidence, self.config, final=False)
        return None if verdict is None else self._finish(verdict, looks, early=True)

    def run(self) -> Verdict:
        config, windows = self.config, self.windows
        looks = looks_after_end = 0
        next_look = self.clock()
        while True:
            self.sleep(max(0.0, next_look - self.clock()))
            next_look = self.clock() + config.interval_s
            looks += 1
            self._read_counts()
            pages = self._read_logs()  # the new release's entries first: they are what is judged
            exact = self.evidence.logs_complete
            self._count(exact)
            over = self.clock() >= (self.logs_end if exact else windows.new.end)
            looks_after_end += over
            self._log_look(looks)
            if looks > 1 and (verdict := self._judge(looks)) is not None:
                return verdict
            if self.baseline.read(config.logs_pages_per_look() - pages) or looks == 1:
                if (verdict := self._judge(looks)) is not None:
                    return verdict
            if over and exact and self.cursor >= windows.requested_end:
                break  # every request of the window is in the logs already: no bucket to wait for
            if over and (self._settled(looks_after_end) or looks >= self.max_looks):
                break
        self.sleep(max(0.0, next_look - self.clock()))
        if not any(counts.ms for counts in self.evidence.paths.new.values()):
            self._read_latency()
        self.baseline.read_rest()
        self._read_logs()
        self._count(self.evidence.logs_complete)
        if not self.baseline_logged:
            self._log_baseline()
        verdict = judge(self.evidence, config, final=True)
        assert verdict is not None
        return self._finish(verdict, looks + 1, early=False)

    def _count(self, exact: bool) -> None:
        """The service's counts from the logs while they hold every request; else the metrics' (read already)."""
        if exact:
            self.evidence.count_from_logs()
        else:
            self.evidence.notes = [note for note in self.evidence.notes if note != COUNTED_FROM_LOGS]

    def _log_baseline(self) -> None:
        self.baseline_logged = True
        figures = baseline_figures(self.evidence)
        log.debug("traffic_baseline", **figures)
        if self.on_baseline is not None:
            self.on_baseline(figures)

    def _log_look(self, look: int) -> None:
        figures = look_figures(self.evidence, self.config, look=look, at=self.clock())
        log.debug("traffic_look", **figures)
        if self.on_look is not None:
            self.on_look(figures)

    def _finish(self, verdict: Verdict, looks: int, *, early: bool) -> Verdict:
        verdict = verdict.model_copy(update={
            "early": early, "looks": looks, "elapsed_s": self.clock() - self.windows.switched_at,
            "metrics_requests": len(self.metrics.calls), "logs_requests": len(self.logs.calls)})
        log.info("traffic_verdict", status=verdict.status, outcome=verdict.outcome, message=verdict.message,
                 early=early, elapsed_s=round(verdict.elapsed_s, 3), looks=looks,
                 metrics_requests=verdict.metrics_requests, logs_requests=verdict.logs_requests)
        return verdict


def _inside(page: LogPage, window: Window) -> list[RequestLogEntry]:
    return [entry for entry in page.entries if entry.at in window]


def observe(source: TrafficSource, config: TrafficConfig, *, switched_at: float, clock: Callable[[], float],
            sleep: Callable[[float], None], baseline: Window | None = None,
            on_look: Callable[[dict[str, Any]], None] | None = None,
            on_baseline: Callable[[dict[str, Any]], None] | None = None,
            previous_live_at: float | None = None, first_release: bool = False) -> Verdict:
    """Watch the release that went live at ``switched_at`` and judge it against ``baseline``.

    ``baseline`` defaults to the ``config.baseline_s`` seconds before the switch, from ``previous_live_at`` at the
    earliest (when the previous release went live: neither the baseline nor its widening reach back into the
    release before it, or into the previous release's own start); ``on_look``
    gets the figures of each look and ``on_baseline`` those of the baseline, once it is read whole (for
    the journal: events ``traffic_look`` and ``traffic_baseline``). ``first_release``: the service has no earlier
    release, so nothing before the switch is its traffic (only a proxy's answers before anything was live) and there
    is no baseline: every scope is judged against the floors only (``compared`` False). Returns
    at the first look where a failure is certain, else after the window and the bounded wait for late data.
    Raises only what ``source`` raises that is not transient. ``clock`` must give epoch seconds (``time.time``,
    not ``time.monotonic``): Render dates metrics and logs, and the windows are asked for by date.
    """
    if switched_at < _YEAR_2000 or clock() < _YEAR_2000:
        raise ValueError(f"observe: switched_at {switched_at:.0f} / clock() {clock():.0f} are not epoch seconds; "
                         f"hint: pass clock=time.time (Render's metrics and logs are dated), not time.monotonic")
    since = previous_live_at if previous_live_at is not None and previous_live_at < switched_at else None
    if first_release:
        baseline, since = Window(switched_at, switched_at), switched_at
    if baseline is None and since is not None:
        baseline = Window(max(switched_at - config.baseline_s, since), switched_at)
    windows = plan_windows(switched_at, window_s=config.window_s, resolution_s=config.resolution_s,
                           baseline=baseline, baseline_s=config.baseline_s)
    return _Observation(source, config, windows, clock, sleep, on_look, on_baseline, since).run()
