"""The settings of a traffic analysis: thresholds, windows, pacing and significance, validated and immutable.

The defaults are Render's real limits (30 s resolution, one metrics and one logs request per 30 s interval) and
a 10-minute window compared with the 10 minutes before the switch. ``bench/bench_traffic.py`` checks them on a
service with 5 requests/s: no failed verdict in 50 healthy releases (0.5 % background 5xx, latency noise) and no
miss in 50 releases where one path carrying 5 % of the traffic fails 20 % of its requests.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deploypipe.analysis.source import RENDER_LOG_PAGE_MAX

__all__ = ["OnInconclusive", "TrafficConfig"]

OnInconclusive = Literal["pass", "warn", "fail"]


class TrafficConfig(BaseModel):
    """How a release is judged on its traffic (the YAML keys of the stage that runs the analysis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_success_rate: float = Field(default=0.99, gt=0, lt=1, description=(
        "non-5xx share the release must keep; it fails only when it is below with confidence (1 - significance)"))
    max_latency_ms: float = Field(default=1000.0, gt=0, description="bound on the latency quantile, milliseconds")
    latency_quantile: float = Field(default=0.99, ge=0.5, lt=1, description=(
        "the latency quantile judged: 0.95 or 0.99"))
    max_latency_factor: float = Field(default=1.5, ge=1, description=(
        "the quantile may grow to this factor of the previous release's before the release fails"))
    min_latency_increase_ms: float = Field(default=50.0, ge=0, description=(
        "a latency growth smaller than this is never a regression (fast services are noisy in relative terms)"))
    min_requests: int = Field(default=100, ge=1, description=(
        "requests the new release must answer before it can pass; fewer is 'inconclusive: N requests'"))
    min_errors: int = Field(default=5, ge=1, description=(
        "failed requests needed before a scope can fail (a client retrying one bad request is not an outage)"))
    on_inconclusive: OnInconclusive = Field(default="warn", description=(
        "what an inconclusive verdict does: pass, warn or fail"))
    window_s: float = Field(default=600.0, gt=0, description="how long the new release is observed from the switch")
    baseline_s: float = Field(default=600.0, gt=0, description=(
        "how much of the previous release's traffic (before the switch) it is compared with"))
    interval_s: float = Field(default=30.0, gt=0, description=(
        "seconds between looks; each look makes at most one metrics and one logs request"))
    resolution_s: int = Field(default=30, ge=1, description=(
        "metrics bucket size, seconds (Render's minimum is 30; the local Render may allow less)"))
    late_data_s: float = Field(default=60.0, ge=0, description=(
        "how long after the window to wait for late metrics before judging what arrived"))
    significance: float = Field(default=0.01, gt=0, lt=0.5, description=(
        "false-alarm budget of one observation, split across looks and corrected across paths"))
    fail_fast: bool = Field(default=True, description="stop at the first look where a failure is already certain")
    log_page: int = Field(default=RENDER_LOG_PAGE_MAX, ge=1, le=RENDER_LOG_PAGE_MAX, description=(
        "request log entries per logs request"))
    retry_attempts: int = Field(default=3, ge=1, description=(
        "attempts per request on transient errors; retries wait for the next interval's request slot"))

    @model_validator(mode="after")
    def _interval_fits_window(self) -> TrafficConfig:
        if self.interval_s > self.window_s:
            raise ValueError(f"interval_s ({self.interval_s:g}) is longer than window_s ({self.window_s:g})")
        return self

    @property
    def max_error_rate(self) -> float:
        return 1.0 - self.min_success_rate

    @property
    def latency_label(self) -> str:
        """``p99`` for 0.99, ``p99.9`` for 0.999."""
        return f"p{self.latency_quantile * 100:g}"

    def planned_looks(self) -> int:
        """Looks an observation can take at most: the window, the wait for late data, one read of latency."""
        return math.ceil((self.window_s + self.resolution_s + self.late_data_s) / self.interval_s) + 2

    def interim_level(self) -> float:
        """Significance of one look that may stop early: half the budget, split evenly across looks."""
        return self.significance / 2 / self.planned_looks() if self.fail_fast else 0.0

    def final_level(self) -> float:
        """Significance of the last look: the other half of the budget (all of it without fail_fast)."""
        return self.significance / 2 if self.fail_fast else self.significance
