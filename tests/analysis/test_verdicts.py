"""Verdicts from known evidence: healthy, broken, noisy, sparse, per-path and latency cases, and their messages."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from traffic_fixtures import FAST, at_utc, entries, evidence

from deploypipe.analysis import Evidence, TrafficConfig, judge
from deploypipe.analysis.judge import OVERALL

FINAL = FAST.final_level()
HEALTHY_LATENCY = ([80.0, 85.0, 90.0, 82.0, 85.0, 88.0, 81.0, 86.0, 83.0, 87.0, 85.0, 84.0], [82.0] * 60)


@dataclass(frozen=True)
class Row:
    name: str
    evidence: Evidence
    status: str
    message: str  # the verdict's message starts with this
    config: TrafficConfig = FAST


ROWS = [
    Row("healthy", evidence(600, 3, 3000, 15, paths={"GET /": (330, 2), "POST /notes": (90, 1)},
                            baseline_paths={"GET /": (60, 0), "POST /notes": (20, 0)}, latency_ms=HEALTHY_LATENCY),
        "pass", "passed: 600 requests, 99.50 % succeeded (baseline 99.50 %), p99 85 ms (baseline 82 ms)"),
    Row("broken path", evidence(600, 93, 3000, 15, paths={"GET /": (330, 2), "POST /notes": (90, 90)},
                                baseline_paths={"POST /notes": (450, 0)}, latency_ms=HEALTHY_LATENCY),
        "fail", "POST /notes: 90 of 90 answered 500 since 12:03:07 (baseline 0 of 450)"),
    Row("noisy: 2 errors in a small sample, even with no minimum of errors",
        evidence(150, 2, 3000, 15, paths={"GET /": (148, 2)}, latency_ms=HEALTHY_LATENCY),
        "pass", "passed: 150 requests, 98.67 % succeeded", FAST.model_copy(update={"min_errors": 1})),
    Row("noisy: background 5xx on every path", evidence(
        2000, 11, 4000, 20, paths={"GET /": (1100, 6), "GET /notes": (500, 3), "POST /notes": (300, 2),
                                   "GET /health": (100, 0)},
        baseline_paths={"GET /": (55, 1), "POST /notes": (15, 0)}, latency_ms=HEALTHY_LATENCY), "pass", "passed"),
    Row("one client retrying one bad request three times is not an outage",
        evidence(600, 3, 3000, 15, paths={"GET /": (597, 0), "POST /notes": (3, 3)}, latency_ms=HEALTHY_LATENCY),
        "pass", "passed"),
    Row("sparse", evidence(40, 0, 3000, 15, paths={"GET /": (40, 0)}, latency_ms=HEALTHY_LATENCY),
        "inconclusive", "inconclusive: 40 requests"),
    Row("no traffic at all", evidence(0, 0), "inconclusive", "inconclusive: 0 requests"),
    Row("sparse but a path fails for everyone", evidence(40, 12, paths={"POST /notes": (12, 12), "GET /": (28, 0)}),
        "fail", "POST /notes: 12 of 12 answered 500"),
    Row("a path with 5 % of the traffic failing 20 % is found though the service as a whole is within noise",
        evidence(600, 9, 3000, 15, paths={"GET /": (570, 3), "POST /notes": (30, 6)},
                 baseline_paths={"GET /": (95, 0), "POST /notes": (5, 0)}, latency_ms=HEALTHY_LATENCY),
        "fail", "POST /notes: 6 of 30 answered 500 since 12:03:07 (baseline 0 of 5)"),
    Row("a path that already failed as much before the deploy is not blamed on the release",
        evidence(2000, 18, 4000, 36, paths={"GET /": (1890, 6), "POST /notes": (110, 12)},
                 baseline_paths={"GET /": (90, 0), "POST /notes": (100, 10)}, latency_ms=HEALTHY_LATENCY),
        "pass", "passed"),
    Row("a path that got much worse than its own failing baseline is blamed",
        evidence(2000, 66, 4000, 36, paths={"GET /": (1890, 6), "POST /notes": (110, 60)},
                 baseline_paths={"GET /": (90, 0), "POST /notes": (100, 10)}, latency_ms=HEALTHY_LATENCY),
        "fail", "POST /notes: 60 of 110 answered 500"),
    Row("the whole service failing a little everywhere fails on its success rate",
        evidence(3000, 90, 3000, 15, latency_ms=HEALTHY_LATENCY),
        "fail", "90 of 3000 requests answered 5xx: success rate 97.00 %, at most"),
    Row("latency above the bound", evidence(600, 3, 3000, 15, latency_ms=([1200.0] * 12, [1100.0] * 60)),
        "fail", "p99 latency 1200 ms is above the 1000 ms bound"),
    Row("latency regressed beyond the factor", evidence(600, 3, 3000, 15, latency_ms=([200.0] * 12, [100.0] * 60)),
        "fail", "p99 latency 200 ms is 2.0x the baseline's 100 ms (allowed 1.5x)"),
    Row("a fast service tripling 3 ms to 9 ms is noise, not a regression",
        evidence(600, 3, 3000, 15, latency_ms=([9.0, 8.0, 10.0] * 4, [3.0] * 60)), "pass", "passed"),
    Row("one slow bucket after the switch (a cold start) does not fail the release",
        evidence(600, 3, 3000, 15, latency_ms=([2500.0] + [85.0] * 11, [82.0] * 60)), "pass", "passed"),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_each_kind_of_release_gets_its_verdict_and_message(row: Row) -> None:
    verdict = judge(row.evidence, row.config, level=row.config.final_level(), final=True)
    assert verdict is not None
    assert (verdict.status, verdict.message[:len(row.message)]) == (row.status, row.message), verdict.reasons


def test_the_failure_message_has_the_promised_shape_word_for_word() -> None:
    found = evidence(500, 41, 3000, 0, baseline_paths={"POST /notes": (380, 0)})
    found.paths.add_new(entries("POST /notes", 43, 41, start=at_utc("12:03:07")), sampled=False)
    verdict = judge(found, FAST, level=FINAL, final=True)
    assert verdict is not None
    assert verdict.message == "POST /notes: 41 of 43 answered 500 since 12:03:07 (baseline 0 of 380)"
    assert verdict.worst_paths[0].route == "POST /notes" and verdict.worst_paths[0].failed


def test_failures_with_different_5xx_statuses_say_5xx_and_the_earliest_time() -> None:
    found = evidence(500, 20, 3000, 0)
    found.paths.add_new(entries("POST /notes", 10, 10, start=at_utc("12:04:00"), status=502), sampled=False)
    found.paths.add_new(entries("POST /notes", 10, 10, start=at_utc("12:03:30"), status=500), sampled=False)
    verdict = judge(found, FAST, level=FINAL, final=True)
    assert verdict is not None
    assert verdict.message == "POST /notes: 20 of 20 answered 5xx since 12:03:30 (baseline 0 of 0)"


def test_paths_with_ids_are_judged_as_one_route() -> None:
    found = evidence(500, 12, 3000, 0)
    for note in range(12):
        found.paths.add_new(entries(f"DELETE /notes/{note}?soft=1", 1, 1, start=at_utc("12:03:10") + note),
                            sampled=False)
    verdict = judge(found, FAST, level=FINAL, final=True)
    assert verdict is not None
    assert verdict.message.startswith("DELETE /notes/{id}: 12 of 12 answered 500 since 12:03:10")


def test_a_borderline_path_fails_alone_but_not_once_twenty_paths_share_the_significance() -> None:
    alone = evidence(5000, 6, paths={"POST /notes": (100, 6)}, latency_ms=HEALTHY_LATENCY)
    crowded = evidence(5000, 6, paths={"POST /notes": (100, 6), **{f"GET /page{i}": (100, 0) for i in range(20)}},
                       latency_ms=HEALTHY_LATENCY)
    verdicts = [judge(found, FAST, level=FINAL, final=True) for found in (alone, crowded)]
    assert [v.status for v in verdicts if v] == ["fail", "pass"]


def test_an_interim_look_only_ever_fails_a_release() -> None:
    healthy = evidence(600, 3, 3000, 15, paths={"GET /": (600, 3)})
    sparse = evidence(3, 0)
    broken = evidence(200, 60, 3000, 15, paths={"POST /notes": (60, 60)})
    level = FAST.interim_level()
    assert judge(healthy, FAST, level=level, final=False) is None
    assert judge(sparse, FAST, level=level, final=False) is None
    verdict = judge(broken, FAST, level=level, final=False)
    assert verdict is not None and verdict.status == "fail"


@pytest.mark.parametrize(("policy", "outcome"), [("pass", "pass"), ("warn", "warn"), ("fail", "fail")])
def test_an_inconclusive_verdict_does_what_on_inconclusive_says(policy: str, outcome: str) -> None:
    config = FAST.model_copy(update={"on_inconclusive": policy})
    verdict = judge(evidence(12, 0), config, level=FINAL, final=True)
    assert verdict is not None
    assert (verdict.status, verdict.outcome, verdict.message) == ("inconclusive", outcome, "inconclusive: 12 requests")
    assert verdict.failed is (policy == "fail")
    assert "at least 100 are needed to pass" in verdict.reasons[0]


def test_on_inconclusive_defaults_to_warn() -> None:
    assert TrafficConfig().on_inconclusive == "warn"


def test_a_release_without_latency_data_says_latency_was_not_judged() -> None:
    verdict = judge(evidence(600, 3, 3000, 15), FAST, level=FINAL, final=True)
    assert verdict is not None and verdict.status == "pass"
    assert "latency not judged: no p99 data for the new release" in verdict.reasons


def test_a_first_release_says_there_was_no_baseline_traffic_instead_of_a_baseline_of_zero() -> None:
    verdict = judge(evidence(600, 0, 0, 0, latency_ms=([85.0] * 12, [])), FAST, level=FINAL, final=True)
    assert verdict is not None and verdict.status == "pass"
    assert verdict.message == ("passed: 600 requests, 100.00 % succeeded, p99 85 ms; the previous release had no "
                               "traffic to compare with")


def test_the_verdict_is_json_ready_with_figures_of_both_releases() -> None:
    verdict = judge(ROWS[1].evidence, FAST, level=FINAL, final=True)
    assert verdict is not None
    data = verdict.model_dump(mode="json")
    assert data["figures"] == {"requests": 600, "errors": 93, "success_rate": 0.845, "baseline_requests": 3000,
                               "baseline_errors": 15, "baseline_success_rate": 0.995, "latency_quantile": 0.99,
                               "latency_ms": 85.0, "baseline_latency_ms": 82.0, "logs_sampled": False}
    assert data["worst_paths"][0]["route"] == "POST /notes" and OVERALL not in data["message"]
    assert verdict.lines() == [verdict.message, verdict.reasons[1]]
    assert verdict.reasons[1].startswith("93 of 600 requests answered 5xx: success rate 84.50 %, at most ")


@pytest.mark.parametrize(("field", "value"), [("min_success_rate", 1.0), ("latency_quantile", 0.3),
                                              ("on_inconclusive", "maybe"), ("log_page", 500), ("interval_s", 900)])
def test_the_config_refuses_values_that_cannot_work(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field if field != "interval_s" else "longer than window_s"):
        TrafficConfig(**{field: value})  # type: ignore[arg-type]


def test_a_latency_failure_names_the_latency_and_not_paths_with_background_errors() -> None:
    found = evidence(600, 3, 3000, 15, paths={"GET /": (600, 3)}, latency_ms=([200.0] * 12, [100.0] * 60))
    verdict = judge(found, FAST, level=FINAL, final=True)
    assert verdict is not None
    assert verdict.message == "p99 latency 200 ms is 2.0x the baseline's 100 ms (allowed 1.5x)"


def test_when_no_single_path_is_certain_the_path_least_likely_to_be_noise_is_named_first() -> None:
    found = evidence(1400, 26, 2800, 13, paths={"GET /": (592, 8), "POST /notes": (30, 5)},
                     baseline_paths={"GET /": (55, 0), "POST /notes": (5, 0)}, latency_ms=HEALTHY_LATENCY)
    config = FAST.model_copy(update={"min_errors": 6})  # POST /notes alone cannot fail yet
    verdict = judge(found, config, level=FINAL, final=True)
    assert verdict is not None and verdict.status == "fail"
    assert [f.route for f in verdict.worst_paths] == ["POST /notes", "GET /"]
    assert verdict.message.endswith("; POST /notes: 5 of 30 answered 500 since 12:03:07 (baseline 0 of 5)")
