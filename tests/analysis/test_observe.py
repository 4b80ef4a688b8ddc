"""The observation loop on a fake clock: verdicts on simulated traffic, the request budget, the logs, retries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest
from traffic_fixtures import FAST, ROUTES, SWITCH, BoundedClock, service

from deploypipe.analysis import TrafficConfig, Verdict, Window, observe
from deploypipe.analysis.judge import NO_BASELINE
from deploypipe.analysis.simulation import Route, SimulatedService
from deploypipe.errors import AuthenticationError, RateLimitedError

BROKEN_POST = tuple(Route(r.method, r.path, r.share, error_rate_after=1.0) if r.path == "/notes" and r.method == "POST"
                    else r for r in ROUTES)  # POST /notes: 15 % of 10 req/s = 1.5 req/s, every one a 500


FLAKY = (*ROUTES[:3], Route("GET", "/health", 0.02), Route("GET", "/flaky", 0.03, 0.05, 0.05))
SLOW_NOTES = tuple(Route(r.method, r.path, r.share, latency_ms=6.0, latency_factor=100.0)
                   if (r.method, r.path) == ("GET", "/notes") else r for r in ROUTES)


def watch(source: SimulatedService, clock: BoundedClock, config: TrafficConfig = FAST,
          events: list[tuple[str, dict[str, Any]]] | None = None) -> Verdict:
    def journal(kind: str) -> Any:
        return None if events is None else lambda figures: events.append((kind, figures))

    return observe(source, config, switched_at=source.scenario.switched_at, clock=clock.time, sleep=clock.sleep,
                   on_look=journal("traffic_look"), on_baseline=journal("traffic_baseline"))


def true_counts(source: SimulatedService, window: Window) -> tuple[int, int]:
    inside = source.requests_in(window)
    return len(inside), sum(1 for i in inside if source.status[i] >= 500)


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
    Case("a slower release", {"latency_ms_after": 400.0}, "fail", "GET /: p90 latency "),
    Case("a path failing 5 % before and after", {}, "pass", "passed: ", routes=FLAKY),
    Case("one path 100x slower", {}, "fail", "GET /notes: p90 latency ", routes=SLOW_NOTES),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_kind_of_simulated_release_gets_its_verdict(case: Case) -> None:
    clock = BoundedClock(SWITCH)
    verdict = watch(service(clock, routes=case.routes, **case.scenario), clock, case.config)
    assert (verdict.status, verdict.message[:len(case.message)]) == (case.status, case.message), verdict.reasons


def test_a_path_failing_for_everyone_fails_at_the_first_look_that_reads_five_of_its_requests() -> None:
    clock = BoundedClock(SWITCH)
    verdict = watch(service(clock, routes=BROKEN_POST), clock)  # 1.5 req/s, logs read up to 3 s before now
    assert verdict.early and verdict.looks == 3 and verdict.elapsed_s < 2 * FAST.interval_s + 1
    assert re.fullmatch(r"POST /notes: (\d+) of \1 answered 500 since 12:03:0\d \(baseline \d of \d+\)",
                        verdict.message), verdict.message


def test_at_renders_limits_a_path_failing_for_everyone_fails_within_two_looks_before_the_baseline_is_read() -> None:
    clock = BoundedClock(SWITCH)
    routes = (Route("GET", "/", 0.8), Route("POST", "/notes", 0.2, error_rate_after=1.0))  # 2 req/s all 500
    source = service(clock, routes=routes, metrics_lag_s=60.0, logs_lag_s=5.0)  # 10 req/s: 90 baseline pages
    verdict = watch(source, clock, TrafficConfig())
    assert verdict.early and verdict.looks <= 2 and verdict.elapsed_s <= 60, (verdict.looks, verdict.elapsed_s)
    assert verdict.message.startswith("POST /notes: ") and not verdict.worst_paths[0].baseline_read


def test_a_healthy_release_is_judged_after_the_window_and_the_late_data_wait_only() -> None:
    clock = BoundedClock(SWITCH)
    verdict = watch(service(clock), clock)
    assert not verdict.early
    assert FAST.window_s <= verdict.elapsed_s <= FAST.window_s + FAST.late_data_s + 2 * FAST.interval_s


@pytest.mark.parametrize("failures", [{}, {"metrics": 2}, {"logs": 2}, {"metrics": 1, "logs": 1}, {"metrics": 10**6}])
@pytest.mark.parametrize("routes", [ROUTES, BROKEN_POST], ids=["healthy", "broken"])
def test_metrics_come_at_most_once_an_interval_and_log_pages_at_most_at_their_rate(
        failures: dict[str, int], routes: tuple[Route, ...]) -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, routes=routes, metrics_lag_s=8.0)
    source.failures = dict(failures)
    verdict = watch(source, clock)
    for kind, gap in (("metrics", FAST.interval_s), ("logs", FAST.logs_gap_s)):
        times = source.calls_of(kind)
        assert all(later - earlier >= gap for earlier, later in pairwise(times)), (kind, times)
    assert (verdict.metrics_requests, verdict.logs_requests) == (len(source.calls_of("metrics")),
                                                                len(source.calls_of("logs")))


@pytest.mark.parametrize("rate_per_s", [10.0, 30.0])
def test_every_request_log_entry_of_both_windows_is_read_exactly_once_despite_late_logs(rate_per_s: float) -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, rate_per_s=rate_per_s, logs_lag_s=2.5)  # pages overflow: every page is followed
    verdict = watch(source, clock)
    assert verdict.status == "pass", verdict.reasons
    window = Window(SWITCH, SWITCH + FAST.window_s)
    baseline = Window(SWITCH - FAST.baseline_s, SWITCH)
    for inside in (source.requests_in(window), source.requests_in(baseline)):
        assert [source.log_reads[i] for i in inside] == [1] * len(inside)
    assert (verdict.figures.requests, verdict.figures.errors) == true_counts(source, window)


def test_a_thin_baseline_is_widened_backwards_until_each_path_has_enough_requests_within_the_bound() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, routes=FLAKY, rate_per_s=2.0)  # GET /flaky: 18 requests in 300 s, 54 in 900 s
    verdict = watch(source, clock)
    assert "baseline request logs from -900 s before the switch" in verdict.reasons
    counts = [source.log_reads[i] for i in source.requests_in(Window(SWITCH - 900, SWITCH))]
    assert counts == [1] * len(counts)


def test_the_baseline_never_reaches_back_before_the_previous_release_went_live() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, routes=FLAKY, rate_per_s=2.0)
    verdict = observe(source, FAST, switched_at=SWITCH, clock=clock.time, sleep=clock.sleep,
                      previous_live_at=SWITCH - 200)
    assert [i for i in source.log_reads if source.at[i] < SWITCH - 200] == []
    assert verdict.figures.baseline_requests == len(source.requests_in(Window(SWITCH - 200, SWITCH)))


def test_the_baseline_is_journalled_once_when_read_whole_and_each_look_carries_latency() -> None:
    clock = BoundedClock(SWITCH)
    events: list[tuple[str, dict[str, Any]]] = []
    watch(service(clock, routes=SLOW_NOTES), clock, events=events)
    kinds = [kind for kind, _ in events]
    assert kinds.count("traffic_baseline") == 1 and "traffic_look" in kinds
    baseline = events[kinds.index("traffic_baseline")][1]
    assert set(baseline) == {"start", "end", "requests", "errors", "buckets"} and baseline["end"] == SWITCH
    assert baseline["requests"] == sum(b["requests"] for b in baseline["buckets"]) > 0
    assert all(b["start"] < SWITCH for b in baseline["buckets"])
    look = [figures for kind, figures in events if kind == "traffic_look"][-1]
    assert {"look", "at", "elapsed_s", "requests", "errors", "baseline_requests", "baseline_errors", "paths",
            "latency_ms", "baseline_latency_ms", "path_latency"} == set(look)
    notes = next(p for p in look["path_latency"] if p["route"] == "GET /notes")
    assert notes["ms"] > 50 * notes["baseline_ms"]


def test_a_first_release_journals_an_empty_baseline_and_says_it_was_not_compared() -> None:
    clock = BoundedClock(SWITCH)
    events: list[tuple[str, dict[str, Any]]] = []
    verdict = watch(service(clock, traffic_before=False), clock, events=events)
    assert next(e for e in events if e[0] == "traffic_baseline") == ("traffic_baseline", {"start": SWITCH - FAST.baseline_s, "end": SWITCH, "requests": 0,
                                              "errors": 0, "buckets": []})
    assert not verdict.compared and verdict.message.endswith(NO_BASELINE)


def test_a_first_release_reads_nothing_before_its_switch_even_when_something_answered_there() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)  # traffic before the switch: e.g. the local Render's 503s before anything was live
    verdict = observe(source, FAST, switched_at=SWITCH, clock=clock.time, sleep=clock.sleep, first_release=True)
    assert [i for i in source.log_reads if source.at[i] < SWITCH] == []
    assert verdict.figures.baseline_requests == 0
    assert not verdict.compared and verdict.message.endswith(NO_BASELINE)


def test_late_metrics_are_waited_for_until_the_window_is_complete() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, metrics_lag_s=12.0)
    source.failures = {"logs": 10**6}  # the metrics count
    verdict = watch(source, clock, FAST.model_copy(update={"late_data_s": 30}))
    new_window = Window(SWITCH, SWITCH + FAST.window_s)
    assert (verdict.figures.requests, verdict.figures.errors) == true_counts(source, new_window)
    assert not any("late data" in reason for reason in verdict.reasons)


def test_the_wait_for_late_data_is_bounded_and_the_verdict_says_what_was_missing() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, metrics_lag_s=120.0)
    source.failures = {"logs": 10**6}  # the metrics count
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


def test_metrics_that_never_come_back_leave_the_counts_to_the_complete_logs_with_the_reason() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)
    source.failures = {"metrics": 10**6}
    verdict = watch(source, clock)
    assert verdict.status == "pass" and verdict.figures.requests > 500
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


def test_the_simulation_is_reproducible_from_its_seed() -> None:
    first, second = (service(BoundedClock(SWITCH), seed=7) for _ in range(2))
    assert (first.at, first.status, first.latency_ms) == (second.at, second.status, second.latency_ms)


def test_an_observation_started_late_fails_at_its_first_look_on_the_baseline_read_by_then() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock, routes=BROKEN_POST)
    clock.sleep(20)  # the stage noticed the switch 20 s late
    verdict = watch(source, clock)
    assert verdict.early and verdict.looks == 1
    assert re.fullmatch(r"POST /notes: \d+ of \d+ answered 500 since 12:03:\d\d \(baseline \d of \d+\)",
                        verdict.message), verdict.message


def test_a_read_that_failed_once_for_good_and_then_recovered_leaves_no_note() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)
    source.failures = {"metrics": FAST.retry_attempts}  # every attempt of one look fails, the next look succeeds
    verdict = watch(source, clock)
    assert verdict.status == "pass" and not [reason for reason in verdict.reasons if "unavailable" in reason]


def test_a_monotonic_clock_is_refused_because_render_dates_its_data() -> None:
    clock = BoundedClock(SWITCH)
    source = service(clock)
    with pytest.raises(ValueError, match="pass clock=time.time"):
        observe(source, FAST, switched_at=12345.0, clock=lambda: 12345.0, sleep=clock.sleep)


# Light traffic (the local default's): every request-log page is complete, so the logs are the exact counts.
LIGHT = TrafficConfig(interval_s=2, resolution_s=30, window_s=12, baseline_s=20, max_baseline_s=20, late_data_s=4,
                      min_requests=20, logs_lag_s=1, logs_requests_per_min=60)


def test_with_complete_request_logs_a_short_window_ends_at_the_window_not_at_the_metrics_bucket_grid() -> None:
    clock = BoundedClock(SWITCH + 7)  # the switch lands mid-bucket: the metrics window would start 23 s later
    source = service(clock, rate_per_s=4.0)
    verdict = watch(source, clock, LIGHT)
    assert verdict.status == "pass", verdict.reasons
    assert LIGHT.window_s <= verdict.elapsed_s <= LIGHT.window_s + LIGHT.logs_lag_s + 2 * LIGHT.interval_s
    assert any("complete request logs" in reason for reason in verdict.reasons)
    exact = Window(source.scenario.switched_at, source.scenario.switched_at + verdict.elapsed_s - LIGHT.logs_lag_s)
    requests, errors = true_counts(source, exact)
    assert abs(verdict.figures.requests - requests) <= 8 and verdict.figures.errors == errors


def test_once_the_logs_fall_behind_their_page_budget_the_counts_come_from_the_metrics_on_the_bucket_grid() -> None:
    clock = BoundedClock(SWITCH + 7)
    source = service(clock, rate_per_s=120.0)  # 240 entries per 2 s look, 2 pages of 100 allowed
    verdict = watch(source, clock, LIGHT)
    assert verdict.figures.logs_sampled
    assert verdict.elapsed_s >= 53 - 7  # waited for the bucket grid: the metrics window ends at SWITCH + 60
    assert not any("complete request logs" in reason for reason in verdict.reasons)


def test_a_baseline_shorter_than_a_bucket_has_no_metrics_window_but_its_logs_still_count() -> None:
    clock = BoundedClock(SWITCH + 20)  # 20 s into a bucket: a 15 s baseline starts and ends inside one bucket
    source = service(clock, rate_per_s=4.0)
    verdict = watch(source, clock, LIGHT.model_copy(update={"baseline_s": 15}))
    assert verdict.status == "pass", verdict.reasons
    assert verdict.figures.baseline_requests > 0  # from the complete baseline logs
