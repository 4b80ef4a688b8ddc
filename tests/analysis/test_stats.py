"""The statistical building blocks against reference values: binomial tails, bounds, the e-process, routes."""

from __future__ import annotations

import math
import random

import pytest

from deploypipe.analysis import Window, plan_windows, route_of
from deploypipe.analysis.stats import (
    binom_cdf,
    binom_sf,
    log_e_value,
    quantile_upper_index,
    rejects,
    upper_bound,
)

# Reference values computed once with scipy.stats.binom / beta.ppf and scipy.integrate.quad of the mixture.


@pytest.mark.parametrize(("k", "n", "p", "sf", "cdf"), [
    (3, 100, 0.01, 0.07937320225218046, 0.9816259635553504),
    (12, 300, 0.05, 0.8220230244269304, 0.26122365638719636),
    (0, 10, 0.3, 1.0, 0.028247524900000005),
    (50, 60, 0.5, 8.081907283078588e-08, 0.999999984574822),
    (1, 1000, 0.001, 0.6323045752290359, 0.7357589130301876),
])
def test_binomial_tails_match_the_reference(k: int, n: int, p: float, sf: float, cdf: float) -> None:
    assert binom_sf(k, n, p) == pytest.approx(sf, rel=1e-9)
    assert binom_cdf(k, n, p) == pytest.approx(cdf, rel=1e-9)


@pytest.mark.parametrize(("errors", "requests", "bound"), [(2, 50, 0.15770404761479476),
                                                             (10, 1000, 0.02004260590087893)])
def test_the_upper_bound_is_clopper_pearsons(errors: int, requests: int, bound: float) -> None:
    assert upper_bound(errors, requests, 0.01) == pytest.approx(bound, rel=1e-9)
    assert upper_bound(0, 0, 0.01) == upper_bound(5, 5, 0.01) == 1.0


@pytest.mark.parametrize(("bad", "total", "p0", "e_value"), [
    (5, 100, 0.01, 24.92515233994998), (10, 10, 0.01, 2192316871.4131594),
    (20, 200, 0.05, 20.934899897114757), (3, 10, 0.1, 3.0622710622710607),
])
def test_the_e_value_is_the_mixture_integral(bad: int, total: int, p0: float, e_value: float) -> None:
    assert math.exp(log_e_value(bad, total, p0)) == pytest.approx(e_value, rel=1e-9)


def test_a_share_at_or_below_the_null_is_no_evidence_at_all() -> None:
    assert log_e_value(1, 100, 0.01) == log_e_value(0, 0, 0.01) == 0.0


def test_a_path_failing_for_everyone_is_certain_after_a_handful_of_requests() -> None:
    assert rejects(6, 6, 0.01, 0.001 / 4)
    assert not rejects(2, 50, 0.01, 0.001)  # 2 errors in 50 requests are noise against a 1 % floor


def test_the_order_statistic_bound_needs_enough_values() -> None:
    assert quantile_upper_index(100, 0.9, 0.001) == 99
    assert quantile_upper_index(50, 0.9, 0.01) == 50
    assert quantile_upper_index(300, 0.99, 0.001) is None


def alarm_rate(share: float, p0: float, alpha: float, *, requests: int, every: int, runs: int) -> float:
    """The share of ``runs`` healthy streams (true share ``share``) the test fails at some look."""
    rng, alarms = random.Random(7), 0
    for _ in range(runs):
        bad = 0
        for n in range(1, requests + 1):
            bad += rng.random() < share
            if n % every == 0 and rejects(bad, n, p0, alpha):
                alarms += 1
                break
    return alarms / runs


def test_looking_again_and_again_fails_a_stream_at_its_null_share_at_most_alpha_of_the_time() -> None:
    assert alarm_rate(0.05, 0.05, 0.1, requests=500, every=5, runs=300) <= 0.1


def test_a_stream_better_than_the_null_never_builds_evidence_against_it() -> None:
    assert alarm_rate(0.02, 0.05, 0.1, requests=2000, every=100, runs=100) == 0.0


@pytest.mark.parametrize(("method", "path", "route"), [
    ("post", "/notes", "POST /notes"), ("GET", "/notes/42?page=2", "GET /notes/{id}"),
    ("GET", "/u/550e8400-e29b-41d4-a716-446655440000/x", "GET /u/{id}/x"), ("GET", "", "GET /"),
    ("GET", "/v1/notes", "GET /v1/notes"),
])
def test_routes_group_paths_by_method_and_shape(method: str, path: str, route: str) -> None:
    assert route_of(method, path) == route


def test_metrics_windows_sit_on_the_bucket_grid_and_logs_windows_start_at_the_switch() -> None:
    windows = plan_windows(1000.0 + 7, window_s=60, resolution_s=30, baseline_s=120)
    assert windows.new == Window(1020.0, 1080.0) and windows.new_logs == Window(1007.0, 1080.0)
    assert windows.baseline == Window(900.0, 990.0) and windows.baseline_logs == Window(887.0, 1007.0)
    with pytest.raises(ValueError, match="after the switch"):
        plan_windows(1000.0, window_s=60, resolution_s=30, baseline=Window(900.0, 1010.0))
