"""The observation loop: look at the traffic every interval within a request budget until the verdict is certain.

Each look makes at most one metrics request and one logs request, whatever happens (retries included: a
:class:`_Slot` per kind refuses a second request within ``interval_s`` and the retry waits for it):

* metrics: request counts over the baseline and the new window at once (one request covers both, and re-reading
  the whole span picks up late data); once the window is over and its counts have settled, one read of the
  latency quantile over the same span;
* logs: first a page of the baseline's request logs, then at each look the new release's logs since the last
  look (newest first; a page that overflows makes the per-path figures a sample, said in the verdict).

A look that proves a failure at the interim significance stops the observation (fail-fast). After the window,
the loop re-reads the counts until two reads agree and the last bucket is there, at most ``late_data_s``; then
reads the latency and judges. Transient source errors are retried with tenacity on the injected sleep, within
the slots and before the deadline; a read that still fails leaves the previous data and a note in the verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from deploypipe.analysis.config import TrafficConfig
from deploypipe.analysis.evidence import Evidence, Windows, plan_windows
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
    """One kind of request: at most one per ``interval_s``; every attempt counts."""

    kind: str
    interval_s: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    calls: list[float] = field(default_factory=list)

    def wait_s(self) -> float:
        return 0.0 if not self.calls else max(0.0, self.calls[-1] + self.interval_s - self.clock())

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
                 on_look: Callable[[dict[str, Any]], None] | None = None):
        self.source, self.config, self.windows = source, config, windows
        self.on_look = on_look
        self.clock, self.sleep = clock, sleep
        self.evidence = Evidence(windows)
        self.metrics = _Slot("metrics", config.interval_s, clock, sleep)
        self.logs = _Slot("logs", config.interval_s, clock, sleep)
        self.cursor = windows.new_logs.start
        self.baseline_tries = 0
        self.previous_counts: tuple[int, int, int, int] | None = None
        self.deadline = windows.new.end + config.late_data_s + config.interval_s
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

    def _read_logs(self) -> None:
        tally = self.evidence.paths
        end = min(self.clock(), self.windows.new_logs.end)
        # the baseline's page first, unless a whole interval of the new release is already waiting (a late start)
        if not tally.baseline_read and self.baseline_tries < 2 and end - self.cursor < self.config.interval_s:
            self.baseline_tries += 1
            window = self.windows.baseline_logs
            page = self._call(self.logs, "baseline request logs",
                              lambda: self.source.request_logs(window, self.config.log_page))
            if page is not None:
                tally.add_baseline(_inside(page, window), sampled=page.has_more)
            return
        if end <= self.cursor:
            return
        window = Window(self.cursor, end)
        page = self._call(self.logs, "request logs", lambda: self.source.request_logs(window, self.config.log_page))
        if page is not None:
            tally.add_new(_inside(page, window), sampled=page.has_more)
            self.cursor = end

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

    def run(self) -> Verdict:
        config, windows = self.config, self.windows
        looks = looks_after_end = 0
        next_look = self.clock()
        while True:
            self.sleep(max(0.0, next_look - self.clock()))
            next_look = self.clock() + config.interval_s
            looks += 1
            exact = self.evidence.logs_complete
            over = self.clock() >= (windows.requested_end if exact else windows.new.end)
            looks_after_end += over
            self._read_counts()
            self._read_logs()
            if self.evidence.logs_complete:
                self.evidence.count_from_logs()
            self._log_look(looks)
            if config.fail_fast:
                verdict = judge(self.evidence, config, level=config.interim_level(), final=False)
                if verdict is not None:
                    return self._finish(verdict, looks, early=True)
            if over and exact and self.evidence.logs_complete and self.cursor >= windows.requested_end:
                break  # every request of the window is in the logs already: no bucket to wait for
            if over and (self._settled(looks_after_end) or looks >= config.planned_looks() - 1):
                break
        self.sleep(max(0.0, next_look - self.clock()))
        self._read_latency()
        self._read_logs()
        if self.evidence.logs_complete:
            self.evidence.count_from_logs()
        verdict = judge(self.evidence, config, level=config.final_level(), final=True)
        assert verdict is not None
        return self._finish(verdict, looks + 1, early=False)

    def _log_look(self, look: int) -> None:
        evidence = self.evidence
        figures = {"look": look, "at": self.clock(), "elapsed_s": round(self.clock() - self.windows.switched_at, 3),
                   "requests": evidence.requests, "errors": evidence.errors,
                   "baseline_requests": evidence.baseline_requests, "baseline_errors": evidence.baseline_errors,
                   "paths": len(evidence.paths.new)}
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
            on_look: Callable[[dict[str, Any]], None] | None = None) -> Verdict:
    """Watch the release that went live at ``switched_at`` and judge it against ``baseline``.

    ``baseline`` defaults to the ``config.baseline_s`` seconds before the switch (the previous release); ``on_look``
    gets the figures of each look (for the journal). Returns
    at the first look where a failure is certain, else after the window and the bounded wait for late data.
    Raises only what ``source`` raises that is not transient. ``clock`` must give epoch seconds (``time.time``,
    not ``time.monotonic``): Render dates metrics and logs, and the windows are asked for by date.
    """
    if switched_at < _YEAR_2000 or clock() < _YEAR_2000:
        raise ValueError(f"observe: switched_at {switched_at:.0f} / clock() {clock():.0f} are not epoch seconds; "
                         f"hint: pass clock=time.time (Render's metrics and logs are dated), not time.monotonic")
    windows = plan_windows(switched_at, window_s=config.window_s, resolution_s=config.resolution_s,
                           baseline=baseline, baseline_s=config.baseline_s)
    return _Observation(source, config, windows, clock, sleep, on_look).run()
