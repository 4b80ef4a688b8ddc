"""The settings of a traffic analysis: thresholds, windows, pacing and significance, validated and immutable.

The defaults are Render's real limits (30 s resolution, one metrics request per 30 s interval, request-log pages
at 60 per minute, logs up to 10 s late) and a 10-minute window compared with the 10 minutes before the switch,
widened up to 30 minutes for paths with too few requests. ``bench/bench_traffic.py`` measures their error rates.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deploypipe.analysis.source import RENDER_LOG_PAGE_MAX

__all__ = ["OnInconclusive", "TrafficConfig"]

OnInconclusive = Literal["pass", "warn", "fail"]


class TrafficConfig(BaseModel):
    """How a release is judged on its traffic (the YAML keys of the stage that runs the analysis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_success_rate: float = Field(default=0.99, gt=0, lt=1, description=(
        "non-5xx share a scope must keep; applied only where the baseline kept it (else the baseline's own share)"))
    max_latency_ms: float = Field(default=1000.0, gt=0, description="bound on the latency quantile, milliseconds")
    latency_quantile: float = Field(default=0.99, ge=0.5, lt=1, description=(
        "the latency quantile max_latency_ms bounds: 0.95 or 0.99"))
    path_latency_quantile: float = Field(default=0.9, ge=0.5, lt=1, description=(
        "the latency quantile of each path compared with the baseline's (a path needs about "
        "log(significance)/log(quantile) baseline requests for it)"))
    max_latency_factor: float = Field(default=1.5, ge=1, description=(
        "a request slower than this factor of the baseline's path quantile counts as slow"))
    min_latency_increase_ms: float = Field(default=50.0, ge=0, description=(
        "a request at most this much slower than the baseline's path quantile never counts as slow"))
    min_requests: int = Field(default=100, ge=1, description=(
        "requests the new release must answer before it can pass; fewer is 'inconclusive: N requests'"))
    min_errors: int = Field(default=5, ge=1, description=(
        "failed (or slow) requests needed before a scope can fail (a client retrying one bad request is not an "
        "outage)"))
    error_margin: float = Field(default=0.005, ge=0, lt=1, description=(
        "a scope judged against its baseline may fail this much more (absolute share) than the baseline's upper "
        "confidence bound before it fails"))
    min_baseline_requests: int = Field(default=50, ge=1, description=(
        "baseline requests a path needs to be judged against the floors; fewer: only against its baseline"))
    on_inconclusive: OnInconclusive = Field(default="warn", description=(
        "what an inconclusive verdict does: pass, warn or fail"))
    window_s: float = Field(default=600.0, gt=0, description="how long the new release is observed from the switch")
    baseline_s: float = Field(default=600.0, gt=0, description=(
        "how much of the previous release's traffic (before the switch) it is compared with"))
    max_baseline_s: float = Field(default=1800.0, gt=0, description=(
        "how far back the baseline's request logs are widened (doubling the span) until every path has "
        "min_baseline_requests"))
    interval_s: float = Field(default=30.0, gt=0, description=(
        "seconds between looks; each look makes at most one metrics and one logs request"))
    resolution_s: int = Field(default=30, ge=1, description=(
        "metrics bucket size, seconds (Render's minimum is 30; the local Render may allow less)"))
    late_data_s: float = Field(default=60.0, ge=0, description=(
        "how long after the window to wait for late metrics before judging what arrived"))
    logs_lag_s: float = Field(default=10.0, ge=0, description=(
        "how late request-log entries may arrive: the logs are read up to this long before now"))
    logs_requests_per_min: int = Field(default=60, ge=1, description=(
        "request-log pages per minute at most (Render allows 100 to 400 GETs a minute for all endpoints)"))
    significance: float = Field(default=0.01, gt=0, lt=0.5, description=(
        "chance of failing a healthy release, whatever the number of looks and paths"))
    fail_fast: bool = Field(default=True, description="stop at the first look where a failure is already certain")
    log_page: int = Field(default=RENDER_LOG_PAGE_MAX, ge=1, le=RENDER_LOG_PAGE_MAX, description=(
        "request log entries per logs request"))
    retry_attempts: int = Field(default=3, ge=1, description=(
        "attempts per request on transient errors; retries wait for the next request slot"))

    @model_validator(mode="after")
    def _interval_fits_window(self) -> TrafficConfig:
        if self.interval_s > self.window_s:
            raise ValueError(f"interval_s ({self.interval_s:g}) is longer than window_s ({self.window_s:g})")
        if self.max_baseline_s < self.baseline_s:
            raise ValueError(f"max_baseline_s ({self.max_baseline_s:g}) is shorter than baseline_s "
                             f"({self.baseline_s:g})")
        return self

    @property
    def max_error_rate(self) -> float:
        return 1.0 - self.min_success_rate

    @property
    def latency_label(self) -> str:
        """``p99`` for 0.99, ``p99.9`` for 0.999."""
        return f"p{self.latency_quantile * 100:g}"

    @property
    def path_latency_label(self) -> str:
        return f"p{self.path_latency_quantile * 100:g}"

    @property
    def logs_gap_s(self) -> float:
        """Seconds between two request-log pages."""
        return 60.0 / self.logs_requests_per_min

    def logs_pages_per_look(self) -> int:
        """Request-log pages one look may read of the new release's logs."""
        return max(1, int(self.interval_s // self.logs_gap_s))
