"""The local Render's metrics and logs: buckets, quantiles, label filters, time-window pages, bounds, late data."""

from __future__ import annotations

import pytest

from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.emulator.telemetry import RequestRec, Telemetry, level_of

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the sim fixture's clock


def _traffic(sim, rows):
    """rows: (seconds after T0, method, path, status, latency ms)."""
    for offset, method, path, status, latency in rows:
        sim.emulator.telemetry.request(RequestRec(at=T0 + offset, resource=sim.web.id, method=method, path=path,
                                                  status=status, latency_ms=latency, host="web.local",
                                                  instance=f"{sim.web.id}-abcde", deploy="dep-1"))


def _window(**extra):
    return {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:10:00Z", **extra}


def _series(body):
    return {tuple((label["field"], label["value"]) for label in s["labels"]):
            [(v["timestamp"], v["value"]) for v in s["values"]] for s in body}


def test_request_counts_are_bucketed_per_resolution_and_split_by_status_code(sim):
    _traffic(sim, [(5, "GET", "/", 200, 3), (29, "POST", "/notes", 500, 4), (31, "GET", "/", 200, 5),
                   (95, "POST", "/notes", 500, 6)])
    sim.clock.now = T0 + 600
    answer = sim.get("/metrics/http-requests", params=_window(resource=sim.web.id, resolutionSeconds=30,
                                                              aggregateBy="statusCode"))
    assert answer.status_code == 200, answer.text
    assert _series(answer.json()) == {
        (("statusCode", "200"),): [("2026-01-01T00:00:00Z", 1), ("2026-01-01T00:00:30Z", 1)],
        (("statusCode", "500"),): [("2026-01-01T00:00:00Z", 1), ("2026-01-01T00:01:30Z", 1)],
    }
    only_notes = sim.get("/metrics/http-requests", params=_window(resource=sim.web.id, resolutionSeconds=60,
                                                                  path="/notes")).json()
    assert _series(only_notes) == {(): [("2026-01-01T00:00:00Z", 1), ("2026-01-01T00:01:00Z", 1)]}
    by_host = sim.get("/metrics/http-requests", params=_window(resource=sim.web.id, aggregateBy="host")).json()
    assert _series(by_host) == {(("host", "web.local"),): [("2026-01-01T00:00:00Z", 3), ("2026-01-01T00:01:00Z", 1)]}


def test_latency_is_the_asked_quantile_of_each_bucket_by_nearest_rank(sim):
    _traffic(sim, [(i, "GET", "/", 200, float(i + 1)) for i in range(100)])
    sim.clock.now = T0 + 600
    body = sim.get("/metrics/http-latency", params=_window(resource=sim.web.id, resolutionSeconds=300,
                                                           quantile=["0.5", "0.99"])).json()
    assert _series(body) == {(("quantile", "0.5"),): [("2026-01-01T00:00:00Z", 50)],
                             (("quantile", "0.99"),): [("2026-01-01T00:00:00Z", 99)]}
    assert {s["unit"] for s in body} == {"ms"}


@pytest.mark.parametrize("path, params, words", [
    ("/metrics/http-requests", {"resolutionSeconds": 29}, "resolutionSeconds must be at least 30"),
    ("/metrics/http-latency", {"resolutionSeconds": 10}, "resolutionSeconds must be at least 30"),
    ("/metrics/http-requests", {"aggregateBy": "path"}, "aggregateBy must be statusCode or host"),
    ("/metrics/http-latency", {"quantile": "1.5"}, "quantile must be between 0 and 1"),
    ("/metrics/http-requests", {"resource": "srv-nope"}, "srv-nope is not a service"),
    ("/metrics/http-requests", {"startTime": "2026-01-02T00:00:00Z"}, "is after endTime"),
])
def test_metrics_refuse_what_the_spec_forbids_with_a_400_saying_what(sim, path, params, words):
    answer = sim.get(path, params={**_window(resource=sim.web.id), **params})
    assert answer.status_code == 400 and words in answer.json()["message"]


def _logs(sim, **params):
    answer = sim.get("/logs", params={"ownerId": sim.emulator.owner_id, "resource": sim.web.id, **_window(), **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_request_logs_carry_renders_labels_and_the_response_time_in_their_text(sim):
    _traffic(sim, [(1, "POST", "/notes", 500, 12.4)])
    sim.clock.now = T0 + 600
    [line] = _logs(sim, type="request")["logs"]
    assert line["message"] == "[POST]500 web.local/notes responseTimeMS=12"
    assert line["timestamp"] == "2026-01-01T00:00:01Z"
    assert [(label["name"], label["value"]) for label in line["labels"]] == [
        ("resource", sim.web.id), ("instance", f"{sim.web.id}-abcde"), ("type", "request"), ("method", "POST"),
        ("path", "/notes"), ("statusCode", "500"), ("host", "web.local")]


def test_log_filters_match_exactly_by_wildcard_and_by_regular_expression(sim):
    _traffic(sim, [(1, "GET", "/", 200, 1), (2, "POST", "/notes", 500, 1), (3, "GET", "/notes", 503, 1)])
    sim.emulator.telemetry.log(sim.web.id, "ERROR boom: ImportError", type="app", instance="i-1", at=T0 + 4)
    sim.clock.now = T0 + 600

    def paths(**params):
        return [(line["message"]) for line in _logs(sim, direction="forward", **params)["logs"]]

    assert len(paths(statusCode="5*")) == 2
    assert paths(statusCode="5*", method="POST") == ["[POST]500 web.local/notes responseTimeMS=1"]
    assert len(paths(path="/^\\/notes$/")) == 2
    assert paths(type="app", level="error") == ["ERROR boom: ImportError"]
    assert paths(text="importerror") == ["ERROR boom: ImportError"]
    assert sim.get("/logs", params={"ownerId": sim.emulator.owner_id, "resource": sim.web.id,
                                    "text": "/(/"}).status_code == 400


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_paging_by_next_start_and_end_time_returns_every_line_once_in_order(sim, direction):
    for i in range(250):  # several lines share a clock second: timestamps still never tie
        sim.emulator.telemetry.log(sim.web.id, f"line {i}", type="app", at=T0 + i // 3)
    sim.clock.now = T0 + 600
    seen, params, pages = [], _window(direction=direction, limit=100), 0
    while True:
        page = _logs(sim, **params)
        pages += 1
        seen += [line["message"] for line in page["logs"]]
        if not page["hasMore"]:
            break
        params = {**params, "startTime": page["nextStartTime"], "endTime": page["nextEndTime"]}
    expected = [f"line {i}" for i in range(250)]
    assert seen == (expected if direction == "forward" else expected[::-1]) and pages == 3


@pytest.mark.parametrize("params, status, words", [
    ({"limit": 101}, 400, "limit must be an integer between 1 and 100"),
    ({"ownerId": ""}, 400, "ownerId is required"),
    ({"resource": ""}, 400, "resource is required"),
    ({"direction": "sideways"}, 400, "direction must be backward or forward"),
    ({"ownerId": "tea-someoneelse"}, 404, "owner tea-someoneelse not found"),
])
def test_log_queries_refuse_bad_parameters(sim, params, status, words):
    query = {"ownerId": sim.emulator.owner_id, "resource": sim.web.id, **params}
    answer = sim.get("/logs", params={k: v for k, v in query.items() if v != ""})
    assert answer.status_code == status and words in answer.json()["message"]


def test_the_stores_stay_bounded_by_count_and_by_age():
    now = [T0]
    telemetry = Telemetry(lambda: now[0], max_requests=100, max_logs=150, retention_s=3600)
    for _ in range(1000):
        telemetry.request(RequestRec(at=now[0], resource="srv-a", method="GET", path="/", status=200, latency_ms=1))
        now[0] += 1
    assert telemetry.counts() == (100, 150)
    now[0] += 7200
    telemetry.log("srv-a", "later", type="app")
    assert telemetry.counts() == (100, 1)  # requests age out on the next request; logs on the next line
    telemetry.request(RequestRec(at=now[0], resource="srv-a", method="GET", path="/", status=200, latency_ms=1))
    assert telemetry.counts() == (1, 2)


def test_data_younger_than_the_ingest_delay_is_not_visible_yet(sim):
    sim.emulator.telemetry.ingest_delay_s = 20
    _traffic(sim, [(0, "GET", "/", 200, 1), (15, "GET", "/", 200, 1)])
    sim.clock.now = T0 + 25
    params = {"resource": sim.web.id, "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:00:25Z"}
    first = sim.get("/metrics/http-requests", params=params).json()
    assert sum(v["value"] for s in first for v in s["values"]) == 1
    sim.clock.now = T0 + 40
    later = sim.get("/metrics/http-requests", params=params).json()
    assert sum(v["value"] for s in later for v in s["values"]) == 2


def test_a_simulated_release_that_cannot_start_leaves_build_lines_and_its_own_error_line(sim):
    sim.emulator.runtime = SimulatedRuntime(build_s=20, update_s=30, failures={"b" * 40: "update"},
                                            output={"b" * 40: ["Traceback (most recent call last):",
                                                               "ImportError: cannot import name 'notes'"]})
    deploy = sim.trigger("b" * 40).json()
    sim.clock.now += 600
    assert sim.deploy(deploy["id"])["status"] == "update_failed"
    lines = _logs(sim, direction="forward", startTime="2026-01-01T00:00:00Z", endTime="2026-01-01T00:30:00Z")["logs"]
    by_type = [(dict((lab["name"], lab["value"]) for lab in line["labels"])["type"], line["message"]) for line in lines]
    assert by_type == [("build", "==> Running build command 'make'..."), ("build", "==> Build successful 🎉"),
                       ("build", "==> Running pre-deploy command 'migrate'..."), ("build", "==> Running 'serve'"),
                       ("app", "Traceback (most recent call last):"),
                       ("app", "ImportError: cannot import name 'notes'")]
    assert [level_of(message) for _, message in by_type[-2:]] == ["error", "error"]


@pytest.mark.parametrize("line, level", [
    ("ERROR:app:boom", "error"), ('{"level": "warning", "msg": "x"}', "warning"), ("level=debug msg=x", "debug"),
    ("INFO:     Started server process", "info"), ("ValueError: bad", "error"), ("listening on 10000", "info"),
])
def test_log_levels_are_read_from_the_line_as_render_does_best_effort(line, level):
    assert level_of(line) == level


def test_the_local_render_can_be_told_that_metrics_and_logs_arrive_late():
    from deploypipe.emulator import build_emulator

    emulator = build_emulator(ingest_delay_s=7)
    assert emulator.telemetry.ingest_delay_s == 7 and emulator.telemetry.clock is emulator.clock
    emulator.close()


def _store(tmp_path):
    from deploypipe.emulator.telemetry_file import TelemetryFile

    return TelemetryFile(tmp_path / "telemetry.jsonl")


def _request(at, path="/notes", status=200, latency=5.0):
    return RequestRec(at=at, resource="srv-a", method="GET", path=path, status=status, latency_ms=latency,
                      host="a.local", instance="srv-a-x", deploy="dep-1")


def test_requests_and_log_lines_outlive_the_process_through_the_store(tmp_path):
    now = [T0]
    first = Telemetry(lambda: now[0], store=_store(tmp_path))
    first.request(_request(T0, latency=612.4))
    first.log("srv-a", "ERROR: boom", type="app", instance="srv-a-x")
    now[0] += 60
    again = Telemetry(lambda: now[0], store=_store(tmp_path))  # a new local Render on the same data directory
    assert again.requests({"srv-a"}, T0 - 1, T0 + 1) == first.requests({"srv-a"}, T0 - 1, T0 + 1)
    lines = again.logs({"srv-a"}, 0, int(now[0] * 1e6))
    assert lines == first.logs({"srv-a"}, 0, int(now[0] * 1e6))
    assert [line.message for line in lines] == ["[GET]200 a.local/notes responseTimeMS=612", "ERROR: boom"]
    again.log("srv-a", "after the restart", type="app", at=T0)  # stamped before the last kept line: moved after it
    newest = again.logs({"srv-a"}, 0, int(now[0] * 1e6))[-1]
    assert newest.at_us > lines[-1].at_us and newest.id not in {line.id for line in lines}


def test_a_line_torn_by_a_killed_local_render_is_skipped_and_the_rest_kept(tmp_path):
    telemetry = Telemetry(lambda: T0, store=_store(tmp_path))
    for offset in range(3):
        telemetry.request(_request(T0 - offset))
    with (tmp_path / "telemetry.jsonl").open("a") as handle:
        handle.write('{"q": [1767225600.0, "srv-a", "GET", "/no')  # SIGKILL in the middle of a write
    again = Telemetry(lambda: T0, store=_store(tmp_path))
    again.request(_request(T0 + 1))  # appended after the repaired file, not glued to the torn line
    assert again.counts() == (4, 4)
    assert Telemetry(lambda: T0, store=_store(tmp_path)).counts() == (4, 4)


def test_the_stored_file_is_bounded_by_the_stores_count_and_age_bounds(tmp_path):
    now = [T0]
    telemetry = Telemetry(lambda: now[0], max_requests=10, max_logs=10, retention_s=3600, store=_store(tmp_path))
    for _ in range(500):
        telemetry.request(_request(now[0]))
        now[0] += 1
    path = tmp_path / "telemetry.jsonl"
    assert len(path.read_text().splitlines()) <= 2 * (10 + 10)
    kept = Telemetry(lambda: now[0], max_requests=10, max_logs=10, retention_s=3600, store=_store(tmp_path))
    assert [r.at for r in kept.requests({"srv-a"}, 0, now[0])] == [T0 + i for i in range(490, 500)]
    now[0] += 7200
    assert Telemetry(lambda: now[0], retention_s=3600, store=_store(tmp_path)).counts() == (0, 0)
    assert path.read_text() == ""  # what aged out is gone from the file too


def test_the_local_render_keeps_its_telemetry_in_its_data_directory(tmp_path):
    from deploypipe.emulator import build_emulator

    emulator = build_emulator(data_dir=tmp_path)
    emulator.telemetry.request(_request(emulator.clock()))
    emulator.close()
    restarted = build_emulator(data_dir=tmp_path)
    assert restarted.telemetry.counts() == (1, 1) and (tmp_path / "telemetry.jsonl").exists()
    restarted.close()


def test_a_store_that_fails_is_dropped_and_recording_goes_on_in_memory(tmp_path):
    store = _store(tmp_path)
    telemetry = Telemetry(lambda: T0, store=store)
    store.path = tmp_path / "gone" / "telemetry.jsonl"  # its directory removed under the running local Render
    telemetry.request(_request(T0))
    telemetry.request(_request(T0 + 1))
    assert telemetry.counts() == (2, 2)
