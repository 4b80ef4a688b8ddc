"""The statistical building blocks: exact one-sided tests, the confidence bound, Holm, routes and windows."""

from __future__ import annotations

import numpy as np
import pytest

from deploypipe.analysis import Window, plan_windows, route_of
from deploypipe.analysis.stats import (
    exceeds_error_rate,
    holm,
    success_upper_bound,
    worse_than_baseline,
)


def test_two_errors_in_fifty_requests_are_not_evidence_against_a_99_percent_success_rate() -> None:
    assert exceeds_error_rate(2, 50, 0.01) > 0.05
    assert success_upper_bound(2, 50, 0.99) > 0.99


def test_a_path_failing_for_everyone_is_certain_after_a_handful_of_requests() -> None:
    assert exceeds_error_rate(10, 10, 0.01) < 1e-15
    assert worse_than_baseline(10, 10, 0, 380) < 1e-15


@pytest.mark.parametrize(("errors", "requests"), [(1, 20), (3, 100), (12, 300), (40, 1000)])
def test_the_confidence_bound_and_the_binomial_test_make_the_same_decision(errors: int, requests: int) -> None:
    for level in (0.01, 0.001):
        failing_by_test = exceeds_error_rate(errors, requests, 0.01) <= level
        failing_by_bound = success_upper_bound(errors, requests, 1 - level) < 0.99
        assert failing_by_test == failing_by_bound


def test_fisher_is_one_sided_a_release_better_than_its_baseline_is_never_worse() -> None:
    assert worse_than_baseline(1, 1000, 50, 1000) > 0.99
    assert worse_than_baseline(50, 1000, 1, 1000) < 1e-10


def test_without_data_no_test_can_reject() -> None:
    assert exceeds_error_rate(0, 0, 0.01) == worse_than_baseline(5, 5, 0, 0) == 1.0
    assert success_upper_bound(0, 0, 0.99) == 1.0


def test_the_false_alarm_rate_of_fisher_under_equal_background_noise_stays_below_the_level() -> None:
    rng = np.random.default_rng(11)
    trials, level = 2000, 0.01
    new = rng.binomial(600, 0.005, trials)
    old = rng.binomial(3000, 0.005, trials)
    alarms = sum(worse_than_baseline(int(a), 600, int(b), 3000) <= level for a, b in zip(new, old, strict=True))
    assert alarms / trials <= level


def test_holm_multiplies_the_smallest_p_value_by_the_number_of_tests_and_keeps_the_order() -> None:
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({}) == {}


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
