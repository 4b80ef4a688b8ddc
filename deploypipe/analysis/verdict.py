"""The typed outcome of a traffic analysis: status, figures, reasons, worst paths and the one-line message.

``status`` is what the traffic showed (pass, fail, inconclusive); ``outcome`` is what the pipeline does with it
(pass, warn, fail), where an inconclusive status follows ``on_inconclusive``; ``compared`` is False when the
previous release had no traffic (the floors alone judged the release, and the message says so). Everything is
JSON-ready through ``model_dump(mode="json")`` for report.json and notifications.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from deploypipe.analysis.config import OnInconclusive

__all__ = ["Figures", "Outcome", "PathFinding", "Status", "Verdict", "outcome_of", "percent"]

Status = Literal["pass", "fail", "inconclusive"]
Outcome = Literal["pass", "warn", "fail"]


def percent(share: float | None) -> str:
    """``0.9953`` -> ``99.53 %``; ``-`` without data."""
    return "-" if share is None else f"{share * 100:.2f} %"


def outcome_of(status: Status, on_inconclusive: OnInconclusive) -> Outcome:
    """pass -> pass, fail -> fail, inconclusive -> whatever ``on_inconclusive`` says."""
    if status == "inconclusive":
        return on_inconclusive
    return status


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figures(_Frozen):
    """The numbers behind a verdict: the new release's window against the baseline window."""

    requests: int
    errors: int
    success_rate: float | None
    baseline_requests: int
    baseline_errors: int
    baseline_success_rate: float | None
    latency_quantile: float
    latency_ms: float | None = None
    baseline_latency_ms: float | None = None
    logs_sampled: bool = False


class PathFinding(_Frozen):
    """One route's counts and path-latency quantile from the request logs, and whether its own tests failed."""

    route: str
    requests: int
    errors: int
    status: str
    since: float | None
    baseline_requests: int
    baseline_errors: int
    baseline_read: bool
    failed: bool
    message: str
    latency_ms: float | None = None
    baseline_latency_ms: float | None = None


class Verdict(_Frozen):
    """The judgement of one release on its traffic."""

    status: Status
    outcome: Outcome
    message: str
    reasons: tuple[str, ...]
    figures: Figures
    worst_paths: tuple[PathFinding, ...] = ()
    early: bool = False
    elapsed_s: float = 0.0
    looks: int = 0
    metrics_requests: int = 0
    logs_requests: int = 0
    compared: bool = True

    @property
    def failed(self) -> bool:
        """True when the pipeline must treat the release as failed (status fail, or inconclusive with fail)."""
        return self.outcome == "fail"

    def lines(self) -> list[str]:
        """The message, then every reason not already in it: what a console or CI summary shows."""
        return [self.message, *(reason for reason in self.reasons if reason not in self.message)]
