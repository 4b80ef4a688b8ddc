"""Turn the evidence of one look into a verdict: which scopes (service, paths) and latency checks fail, and why.

A scope (the whole service, or one route of the request logs) fails when it has at least ``min_errors`` failed
requests, its observed success rate is below ``min_success_rate``, and, after Holm's correction over every test
of the look, either

* its failure share is above ``1 - min_success_rate`` with confidence (exact binomial test), or
* it is significantly worse than the same scope of the previous release (Fisher's exact test).

A route that already failed above the threshold in the baseline is not blamed on the new release through the
first test (rolling back would not fix it); it still counts in the service's success rate, and fails through the
second test when it got worse. An interim look (``final=False``) can only fail a release; the last look also
judges latency and returns pass, or "inconclusive: N requests" below ``min_requests``. A certain failure needs
no minimum request count: fail-fast is for a path failing for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deploypipe.analysis.config import TrafficConfig
from deploypipe.analysis.evidence import Evidence
from deploypipe.analysis.latency import judge_latency
from deploypipe.analysis.paths import PathCounts, path_message
from deploypipe.analysis.stats import (
    exceeds_error_rate,
    holm,
    success_upper_bound,
    worse_than_baseline,
)
from deploypipe.analysis.verdict import (
    Figures,
    PathFinding,
    Verdict,
    outcome_of,
    percent,
)

__all__ = ["MAX_WORST_PATHS", "OVERALL", "judge"]

OVERALL = "the service"
MAX_WORST_PATHS = 3
Test = Literal["above", "worse"]


@dataclass(frozen=True)
class _Scope:
    name: str
    requests: int
    errors: int
    baseline_requests: int
    baseline_errors: int

    @property
    def success_rate(self) -> float | None:
        return None if self.requests == 0 else 1 - self.errors / self.requests


def _scopes(evidence: Evidence) -> list[_Scope]:
    scopes = [_Scope(OVERALL, evidence.requests, evidence.errors, evidence.baseline_requests,
                     evidence.baseline_errors)]
    for route, counts in sorted(evidence.paths.new.items()):
        base = evidence.paths.baseline_of(route)
        scopes.append(_Scope(route, counts.requests, counts.errors, base.requests, base.errors))
    return scopes


def _pvalues(scopes: list[_Scope], config: TrafficConfig) -> dict[tuple[str, Test], float]:
    pvalues: dict[tuple[str, Test], float] = {}
    for scope in scopes:
        pvalues[(scope.name, "above")] = exceeds_error_rate(scope.errors, scope.requests, config.max_error_rate)
        pvalues[(scope.name, "worse")] = worse_than_baseline(scope.errors, scope.requests, scope.baseline_errors,
                                                             scope.baseline_requests)
    return pvalues


def _failing(scope: _Scope, adjusted: dict[tuple[str, Test], float], config: TrafficConfig,
             level: float) -> list[Test]:
    rate = scope.success_rate
    if scope.errors < config.min_errors or rate is None or rate >= config.min_success_rate:
        return []
    tests: list[Test] = []
    baseline_broken = scope.name != OVERALL and exceeds_error_rate(
        scope.baseline_errors, scope.baseline_requests, config.max_error_rate) <= config.significance
    if adjusted[(scope.name, "above")] <= level and not baseline_broken:
        tests.append("above")
    if adjusted[(scope.name, "worse")] <= level:
        tests.append("worse")
    return tests


def _overall_reason(scope: _Scope, tests: list[Test], level: float) -> str:
    rate = percent(scope.success_rate)
    if "above" in tests:
        bound = success_upper_bound(scope.errors, scope.requests, 1 - level)
        return (f"{scope.errors} of {scope.requests} requests answered 5xx: success rate {rate}, at most "
                f"{percent(bound)} with {(1 - level) * 100:.4g} % confidence")
    base = None if scope.baseline_requests == 0 else 1 - scope.baseline_errors / scope.baseline_requests
    return (f"{scope.errors} of {scope.requests} requests answered 5xx: success rate {rate} is significantly "
            f"below the previous release's {percent(base)} ({scope.baseline_errors} of "
            f"{scope.baseline_requests})")


def _finding(route: str, counts: PathCounts, evidence: Evidence, failed: bool) -> PathFinding:
    base = evidence.paths.baseline_of(route)
    known = base if evidence.paths.baseline_read else None
    return PathFinding(route=route, requests=counts.requests, errors=counts.errors, status=counts.status_text(),
                       since=counts.first_error_at, baseline_requests=base.requests, baseline_errors=base.errors,
                       baseline_read=known is not None, failed=failed,
                       message=path_message(route, counts, known))


def _worst_paths(evidence: Evidence, failed_routes: dict[str, float],
                 pvalues: dict[tuple[str, Test], float]) -> tuple[PathFinding, ...]:
    """Failed routes first (most certain first), then the routes whose errors are least likely to be noise."""
    def rank(item: tuple[str, PathCounts]) -> tuple[float, float, int]:
        route, counts = item
        evidence_p = min(pvalues[(route, "above")], pvalues[(route, "worse")])
        return failed_routes.get(route, 2.0), evidence_p, -counts.errors

    erring = [item for item in evidence.paths.new.items() if item[1].errors > 0]
    return tuple(_finding(route, counts, evidence, route in failed_routes)
                 for route, counts in sorted(erring, key=rank)[:MAX_WORST_PATHS])


def _figures(evidence: Evidence, config: TrafficConfig, new_ms: float | None, base_ms: float | None) -> Figures:
    def rate(requests: int, errors: int) -> float | None:
        return None if requests == 0 else 1 - errors / requests

    return Figures(requests=evidence.requests, errors=evidence.errors,
                   success_rate=rate(evidence.requests, evidence.errors),
                   baseline_requests=evidence.baseline_requests, baseline_errors=evidence.baseline_errors,
                   baseline_success_rate=rate(evidence.baseline_requests, evidence.baseline_errors),
                   latency_quantile=config.latency_quantile, latency_ms=new_ms, baseline_latency_ms=base_ms,
                   logs_sampled=evidence.paths.new_sampled)


def judge(evidence: Evidence, config: TrafficConfig, *, level: float, final: bool) -> Verdict | None:
    """The verdict of one look at significance ``level``; an interim look returns None unless the release fails."""
    scopes = _scopes(evidence)
    pvalues = _pvalues(scopes, config)
    adjusted = holm(pvalues)
    reasons: list[str] = []
    failed_routes: dict[str, float] = {}
    overall_failed = False
    for scope in scopes:
        tests = _failing(scope, adjusted, config, level)
        if not tests:
            continue
        if scope.name == OVERALL:
            overall_failed = True
            reasons.append(_overall_reason(scope, tests, level))
        else:
            failed_routes[scope.name] = min(adjusted[(scope.name, test)] for test in tests)
    worst = _worst_paths(evidence, failed_routes, pvalues)
    reasons[:0] = [finding.message for finding in worst if finding.failed]

    latency = None
    if final:
        latency = judge_latency(evidence.latency_new_ms or (), evidence.latency_baseline_ms or (),
                                label=config.latency_label, max_ms=config.max_latency_ms,
                                max_factor=config.max_latency_factor,
                                min_increase_ms=config.min_latency_increase_ms)
        reasons.extend(latency.failures)
    figures = _figures(evidence, config, latency.new_ms if latency else None,
                       latency.baseline_ms if latency else None)
    notes = [*(latency.notes if latency else ()), *evidence.notes]

    if reasons:
        # failed paths say it all; else the first reason, with the worst path when the errors are the problem
        message = "; ".join(f.message for f in worst if f.failed) or "; ".join(
            [reasons[0], *(f.message for f in worst[:1] if overall_failed)])
        return Verdict(status="fail", outcome="fail", message=message, reasons=(*reasons, *notes),
                       figures=figures, worst_paths=worst)
    if not final:
        return None
    if evidence.requests < config.min_requests:
        status: Literal["inconclusive", "pass"] = "inconclusive"
        message = f"inconclusive: {evidence.requests} requests"
        notes.insert(0, f"the new release answered {evidence.requests} requests; at least {config.min_requests} "
                        f"are needed to pass")
    else:
        status = "pass"
        message = f"passed: {evidence.requests} requests, {percent(figures.success_rate)} succeeded"
        if evidence.baseline_requests:
            message += f" (baseline {percent(figures.baseline_success_rate)})"
        if figures.latency_ms is not None:
            message += f", {config.latency_label} {figures.latency_ms:.0f} ms"
            if figures.baseline_latency_ms is not None:
                message += f" (baseline {figures.baseline_latency_ms:.0f} ms)"
        if not evidence.baseline_requests:
            message += "; the previous release had no traffic to compare with"
    return Verdict(status=status, outcome=outcome_of(status, config.on_inconclusive), message=message,
                   reasons=tuple(notes), figures=figures, worst_paths=worst)
