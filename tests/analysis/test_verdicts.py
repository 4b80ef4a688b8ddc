"""Verdicts from known evidence: what the release changed, per path and for the service, errors and latency."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from traffic_fixtures import FAST, at_utc, entries, evidence

from deploypipe.analysis import Evidence, TrafficConfig, judge
from deploypipe.analysis.judge import NO_BASELINE, OVERALL, scope_alpha

HEALTHY_LATENCY = ([80.0, 85.0, 90.0, 82.0, 85.0, 88.0, 81.0, 86.0, 83.0, 87.0, 85.0, 84.0], [82.0] * 60)
NOTES_MS = [5.0, 6.0, 7.0, 6.0, 5.0, 8.0, 6.0, 4.0, 6.0, 7.0]


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
    Row("no traffic at all", evidence(0, 0), "inconclusive", f"inconclusive: 0 requests; {NO_BASELINE}"),
    Row("a first release whose path fails for everyone fails on the floor and says there was no baseline",
        evidence(40, 12, paths={"POST /notes": (12, 12), "GET /": (28, 0)}),
        "fail", f"POST /notes: 12 of 12 answered 500 since 12:03:07 (no baseline); {NO_BASELINE}"),
    Row("a path with 5 % of the traffic failing 20 % is found though the service as a whole is within noise",
        evidence(1200, 15, 3000, 15, paths={"GET /": (1140, 3), "POST /notes": (60, 12)},
                 baseline_paths={"GET /": (95, 0), "POST /notes": (300, 0)}, latency_ms=HEALTHY_LATENCY),
        "fail", "POST /notes: 12 of 60 answered 500 since 12:03:07 (baseline 0 of 300)"),
    Row("a path failing 5 % before and after is not blamed on the release (issue 17's GET /flaky)",
        evidence(2300, 21, 4600, 31, paths={"GET /": (1900, 1), "GET /flaky": (400, 20)},
                 baseline_paths={"GET /": (1000, 1), "GET /flaky": (600, 30)}, latency_ms=HEALTHY_LATENCY),
        "pass", "passed"),
    Row("an under-sampled path is judged only against its baseline, never against the floor",
        evidence(2000, 8, 4000, 0, paths={"GET /": (1960, 0), "POST /notes": (40, 8)},
                 baseline_paths={"GET /": (1000, 0), "POST /notes": (10, 0)}, latency_ms=HEALTHY_LATENCY),
        "pass", "passed"),
    Row("the same path with enough baseline requests fails against the floor it kept",
        evidence(2000, 8, 4000, 0, paths={"GET /": (1960, 0), "POST /notes": (40, 8)},
                 baseline_paths={"GET /": (1000, 0), "POST /notes": (100, 0)}, latency_ms=HEALTHY_LATENCY),
        "fail", "POST /notes: 8 of 40 answered 500"),
    Row("a path that got much worse than its own failing baseline is blamed",
        evidence(2000, 66, 4000, 36, paths={"GET /": (1890, 6), "POST /notes": (110, 60)},
                 baseline_paths={"GET /": (90, 0), "POST /notes": (100, 10)}, latency_ms=HEALTHY_LATENCY),
        "fail", "POST /notes: 60 of 110 answered 500"),
    Row("a service already below its floor before the switch is judged against its own baseline",
        evidence(522, 15, 600, 16, latency_ms=HEALTHY_LATENCY), "pass", "passed: 522 requests, 97.13 % succeeded"),
    Row("the whole service failing a little everywhere fails on the floor its baseline kept",
        evidence(3000, 90, 3000, 15, latency_ms=HEALTHY_LATENCY), "fail",
        "90 of 3000 requests answered 5xx: success rate 97.00 %, below the 99.00 % floor that the previous "
        "release's 99.50 % (15 of 3000) kept"),
    Row("a service below its floor that got much worse fails against its baseline",
        evidence(3000, 300, 3000, 90, latency_ms=HEALTHY_LATENCY), "fail",
        "300 of 3000 requests answered 5xx: success rate 90.00 % against the previous release's 97.00 % "
        "(90 of 3000)"),
    Row("metrics latency above the bound (logs without response times)",
        evidence(600, 3, 3000, 15, latency_ms=([1200.0] * 12, [110.0] * 60)),
        "fail", "p99 latency 1200 ms is above the 1000 ms bound"),
    Row("metrics latency above a bound the baseline did not keep either is judged by the factor only",
        evidence(600, 3, 3000, 15, latency_ms=([1200.0] * 12, [1100.0] * 60)), "pass", "passed"),
    Row("metrics latency regressed beyond the factor",
        evidence(600, 3, 3000, 15, latency_ms=([200.0] * 12, [100.0] * 60)),
        "fail", "p99 latency 200 ms is 2.0x the baseline's 100 ms (allowed 1.5x)"),
    Row("a fast service tripling 3 ms to 9 ms is noise, not a regression",
        evidence(600, 3, 3000, 15, latency_ms=([9.0, 8.0, 10.0] * 4, [3.0] * 60)), "pass", "passed"),
    Row("one slow bucket after the switch (a cold start) does not fail the release",
        evidence(600, 3, 3000, 15, latency_ms=([2500.0] + [85.0] * 11, [82.0] * 60)), "pass", "passed"),
    Row("a path 100x slower fails though the service's p99 stays under the bound",
        evidence(600, 0, 3000, 0, paths={"GET /": (548, 0), "GET /notes": (52, 0)},
                 baseline_paths={"GET /": (2700, 0), "GET /notes": (300, 0)},
                 path_ms={"GET /": ([80.0, 90.0, 100.0], [80.0, 90.0, 100.0]),
                          "GET /notes": ([600.0, 612.0, 620.0, 605.0], NOTES_MS)}),
        "fail", "GET /notes: p90 latency 620 ms against the baseline's 7 ms (52 of 52 requests above "),
    Row("paths 15 % slower are drift, not a regression",
        evidence(600, 0, 3000, 0, paths={"GET /": (548, 0), "GET /notes": (52, 0)},
                 baseline_paths={"GET /": (2700, 0), "GET /notes": (300, 0)},
                 path_ms={"GET /": ([92.0, 103.0, 115.0], [80.0, 90.0, 100.0]),
                          "GET /notes": ([ms * 1.15 for ms in NOTES_MS], NOTES_MS)}),
        "pass", "passed: 600 requests, 100.00 % succeeded (baseline 100.00 %), p99 115 ms (baseline 100 ms)"),
    Row("a new path above the latency bound fails on the bound",
        evidence(600, 0, 3000, 0, paths={"GET /": (548, 0), "GET /report": (52, 0)},
                 baseline_paths={"GET /": (2700, 0)},
                 path_ms={"GET /": ([80.0], [80.0]), "GET /report": ([1500.0, 1400.0], ())}),
        "fail", "GET /report: p99 1500 ms above the 1000 ms bound (52 of 52 requests above 1000 ms)"),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_each_kind_of_release_gets_its_verdict_and_message(row: Row) -> None:
    verdict = judge(row.evidence, row.config, final=True)
    assert verdict is not None
    assert (verdict.status, verdict.message[:len(row.message)]) == (row.status, row.message), verdict.reasons


def test_the_failure_message_has_the_promised_shape_word_for_word() -> None:
    found = evidence(500, 41, 3000, 0, baseline_paths={"POST /notes": (380, 0)})
    found.paths.add_new(entries("POST /notes", 43, 41, start=at_utc("12:03:07")))
    verdict = judge(found, FAST, final=True)
    assert verdict is not None
    assert verdict.message == "POST /notes: 41 of 43 answered 500 since 12:03:07 (baseline 0 of 380)"
    assert verdict.worst_paths[0].route == "POST /notes" and verdict.worst_paths[0].failed and verdict.compared


def test_a_slower_path_is_named_with_both_latencies_word_for_word() -> None:
    found = evidence(600, 0, 3000, 0, paths={"GET /notes": (52, 0)}, baseline_paths={"GET /notes": (300, 0)},
                     path_ms={"GET /notes": ([612.0] * 48 + [5.0] * 4, NOTES_MS)})
    verdict = judge(found, FAST, final=False)
    assert verdict is not None
    assert verdict.message == "GET /notes: p90 latency 612 ms against the baseline's 7 ms (48 of 52 requests above 58 ms)"
    [finding] = verdict.worst_paths
    assert (finding.latency_ms, finding.baseline_latency_ms, finding.failed) == (612.0, 7.0, True)


def test_before_the_baseline_is_whole_only_the_errors_floor_judges_where_the_part_read_met_it() -> None:
    def early(baseline: tuple[int, int], failing: tuple[int, int], slow: bool = False) -> Evidence:
        found = evidence(600, 0, 3000, 0, paths={"POST /notes": failing, "GET /notes": (52, 0)},
                         baseline_paths={"POST /notes": baseline, "GET /notes": (300, 0)},
                         path_ms={"GET /notes": ([612.0 if slow else 6.0] * 52, NOTES_MS)})
        found.paths.baseline_read = False
        return found

    verdict = judge(early((60, 0), (12, 12)), FAST, final=False)  # the part read met the floor: fails at once
    assert verdict is not None and verdict.message.startswith("POST /notes: 12 of 12 answered 500"), verdict
    assert judge(early((40, 0), (12, 12)), FAST, final=False) is None  # too few baseline requests read yet
    assert judge(early((60, 3), (12, 12)), FAST, final=False) is None  # already below the floor: wait for the whole
    assert judge(early((60, 0), (52, 0), slow=True), FAST, final=False) is None  # latency waits for the whole
    whole = early((40, 0), (12, 12), slow=True)
    whole.paths.baseline_read = True
    assert judge(whole, FAST, final=False) is not None


def test_a_path_with_a_baseline_too_small_for_its_p90_is_compared_on_its_median() -> None:
    found = evidence(600, 0, 3000, 0, paths={"GET /notes": (30, 0)}, baseline_paths={"GET /notes": (20, 0)},
                     path_ms={"GET /notes": ([612.0], NOTES_MS)})
    verdict = judge(found, FAST, final=False)
    assert verdict is not None
    assert verdict.message == "GET /notes: p50 latency 612 ms against the baseline's 6 ms (30 of 30 requests above 57 ms)"


def test_failures_with_different_5xx_statuses_say_5xx_and_the_earliest_time() -> None:
    found = evidence(500, 20, 3000, 0)
    found.paths.add_new(entries("POST /notes", 10, 10, start=at_utc("12:04:00"), status=502))
    found.paths.add_new(entries("POST /notes", 10, 10, start=at_utc("12:03:30"), status=500))
    verdict = judge(found, FAST, final=True)
    assert verdict is not None
    assert verdict.message == "POST /notes: 20 of 20 answered 5xx since 12:03:30 (no baseline)"


def test_paths_with_ids_are_judged_as_one_route() -> None:
    found = evidence(500, 12, 3000, 0)
    for note in range(12):
        found.paths.add_new(entries(f"DELETE /notes/{note}?soft=1", 1, 1, start=at_utc("12:03:10") + note))
    verdict = judge(found, FAST, final=True)
    assert verdict is not None
    assert verdict.message.startswith("DELETE /notes/{id}: 12 of 12 answered 500 since 12:03:10")


def test_a_scope_needs_min_errors_failed_requests_and_fails_with_exactly_that_many() -> None:
    config = FAST.model_copy(update={"min_errors": 6})  # 5 of 5 is already certain: only min_errors holds it
    found = [evidence(500, 0, 3000, 0, paths={"POST /notes": (n, n)}, baseline_paths={"POST /notes": (300, 0)})
             for n in (5, 6)]
    assert [judge(one, config, final=False) is not None for one in found] == [False, True]


def test_the_significance_is_split_so_that_routes_appearing_at_any_time_stay_within_it() -> None:
    shares = [scope_alpha(0.01, order) for order in range(0, 100_000)]
    assert sum(shares) <= 0.01 and shares[0] == 0.005
    assert scope_alpha(0.01, 1) == pytest.approx(0.005 * 6 / math.pi ** 2)


def test_a_borderline_path_fails_when_it_appeared_first_but_not_twentieth() -> None:
    crowd = {f"GET /page{i}": (100, 0) for i in range(19)}
    first = evidence(5000, 9, paths={"POST /notes": (100, 9), **crowd}, latency_ms=HEALTHY_LATENCY)
    last = evidence(5000, 9, paths={**crowd, "POST /notes": (100, 9)}, latency_ms=HEALTHY_LATENCY)
    verdicts = [judge(found, FAST, final=True) for found in (first, last)]
    assert [v.status for v in verdicts if v] == ["fail", "pass"]


def test_an_interim_look_only_ever_fails_a_release() -> None:
    healthy = evidence(600, 3, 3000, 15, paths={"GET /": (600, 3)})
    sparse = evidence(3, 0)
    broken = evidence(200, 60, 3000, 15, paths={"POST /notes": (60, 60)})
    assert judge(healthy, FAST, final=False) is None
    assert judge(sparse, FAST, final=False) is None
    verdict = judge(broken, FAST, final=False)
    assert verdict is not None and verdict.status == "fail"


@pytest.mark.parametrize(("policy", "outcome"), [("pass", "pass"), ("warn", "warn"), ("fail", "fail")])
def test_an_inconclusive_verdict_does_what_on_inconclusive_says(policy: str, outcome: str) -> None:
    config = FAST.model_copy(update={"on_inconclusive": policy})
    verdict = judge(evidence(12, 0, 3000, 15), config, final=True)
    assert verdict is not None
    assert (verdict.status, verdict.outcome, verdict.message) == ("inconclusive", outcome, "inconclusive: 12 requests")
    assert verdict.failed is (policy == "fail")
    assert "at least 100 are needed to pass" in verdict.reasons[0]


def test_on_inconclusive_defaults_to_warn() -> None:
    assert TrafficConfig().on_inconclusive == "warn"


def test_a_release_without_latency_data_says_latency_was_not_judged() -> None:
    verdict = judge(evidence(600, 3, 3000, 15), FAST, final=True)
    assert verdict is not None and verdict.status == "pass"
    assert "latency not judged: no p99 data for the new release" in verdict.reasons


def test_a_first_release_says_it_was_judged_against_the_floors_only_and_not_compared() -> None:
    verdict = judge(evidence(600, 0, 0, 0, latency_ms=([85.0] * 12, [])), FAST, final=True)
    assert verdict is not None and verdict.status == "pass" and not verdict.compared
    assert verdict.message == f"passed: 600 requests, 100.00 % succeeded, p99 85 ms; {NO_BASELINE}"
    assert verdict.reasons[0] == NO_BASELINE
    assert verdict.model_dump(mode="json")["compared"] is False


def test_the_verdict_is_json_ready_with_figures_of_both_releases() -> None:
    verdict = judge(ROWS[1].evidence, FAST, final=True)
    assert verdict is not None
    data = verdict.model_dump(mode="json")
    assert data["figures"] == {"requests": 600, "errors": 93, "success_rate": 0.845, "baseline_requests": 3000,
                               "baseline_errors": 15, "baseline_success_rate": 0.995, "latency_quantile": 0.99,
                               "latency_ms": 85.0, "baseline_latency_ms": 82.0, "logs_sampled": False}
    assert data["worst_paths"][0]["route"] == "POST /notes" and OVERALL not in data["message"]
    assert data["worst_paths"][0]["latency_ms"] is None and data["compared"] is True
    assert verdict.lines() == [verdict.message, verdict.reasons[1]]
    assert verdict.reasons[1].startswith("93 of 600 requests answered 5xx: success rate 84.50 %, below the ")


@pytest.mark.parametrize(("field", "value"), [("min_success_rate", 1.0), ("latency_quantile", 0.3),
                                              ("on_inconclusive", "maybe"), ("log_page", 500), ("interval_s", 900),
                                              ("max_baseline_s", 60)])
def test_the_config_refuses_values_that_cannot_work(field: str, value: object) -> None:
    expected = {"interval_s": "longer than window_s", "max_baseline_s": "shorter than baseline_s"}
    with pytest.raises(ValueError, match=expected.get(field, field)):
        TrafficConfig(**{field: value})  # type: ignore[arg-type]


def test_a_latency_failure_names_the_latency_and_not_paths_with_background_errors() -> None:
    found = evidence(600, 3, 3000, 15, paths={"GET /": (600, 3)}, latency_ms=([200.0] * 12, [100.0] * 60))
    verdict = judge(found, FAST, final=True)
    assert verdict is not None
    assert verdict.message.startswith("p99 latency 200 ms is 2.0x the baseline's 100 ms (allowed 1.5x)")


def test_when_no_single_path_is_certain_the_path_least_likely_to_be_noise_is_named_first() -> None:
    found = evidence(1400, 36, 2800, 13, paths={"GET /": (592, 8), "POST /notes": (30, 5)},
                     baseline_paths={"GET /": (550, 0), "POST /notes": (100, 0)}, latency_ms=HEALTHY_LATENCY)
    config = FAST.model_copy(update={"min_errors": 9})  # no path alone can fail yet
    verdict = judge(found, config, final=True)
    assert verdict is not None and verdict.status == "fail"
    assert [f.route for f in verdict.worst_paths] == ["POST /notes", "GET /"]
    assert verdict.message.endswith("; POST /notes: 5 of 30 answered 500 since 12:03:07 (baseline 0 of 100)")
