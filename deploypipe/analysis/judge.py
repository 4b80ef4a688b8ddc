"""Turn the evidence of one look into a verdict: which scopes (service, paths) failed what the release changed.

A scope is the whole service or one route. Each is judged by sequential tests (``stats``: a mixture SPRT valid
at every look) of one null share ``p0`` each, and fails a test only with at least ``min_errors`` bad requests:

* errors: ``p0`` is the floor ``1 - min_success_rate`` where the baseline met it (its observed share was at
  most the floor) or where the scope has no baseline (the service's first release, a new route); else, and
  always for an under-sampled route (fewer than ``min_baseline_requests``), the baseline's upper bound plus
  ``error_margin``: a scope already failing before the switch fails only for getting worse.
* latency (from the request logs' response times): a request is slow when it is above ``max_latency_factor`` x
  the baseline's upper bound of its ``path_latency_quantile`` (p75 or p50 when the baseline is too small to bound
  it; and ``min_latency_increase_ms`` above it); the slow share is tested against ``1 -`` that quantile.
  Where the baseline kept ``max_latency_ms`` at ``latency_quantile`` (or has no data), the share above
  ``max_latency_ms`` is tested against ``1 - latency_quantile``. Logs without response times fall back to the
  metrics quantile at the last look.

Until the baseline's request logs are read whole (the first looks), a scope is judged on the part read so far,
and only by the errors floor, where that part has ``min_baseline_requests`` and met the floor: the floor's
``p0`` does not depend on the baseline, so checking it at the looks the part chooses keeps its bound; the tests
whose ``p0`` or limit comes from the baseline wait for the whole of it.

The significance is split so that the chance of any false failure is at most ``significance``: half for the
service, half for the routes, the j-th route to appear getting ``6 / (pi^2 j^2)`` of it (the series sums to 1,
so routes may appear at any time); within a scope, half for errors (baseline bound, test) and half for latency
(baseline bound, comparison, floor). An interim look (``final=False``) only ever fails a release; the last look
passes, or says "inconclusive: N requests" below ``min_requests``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal

from deploypipe.analysis.config import TrafficConfig
from deploypipe.analysis.evidence import Evidence
from deploypipe.analysis.latency import judge_latency, sorted_quantile
from deploypipe.analysis.paths import PathCounts, path_message
from deploypipe.analysis.stats import log_e_value, quantile_upper_index, rejects, upper_bound
from deploypipe.analysis.verdict import Figures, PathFinding, Verdict, outcome_of, percent

__all__ = ["MAX_WORST_PATHS", "NO_BASELINE", "OVERALL", "Finding", "judge", "judge_paths", "judge_scope",
           "scope_alpha"]

OVERALL = "the service"
MAX_WORST_PATHS = 3
NO_BASELINE = "no baseline: judged against the floors only"


def scope_alpha(significance: float, order: int) -> float:
    """The service's share (``order`` 0) or the ``order``-th route's (from 1) of the significance."""
    return significance / 2 if order == 0 else significance / 2 * 6 / (math.pi ** 2 * order ** 2)


@dataclass(frozen=True)
class Finding:
    """What one scope's tests found: the reasons it failed (empty: it did not) and how strong the evidence is."""

    failures: tuple[str, ...]
    evidence: float  # the largest log e-value of its tests
    latency_ms: float | None
    baseline_latency_ms: float | None


def _error_null(counts: PathCounts, base: PathCounts, config: TrafficConfig, alpha: float,
                path: bool) -> tuple[float, bool]:
    """``p0`` of the errors test and whether it is the floor."""
    floor = config.max_error_rate
    if base.requests == 0:
        return floor, True
    if base.errors <= floor * base.requests and not (path and base.requests < config.min_baseline_requests):
        return floor, True
    return min(1.0, upper_bound(base.errors, base.requests, alpha) + config.error_margin), False


def judge_scope(name: str, counts: PathCounts, base: PathCounts, config: TrafficConfig, alpha: float, *,
                path: bool, early: bool = False) -> Finding:
    """The tests of one scope at significance ``alpha`` (``counts`` of the new release, ``base`` of the baseline).

    ``early``: ``base`` is the part of the baseline read so far; only the errors floor runs (its ``p0`` does not
    depend on the baseline), and only where that part has ``min_baseline_requests`` and met the floor.
    """
    failures: list[str] = []
    p0, floor = _error_null(counts, base, config, alpha / 4, path)
    strength = log_e_value(counts.errors, counts.requests, p0)
    tested = not early or (floor and base.requests >= config.min_baseline_requests)
    if tested and counts.errors >= config.min_errors and rejects(counts.errors, counts.requests, p0, alpha / 4):
        failures.append(_error_reason(name, counts, base, config, floor=floor, path=path))
    new_sorted, base_sorted = counts.sorted_ms(), base.sorted_ms()
    under_sampled = path and 0 < base.requests < config.min_baseline_requests
    compared = _comparison_quantile(len(base_sorted), config, alpha / 6) if new_sorted and not early else None
    if compared is not None:
        q, rank = compared
        upper = base_sorted[rank - 1]
        limit = max(upper * config.max_latency_factor, upper + config.min_latency_increase_ms)
        slow = len(new_sorted) - bisect.bisect_right(new_sorted, limit)
        strength = max(strength, log_e_value(slow, len(new_sorted), 1 - q))
        if slow >= config.min_errors and rejects(slow, len(new_sorted), 1 - q, alpha / 6):
            failures.append(f"{name}: p{q * 100:g} latency {sorted_quantile(new_sorted, q):.0f} ms against the "
                            f"baseline's {sorted_quantile(base_sorted, q):.0f} ms ({slow} of {len(new_sorted)} "
                            f"requests above {limit:.0f} ms)")
    base_top = sorted_quantile(base_sorted, config.latency_quantile)
    if counts.ms and not early and not under_sampled and (base_top is None or base_top <= config.max_latency_ms):
        slow = len(new_sorted) - bisect.bisect_right(new_sorted, config.max_latency_ms)
        null = 1 - config.latency_quantile
        strength = max(strength, log_e_value(slow, len(counts.ms), null))
        if slow >= config.min_errors and rejects(slow, len(counts.ms), null, alpha / 6):
            top = sorted_quantile(new_sorted, config.latency_quantile) or 0.0
            failures.append(f"{name}: {config.latency_label} {top:.0f} ms above the {config.max_latency_ms:.0f} ms "
                            f"bound ({slow} of {len(counts.ms)} requests above {config.max_latency_ms:.0f} ms)")
    return Finding(tuple(failures), strength, sorted_quantile(new_sorted, config.path_latency_quantile),
                   sorted_quantile(base_sorted, config.path_latency_quantile))


def _comparison_quantile(count: int, config: TrafficConfig, alpha: float) -> tuple[float, int] | None:
    """The quantile a latency comparison uses and its baseline rank: ``path_latency_quantile``, or p75 or p50
    when the baseline has too few requests to bound it (a choice made on the baseline's size alone)."""
    for q in (config.path_latency_quantile, *(q for q in (0.75, 0.5) if q < config.path_latency_quantile)):
        rank = quantile_upper_index(count, q, alpha) if count else None
        if rank is not None:
            return q, rank
    return None


def _error_reason(name: str, counts: PathCounts, base: PathCounts, config: TrafficConfig, *, floor: bool,
                  path: bool) -> str:
    if path:
        return path_message(name, counts, base)
    text = (f"{counts.errors} of {counts.requests} requests answered 5xx: success rate "
            f"{percent(counts.success_rate)}")
    if base.requests == 0:
        return f"{text}, below the {percent(config.min_success_rate)} floor"
    against = (f"the previous release's {percent(base.success_rate)} ({base.errors} of {base.requests})")
    return f"{text}, below the {percent(config.min_success_rate)} floor that {against} kept" if floor else (
        f"{text} against {against}")


def _service(evidence: Evidence) -> tuple[PathCounts, PathCounts]:
    """The service's counts (metrics or complete logs) with every response time of the logs."""
    paths = evidence.paths
    new = PathCounts(requests=evidence.requests, errors=evidence.errors, ms=paths.total_new.ms,
                     _ordered=paths.total_new.sorted_ms())
    base = PathCounts(requests=evidence.baseline_requests, errors=evidence.baseline_errors,
                      ms=paths.total_baseline.ms, _ordered=paths.total_baseline.sorted_ms())
    return new, base


def _finding(route: str, counts: PathCounts, evidence: Evidence, found: Finding) -> PathFinding:
    base = evidence.paths.baseline_of(route)
    message = found.failures[0] if found.failures else path_message(route, counts, base)
    return PathFinding(route=route, requests=counts.requests, errors=counts.errors, status=counts.status_text(),
                       since=counts.first_error_at, baseline_requests=base.requests, baseline_errors=base.errors,
                       baseline_read=evidence.paths.baseline_read, failed=bool(found.failures), message=message,
                       latency_ms=found.latency_ms, baseline_latency_ms=found.baseline_latency_ms)


def judge_paths(evidence: Evidence, config: TrafficConfig) -> dict[str, Finding]:
    """Each route's finding, in the order the routes appeared."""
    early = not evidence.paths.baseline_read
    return {route: judge_scope(route, counts, evidence.paths.baseline_of(route), config,
                               scope_alpha(config.significance, order), path=True, early=early)
            for order, (route, counts) in enumerate(evidence.paths.new.items(), start=1)}


def _figures(evidence: Evidence, config: TrafficConfig, new_ms: float | None, base_ms: float | None) -> Figures:
    def rate(requests: int, errors: int) -> float | None:
        return None if requests == 0 else 1 - errors / requests

    return Figures(requests=evidence.requests, errors=evidence.errors,
                   success_rate=rate(evidence.requests, evidence.errors),
                   baseline_requests=evidence.baseline_requests, baseline_errors=evidence.baseline_errors,
                   baseline_success_rate=rate(evidence.baseline_requests, evidence.baseline_errors),
                   latency_quantile=config.latency_quantile, latency_ms=new_ms, baseline_latency_ms=base_ms,
                   logs_sampled=evidence.paths.behind)


def judge(evidence: Evidence, config: TrafficConfig, *, final: bool) -> Verdict | None:
    """The verdict of one look; an interim look returns None unless the release fails."""
    new, base = _service(evidence)
    service = judge_scope(OVERALL, new, base, config, scope_alpha(config.significance, 0), path=False,
                          early=not evidence.paths.baseline_read)
    paths = judge_paths(evidence, config)
    ranked = sorted(((route, found) for route, found in paths.items()
                     if found.failures or evidence.paths.new[route].errors),
                    key=lambda item: (not item[1].failures, -item[1].evidence, -evidence.paths.new[item[0]].errors))
    worst = tuple(_finding(route, evidence.paths.new[route], evidence, found)
                  for route, found in ranked[:MAX_WORST_PATHS])
    reasons = [reason for _, found in ranked if found.failures for reason in found.failures]
    reasons.extend(service.failures)
    new_ms = sorted_quantile(new.sorted_ms(), config.latency_quantile)
    base_ms = sorted_quantile(base.sorted_ms(), config.latency_quantile)
    notes = list(evidence.notes)
    if not new.ms and final:  # no response times in the logs: Render's metrics quantile, once
        latency = judge_latency(evidence.latency_new_ms or (), evidence.latency_baseline_ms or (),
                                label=config.latency_label, max_ms=config.max_latency_ms,
                                max_factor=config.max_latency_factor, min_increase_ms=config.min_latency_increase_ms)
        reasons.extend(latency.failures)
        notes.extend(latency.notes)
        new_ms, base_ms = latency.new_ms, latency.baseline_ms
    figures = _figures(evidence, config, new_ms, base_ms)
    compared = evidence.baseline_requests > 0
    if not compared:
        notes.insert(0, NO_BASELINE)
    suffix = "" if compared else f"; {NO_BASELINE}"

    if reasons:
        path_failures = [reason for _, found in ranked for reason in found.failures[:1]]
        message = "; ".join(path_failures) or "; ".join([reasons[0], *(f.message for f in worst[:1])])
        return Verdict(status="fail", outcome="fail", message=message + suffix, reasons=(*reasons, *notes),
                       figures=figures, worst_paths=worst, compared=compared)
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
        if compared:
            message += f" (baseline {percent(figures.baseline_success_rate)})"
        if figures.latency_ms is not None:
            message += f", {config.latency_label} {figures.latency_ms:.0f} ms"
            if figures.baseline_latency_ms is not None:
                message += f" (baseline {figures.baseline_latency_ms:.0f} ms)"
    return Verdict(status=status, outcome=outcome_of(status, config.on_inconclusive), message=message + suffix,
                   reasons=tuple(notes), figures=figures, worst_paths=worst, compared=compared)
