"""The observation loop on a fake clock: verdicts on simulated traffic, the request budget, late data, retries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from traffic_fixtures import FAST, ROUTES, SWITCH, BoundedClock, service

from deploypipe.analysis import TrafficConfig, Verdict, Window, observe
from deploypipe.analysis.simulation import Route, SimulatedService
from deploypipe.errors import AuthenticationError, RateLimitedError

BROKEN_POST = tuple(Route(r.method, r.path, r.share, error_rate_after=1.0) if r.path == "/notes" and r.method == "POST"
                    else r for r in ROUTES)  # POST /notes: 15 % of 10 req/s = 1.5 req/s, every one a 500


def watch(source: SimulatedService, clock: BoundedClock, config: TrafficConfig = FAST) -> Verdict:
    return observe(source, config, switched_at=source.scenario.switched_at, clock=clock.time, sleep=clock.sleep)


def true_counts(source: SimulatedService, window: Window) -> tuple[int, int]:
    inside = (source.at >= window.start) & (source.at < window.end)
    return int(inside.sum()), int((source.status[inside] >= 500).sum())


@dataclass(frozen=True)
class Case:
    name: str
    scenario: dict[str, Any]
    status: str
    message: str
    config: TrafficConfig = FAST
    routes: tuple[Route, ...] = ROUTES
    notes: tuple[str, ...] = field(default=())


CASES = [
    Case("healthy", {}, "pass", "passed: "),
    Case("broken path", {}, "fail", "POST /notes: ", routes=BROKEN_POST),
    Case("noisy: 0.5 % background 5xx and log-normal latency", {"latency_sigma": 0.8}, "pass", "passed: "),
    Case("sparse", {"rate_per_s": 0.5}, "inconclusive", "inconclusive: "),
    Case("late data: metrics up to 12 s late", {"metrics_lag_s": 12.0, "logs_lag_s": 3.0}, "pass", "passed: "),
    Case("no traffic before the deploy (the local default) still names a broken path", {"traffic_before": False},
         "fail", "POST /notes: ", routes=BROKEN_POST),
    Case("a slower release", {"latency_ms_after": 400.0}, "fail", "p99 latency"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_kind_of_simulated_release_gets_its_verdict(case: Case) -> None:
    clock = BoundedClock(SWITCH)
    verdict = watch(service(clock, routes=case.routes, **case.scenario), clock, case.config)
    assert (verdict.status, verdict.message[:len(case.message)]) == (case.status, case.message), verdict.reasons


def test_a_path_failing_for_everyone_fails_the_release_at_the_first_look_after_the_switch() -> None:
    clock = BoundedClock(SWITCH)
    verdict = watch(service(clock, routes=BROKEN_POST), clock)
    assert verdict.early and verdict.elapsed_s <= FAST.interval_s
    assert re.fullmatch(r"POST /notes: (\d+) of \1 answered 500 since 12:03:0\d \(baseline 0 of \d+\)",
                        verdict.message), verdict.message


def test_a_healthy_release_is_judged_after_the_window_and_the_late_data_wait_only() -> None:
    clock = BoundedClock(SWITCH)
    verdict = watch(service(clock), clock)
    assert not verdict.early
    assert FAST.window_s <= verdict.elapsed_s <= FAST.window_s + FAST.late_data_s + 2 * FAST.interval_s


@pytest.mark.parametrize("failures", [{}, {"metrics": 2}, {"logs": 2}, {"metrics": 1, "logs": 1}, {"metrics": 10**6}])
@pytest.mark.parametrize("routes", [ROUTES, BROKEN_POST], ids=["healthy", "broken"])
def test_each_interval_has_at_most_one_metrics_and_one_logs_request(failures: dict[str, int],
                                                                     routes: tuple[Route, ...]) -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, routes=routes, metrics_lag_s=8.0)
    source.failures = dict(failures)
    verdict = watch(source, clock)
    for kind in ("metrics", "logs"):
        times = source.calls_of(kind)
        assert all(later - earlier >= FAST.interval_s for earlier, later in pairwise(times)), (kind, times)
    assert (verdict.metrics_requests, verdict.logs_requests) == (len(source.calls_of("metrics")),
                                                                len(source.calls_of("logs")))
    assert verdict.looks <= FAST.planned_looks()


def test_late_metrics_are_waited_for_until_the_window_is_complete() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, metrics_lag_s=12.0)
    verdict = watch(source, clock)
    new_window = Window(SWITCH, SWITCH + FAST.window_s)
    assert (verdict.figures.requests, verdict.figures.errors) == true_counts(source, new_window)
    assert not any("late data" in reason for reason in verdict.reasons)


def test_the_wait_for_late_data_is_bounded_and_the_verdict_says_what_was_missing() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, metrics_lag_s=120.0)
    verdict = watch(source, clock)
    assert verdict.elapsed_s <= FAST.window_s + FAST.late_data_s + 2 * FAST.interval_s
    assert verdict.figures.requests < true_counts(source, Window(SWITCH, SWITCH + FAST.window_s))[0]
    assert any(reason.startswith("late data: ") for reason in verdict.reasons)


def test_a_transient_error_is_retried_in_the_next_interval_slot() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)
    source.failures = {"metrics": 1}
    verdict = watch(source, clock)
    first, second = source.calls_of("metrics")[:2]
    assert second - first == FAST.interval_s
    assert verdict.status == "pass" and not any("unavailable" in reason for reason in verdict.reasons)


def test_a_rate_limit_waits_at_least_what_render_asked() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)
    calls = {"n": 0}
    counts = source.request_counts

    def limited(window: Window, resolution_s: int):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            source.calls.append(("metrics", clock.time()))
            raise RateLimitedError("429", retry_after_s=12, status_code=429)
        return counts(window, resolution_s)

    source.request_counts = limited  # type: ignore[method-assign]
    watch(source, clock)
    times = source.calls_of("metrics")
    assert times[2] - times[1] == 12


def test_metrics_that_never_come_back_make_a_healthy_release_inconclusive_with_the_reason() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)
    source.failures = {"metrics": 10**6}
    verdict = watch(source, clock)
    assert (verdict.status, verdict.outcome, verdict.message) == ("inconclusive", "warn", "inconclusive: 0 requests")
    assert any(reason.startswith("request counts unavailable: ") for reason in verdict.reasons)


def test_request_logs_still_name_the_broken_path_while_metrics_are_down() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, routes=BROKEN_POST)
    source.failures = {"metrics": 10**6}
    verdict = watch(source, clock)
    assert verdict.status == "fail" and verdict.message.startswith("POST /notes: ")


def test_an_error_that_is_not_transient_ends_the_observation() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)

    def refused(window: Window, limit: int):  # type: ignore[no-untyped-def]
        raise AuthenticationError("401", status_code=401)

    source.request_logs = refused  # type: ignore[method-assign]
    with pytest.raises(AuthenticationError):
        watch(source, clock)


@pytest.mark.parametrize(("policy", "outcome"), [("pass", "pass"), ("warn", "warn"), ("fail", "fail")])
def test_too_little_traffic_ends_inconclusive_and_follows_on_inconclusive(policy: str, outcome: str) -> None:
    clock = BoundedClock(SWITCH)
    config = FAST.model_copy(update={"on_inconclusive": policy})
    verdict = watch(service(clock, rate_per_s=0.5), clock, config)
    assert (verdict.status, verdict.outcome) == ("inconclusive", outcome)
    assert verdict.message == f"inconclusive: {verdict.figures.requests} requests" and verdict.figures.requests < 100


def test_an_overflowing_log_page_makes_the_per_path_figures_a_sample_and_says_so() -> None:
    clock = BoundedClock(SWITCH)
    verdict = watch(service(clock, rate_per_s=40.0, routes=BROKEN_POST), clock)
    assert verdict.status == "fail" and verdict.figures.logs_sampled
    assert verdict.logs_requests <= verdict.looks


def test_the_simulation_is_reproducible_from_its_seed() -> None:
    first, second = (service(BoundedClock(SWITCH), seed=7) for _ in range(2))
    assert np.array_equal(first.at, second.at) and np.array_equal(first.status, second.status)


def test_an_observation_started_late_reads_the_new_release_first_and_fails_at_its_first_look() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, routes=BROKEN_POST)
    clock.sleep(20)  # the stage noticed the switch 20 s late
    verdict = watch(source, clock)
    assert verdict.early and verdict.looks == 1 and verdict.elapsed_s == 20
    assert verdict.message.startswith("POST /notes: ") and verdict.message.endswith("(baseline not read)")


def test_a_read_that_failed_once_for_good_and_then_recovered_leaves_no_note() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)
    source.failures = {"metrics": FAST.retry_attempts}  # every attempt of one look fails, the next look succeeds
    verdict = watch(source, clock)
    assert verdict.status == "pass" and verdict.reasons == ()


def test_a_monotonic_clock_is_refused_because_render_dates_its_data() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)
    with pytest.raises(ValueError, match="pass clock=time.time"):
        observe(source, FAST, switched_at=12345.0, clock=lambda: 12345.0, sleep=clock.sleep)


# Light traffic (the local default's): every request-log page is complete, so the logs are the exact counts.
LIGHT = TrafficConfig(interval_s=2, resolution_s=30, window_s=12, baseline_s=20, late_data_s=4, min_requests=20)


def test_with_complete_request_logs_a_short_window_ends_at_the_window_not_at_the_metrics_bucket_grid() -> None:
    clock = BoundedClock(SWITCH + 7)  # the switch lands mid-bucket: the metrics window would start 23 s later
    source = service(clock, rate_per_s=4.0)
    verdict = watch(source, clock, LIGHT)
    assert verdict.status == "pass", verdict.reasons
    assert LIGHT.window_s <= verdict.elapsed_s <= LIGHT.window_s + 2 * LIGHT.interval_s
    assert any("complete request logs" in reason for reason in verdict.reasons)
    exact = Window(source.scenario.switched_at, source.scenario.switched_at + verdict.elapsed_s)
    requests, errors = true_counts(source, exact)
    assert abs(verdict.figures.requests - requests) <= 8 and verdict.figures.errors == errors


def test_once_a_log_page_overflows_the_counts_come_from_the_metrics_and_the_bucket_grid_is_awaited() -> None:
    clock = BoundedClock(SWITCH + 7)
    source = service(clock, rate_per_s=40.0)  # 800 requests in the 20 s baseline: its one log page overflows
    verdict = watch(source, clock, LIGHT)
    assert verdict.elapsed_s >= 23 + LIGHT.resolution_s  # waited for a whole bucket after the switch
    assert not any("complete request logs" in reason for reason in verdict.reasons)


def test_a_baseline_shorter_than_a_bucket_has_no_metrics_window_but_its_logs_still_count() -> None:
    clock = BoundedClock(SWITCH + 20)  # 20 s into a bucket: a 15 s baseline starts and ends inside one bucket
    source = service(clock, rate_per_s=4.0)
    verdict = watch(source, clock, LIGHT.model_copy(update={"baseline_s": 15}))
    assert verdict.status == "pass", verdict.reasons
    assert verdict.figures.baseline_requests > 0  # from the complete baseline logs
