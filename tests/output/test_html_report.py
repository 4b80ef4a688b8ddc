"""deploypipe.output.html: the pieces of report.html (escaping, chart data from the journal, missing fields)."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from html_report_fixtures import (
    HOSTILE,
    SAMPLE_NAMES,
    TRAFFIC_VERDICT,
    copy_sample,
    load,
    traffic_events,
    traffic_stage,
    wave_events,
)

from deploypipe.output import html_data as data
from deploypipe.output.html import LOG_READ_MAX_BYTES, read_journal, render_html, write_report_html
from deploypipe.output.html_parts import fmt_seconds
from deploypipe.output.html_svg import nice_ticks, probe_svg
from deploypipe.output.html_traffic import traffic_looks, traffic_verdicts
from deploypipe.output.html_waves import waves
from deploypipe.stages.report import Report


class Page(HTMLParser):
    """Every element with its attributes, and the text of <style>, <script> and the CSP meta."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.raw: dict[str, list[str]] = {"style": [], "script": []}
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in self.raw:
            self._in = tag

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, text: str) -> None:
        if self._in:
            self.raw[self._in].append(text)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    def with_class(self, cls: str) -> list[dict[str, str | None]]:
        return [attrs for _, attrs in self.elements if cls in (attrs.get("class") or "").split()]

    @property
    def csp(self) -> str:
        return next(a["content"] or "" for a in self.tags("meta") if a.get("http-equiv") == "Content-Security-Policy")


def hostile_report(tmp_path: Path) -> tuple[Report, list[dict[str, Any]], dict[str, str]]:
    report, events, logs = load("rolled_back")
    stages = [s.model_copy(update={"summary": HOSTILE, "warnings": [HOSTILE]}) for s in report.stages]
    stages[0] = stages[0].model_copy(update={"id": "lint" + HOSTILE})
    report = report.model_copy(update={"message": HOSTILE, "pipeline": HOSTILE, "stages": stages})
    events = [*events, {"seq": 99, "ts": "2026-11-30T04:01:37+00:00", "event": "health_probe", "stage": "verify",
                        "url": HOSTILE, "phase": HOSTILE, "ok": False, "status": 500, "elapsed_ms": 3.0,
                        "reason": HOSTILE}]
    return report, events, {"migrate.migrate.log": f"line 1\n{HOSTILE}\n"}


def test_every_value_is_escaped_so_a_commit_message_or_log_line_cannot_add_markup(tmp_path: Path) -> None:
    page_text = render_html(*hostile_report(tmp_path))
    page = Page(page_text)
    assert len(page.tags("script")) == 1 and len(page.tags("style")) == 1
    assert page.tags("img") == [] and page.tags("iframe") == [] and page.tags("object") == []
    assert all(not name.startswith("on") for _, attrs in page.elements for name in attrs)
    assert "&lt;script&gt;window.__pwned" in page_text
    assert "<!--" not in page_text


def test_the_page_loads_nothing_from_anywhere() -> None:
    page = Page(render_html(*load("rolled_back")))
    for tag, attrs in page.elements:
        assert "src" not in attrs, tag
        href = attrs.get("href")
        assert href is None or href.startswith("#") or href == "data:,", (tag, href)
        assert all(not (value or "").startswith(("http:", "https:", "//")) for name, value in attrs.items()
                   if name != "xmlns"), (tag, attrs)
    assert "default-src 'none'" in page.csp and "unsafe-inline" not in page.csp


def test_the_csp_allows_exactly_the_inline_style_and_script_by_hash() -> None:
    page = Page(render_html(*load("deployed")))

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"style-src {digest(''.join(page.raw['style']))};" in page.csp
    assert f"script-src {digest(''.join(page.raw['script']))};" in page.csp


def test_probe_data_is_every_health_probe_event_in_journal_order_timed_from_the_run_start() -> None:
    report, events, _ = load("rolled_back")
    probes = data.probes(report, events)
    assert [p.phase for p in probes] == ["verify"] * 3 + ["after_rollback"] * 3
    assert [p.elapsed_ms for p in probes] == [14.9, 22.3, 21.4, 20.3, 18.4, 20.1]
    assert all(p.ok and p.status == 200 for p in probes)
    assert probes[0].at_s == pytest.approx(9.956, abs=0.001)  # 04:01:31.9448 - 04:01:21.9886


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_the_probe_chart_has_one_mark_per_probe_event(name: str) -> None:
    report, events, logs = load(name)
    expected = sum(1 for e in events if e["event"] == "health_probe")
    page = Page(render_html(report, events, logs))
    assert len(page.with_class("probe")) == expected
    assert len([a for a in page.with_class("probe") if "data-phase" in a]) == expected


def test_failed_probes_are_crosses_and_a_probe_without_answer_sits_on_the_no_answer_line() -> None:
    report, _, _ = load("deployed")
    events = [
        {"ts": "2026-11-30T04:01:00+00:00", "event": "health_probe", "phase": "observe", "ok": True,
         "elapsed_ms": 12.0, "status": 200, "url": "u", "reason": "status 200"},
        {"ts": "2026-11-30T04:01:01+00:00", "event": "health_probe", "phase": "observe", "ok": False,
         "elapsed_ms": None, "status": None, "url": "u", "reason": "connection refused"},
    ]
    svg = probe_svg(data.probes(report, events), [])
    assert svg.count('class="probe ok phase-observe"') == 1
    assert svg.count('class="probe fail phase-observe"') == 1 and 'class="cross"' in svg
    assert "no answer" in svg and "connection refused" in svg


def test_markers_are_the_deploy_going_live_and_each_rollback_step() -> None:
    report, events, _ = load("rolled_back")
    marks = data.markers(report, events)
    assert [(m.kind, m.label, m.ok) for m in marks] == [
        ("live", "web live", True), ("rollback_started", "rollback started", False),
        ("undone", "deploy: rolled_back", True), ("rollback_finished", "rollback verified", True)]
    assert marks[0].at_s < marks[1].at_s < marks[2].at_s < marks[3].at_s


def test_each_wave_shows_its_services_triggered_live_verdict_and_rollback_timed_from_the_run_start() -> None:
    report, events, logs = load("rolled_back")
    journal = events + wave_events(data.origin_of(report))

    found = waves(report, journal)

    assert [(w.number, w.started_s, w.finished_s, [s.key for s in w.services]) for w in found] == [
        (1, 10, 40, ["web", "api"]), (2, 41, 66, ["worker"])]
    web, api, worker = found[0].services + found[1].services
    assert (web.deploy_id, web.triggered_s, web.live_s, web.finished_s, web.outcome) == ("dep-web-1", 10.5, 32, 40,
                                                                                        "verified")
    assert (api.live_s, api.outcome, api.rollback_s, api.rollback_status, api.rollback_done_s) == (
        30, "verified", 81, "live", 96)
    assert (worker.live_s, worker.outcome, worker.rollback_s, worker.rollback_done_s) == (60, "failed", 67, 80)
    assert worker.problem.endswith("RuntimeError: boom")
    page = render_html(report, journal, logs)
    assert '<a href="#waves">Waves</a>' in page and page.count('<h3 class="wave"') == 2
    assert ('<td>worker</td><td><span class="mono">dep-wrk-1</span></td><td>42 s</td><td>1m 00s</td><td>1m 06s</td>'
            '<td><span class="status st-failed">failed</span> worker: 1 instance failure') in page
    assert '<td>web</td><td><span class="mono">dep-web-1</span></td><td>10 s</td><td>32 s</td>' in page
    assert "<td>1m 21s → live at 1m 35s</td>" in page
    assert 'id="waves"' not in render_html(report, events, logs)  # a run without render.release has no waves


def test_stage_bars_come_from_the_report_and_fall_back_to_journal_times() -> None:
    report, events, _ = load("rolled_back")
    bars = data.stage_bars(report, events)
    assert [b.id for b in bars] == [s.id for s in report.stages]
    assert bars[-1].status == "failed" and bars[-1].end_s == pytest.approx(12.011, abs=0.001)
    bare = report.model_copy(update={"stages": [s.model_copy(update={"started_at": None, "finished_at": None})
                                                for s in report.stages]})
    fallback = data.stage_bars(bare, events)
    assert fallback[-1].start_s == pytest.approx(9.901, abs=0.001)  # stage_started of verify
    assert fallback[-1].end_s == pytest.approx(12.011, abs=0.001)  # stage_failed of verify
    assert data.stage_bars(bare, [])[0].start_s is None


def test_retries_are_marked_on_their_stage_with_the_reason() -> None:
    report, events, logs = load("deployed")
    retry = {"seq": 12, "ts": "2026-11-30T04:01:00+00:00", "event": "stage_retrying", "stage": "deploy",
             "attempt": 1, "wait_s": 2.0, "reason": "render: 503 Service Unavailable"}
    bars = data.stage_bars(report, [*events, retry])
    assert [r.reason for b in bars for r in b.retries] == ["render: 503 Service Unavailable"]
    page = render_html(report, [*events, retry], logs)
    assert page.count('class="retry"') == 1 and "retry after attempt 1: render: 503 Service Unavailable" in page


def test_unknown_events_wrong_types_and_missing_fields_never_break_the_page() -> None:
    report, events, logs = load("rolled_back")
    junk: list[Any] = [
        "not an event", None, 42, {"event": "something_new", "ts": "2026-11-30T04:01:30Z", "shape": [1, {"x": 2}]},
        {"event": "health_probe"},  # no time: not drawn
        {"event": "health_probe", "ts": "yesterday"},
        {"event": "health_probe", "ts": 1_795_000_000.5, "ok": "yes", "elapsed_ms": "fast", "status": "200",
         "phase": None},
        {"event": "stage_retrying", "stage": "verify", "ts": "2026-11-30T04:01:33Z", "attempt": "two"},
        {"event": "rollback_started", "ts": "2026-11-30T04:01:34Z", "stages": "deploy"},
        {"event": "traffic_look", "verdict": {"status": "pass"}, "requests": float("nan")},
        {"event": "deploy_live", "ts": float("inf")},
    ]
    page = render_html(report, [*events, *junk], {**logs, "weird.log": "\x00\ufffd binary"})
    probes = data.probes(report, [*events, *junk])
    assert len(probes) == 7 and not probes[-1].ok and probes[-1].elapsed_ms is None and probes[-1].status is None
    assert "something_new" not in page and page.rstrip().endswith("</html>")


def test_a_report_with_no_stages_no_times_and_no_events_still_renders() -> None:
    report = Report(run_id="r1", pipeline="p", started_at="2026-11-30T04:00:00Z", outcome="blocked", exit_code=1)
    page = Page(render_html(report, [], {}))
    assert page.with_class("gantt") == [] and page.with_class("probes") == []
    assert len(page.tags("section")) == 4  # stages, health, rollback, logs: each says there is nothing


def test_traffic_looks_and_the_verdict_are_charted_when_present_and_absent_otherwise() -> None:
    report, events, logs = load("rolled_back")
    assert 'id="traffic"' not in render_html(report, events, logs)
    stages = [*report.model_dump(mode="json")["stages"], traffic_stage()]
    report = Report.model_validate({**report.model_dump(mode="json"), "stages": stages})
    looks = traffic_looks(report, [*events, *traffic_events()])
    assert [look.requests for look in looks] == [120, 260, 400, 520]
    assert looks[3].error_share == pytest.approx(41 / 520) and looks[0].baseline_error_share == pytest.approx(0.002)
    assert [round(look.at_s or 0) for look in looks] == [48, 78, 108, 138]  # ISO and epoch `at` alike
    page = Page(render_html(report, [*events, *traffic_events()], logs))
    assert len(page.with_class("look")) == 4 and len(page.with_class("look-latency")) == 4
    assert len(page.with_class("verdict-fail")) == 2 + 3  # the last look, in both service charts and per path
    assert len(page.with_class("path-look")) == 4 * 3  # three paths at four looks
    assert len(page.with_class("baseline-point")) == 5 + 1 + 3  # five buckets; the latency, service and per path
    assert len(page.with_class("switch")) == 3 and page.with_class("no-chart") == []
    assert [v.message for v in traffic_verdicts(report)] == [TRAFFIC_VERDICT["message"]]
    assert [v.compared for v in traffic_verdicts(report)] == [True]


def _circle_xs(page: str, mark: str) -> list[float]:
    """The x of every circle drawn in a mark of class ``mark``."""
    import re

    return [float(x) for x in re.findall(rf'<g class="{mark}[^"]*">.*?<circle cx="([0-9.]+)"', page)]


def test_the_baseline_is_drawn_before_the_switch_and_the_looks_after_it() -> None:
    import re

    report, events, logs = load("rolled_back")
    page = render_html(report, [*events, *traffic_events()], logs)
    switches = [float(x) for x in re.findall(r'<g class="switch marker"><line x1="([0-9.]+)"', page)]
    charts = page.split('<svg class="chart traffic ')[1:]
    assert len(charts) == len(switches) == 3
    for chart, switch in zip(charts, switches, strict=True):
        baseline, release = _circle_xs(chart, "baseline-point"), _circle_xs(chart, "(?:look|look-latency|path-look)")
        assert baseline and release
        assert max(baseline) < switch < min(release), (baseline, switch, release)


def test_without_a_baseline_the_verdict_says_floors_only_and_no_comparison_is_drawn() -> None:
    report, events, logs = load("rolled_back")
    floors = {**TRAFFIC_VERDICT, "compared": False, "message": "success rate 92.11 % below 99 %"}
    stage = {**traffic_stage(), "outputs": {"verdict": floors}}
    report = Report.model_validate({**report.model_dump(mode="json"),
                                    "stages": [*report.model_dump(mode="json")["stages"], stage]})
    page = Page(render_html(report, [*events, *traffic_events()], logs))
    text = render_html(report, [*events, *traffic_events()], logs)
    assert "no baseline — floors only" in text and len(page.with_class("no-baseline")) == 1
    assert page.with_class("baseline-point") == [] and len(page.with_class("look")) == 4
    assert "baseline_latency_ms" not in text.split('id="traffic"')[1].split("</section>")[0]


def test_a_chart_with_no_figure_of_the_release_is_replaced_by_a_line_saying_so() -> None:
    report, events, logs = load("rolled_back")
    looks = [{**e, "latency_ms": None, "path_latency": []} if e["event"] == "traffic_look" else e
             for e in traffic_events()]
    page = Page(render_html(report, [*events, *looks], logs))
    assert len(page.with_class("traffic-errors")) == 1
    assert page.with_class("traffic-latency") == [] and page.with_class("traffic-paths") == []
    assert len(page.with_class("no-chart")) == 2


def test_a_traffic_verdict_may_be_the_outputs_themselves_and_looks_may_lack_times() -> None:
    report, _, _ = load("deployed")
    stage = {**traffic_stage(), "outputs": {**TRAFFIC_VERDICT, "worst_paths": "not a list", "figures": None}}
    report = Report.model_validate({**report.model_dump(mode="json"), "stages": [stage]})
    (verdict,) = traffic_verdicts(report)
    assert verdict.status == "fail" and verdict.worst_paths == [] and verdict.figures == {}
    looks = [{"event": "traffic_look", "requests": 10, "errors": 1}, {"event": "traffic_look", "requests": 20}]
    page = render_html(report, looks, {})
    assert "look 1" in page and "look 2" in page


class _FutureReport(Report):
    """The report model once it carries Render's log lines of a failed deploy."""

    diagnostics: list[dict[str, Any]] = []


def test_diagnostics_are_shown_when_the_report_model_has_them() -> None:
    report, events, logs = load("rolled_back")
    lines = [f"npm ERR! line {i}" for i in range(45)]
    future = _FutureReport.model_validate({**report.model_dump(mode="json"), "diagnostics": [
        {"stage": "deploy", "service": "web", "deploy_id": "dep-1", "kind": "build", "lines": lines},
        {"stage": "deploy", "service": "web", "deploy_id": "dep-1", "kind": "app", "lines": "one\ntwo"}]})
    (build, app) = data.diagnostics(future)
    assert build.lines == tuple(lines[-30:]) and build.total_lines == 45 and app.lines == ("one", "two")
    page = Page(render_html(future, events, logs))
    assert len(page.with_class("diagnostic")) == 2
    assert data.diagnostics(report) == []


def test_log_excerpts_keep_the_last_30_lines_and_name_the_stage_that_wrote_them() -> None:
    report, _, _ = load("rolled_back")
    logs = {"migrate.migrate.log": "\n".join(f"line {i}" for i in range(100)), "dry-run.dry_run.log": "",
            "stray.log": "x"}
    excerpts = data.log_excerpts(report, logs)
    assert [(e.name, e.stage) for e in excerpts] == [("dry-run.dry_run.log", "dry-run"),
                                                     ("migrate.migrate.log", "migrate"), ("stray.log", "")]
    assert excerpts[1].lines == tuple(f"line {i}" for i in range(70, 100)) and excerpts[1].total_lines == 100
    page = render_html(report, [], logs)
    assert "last 30 of 100 lines" in page and "line 69\n" not in page and "line 70\n" in page
    assert re.search(r"<details class=\"log\"(?! open)", page)  # collapsed by default


def test_write_report_html_writes_report_html_beside_report_json(tmp_path: Path) -> None:
    run_dir = copy_sample("rolled_back", tmp_path)
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as out:
        out.write('{"seq": 45, "event": "torn')  # killed mid-write
    big = run_dir / "verify.smoke.log"
    big.write_bytes(b"x" * (LOG_READ_MAX_BYTES + 10) + b"\nlast line\n")
    path = write_report_html(run_dir)
    assert path == run_dir / "report.html" and sorted(p.name for p in run_dir.glob(".*")) == []
    page = path.read_text(encoding="utf-8")
    assert "rolled back · exit 3" in page and "last line" in page and "x" * 1000 not in page
    assert len(read_journal(run_dir)) == 44


def test_the_header_shows_outcome_exit_code_message_run_id_start_and_duration() -> None:
    report, events, logs = load("rolled_back")
    page = render_html(report, events, logs)
    assert '<body class="outcome-rolled_back">' in page and "rolled back · exit 3</span>" in page
    assert "stage verify (verify.health) failed: smoke GET /notes: status 500, expected 200" in page
    assert "20261130T040121Z-7c58c5" in page and "2026-11-30 04:01:21 UTC" in page and "<dd>15 s</dd>" in page


@pytest.mark.parametrize(("lo", "hi", "ticks"), [
    (0, 15.4, [0, 2, 4, 6, 8, 10, 12, 14]), (9.6, 15.7, [10, 11, 12, 13, 14, 15]), (0, 0, [0]),
    (0, 0.7, [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]), (0, 1e-9, [0, 2e-10, 4e-10, 6e-10, 8e-10, 1e-9]),
    (-3, 3, [-3, -2, -1, 0, 1, 2, 3])])
def test_ticks_are_round_numbers_inside_the_range(lo: float, hi: float, ticks: list[float]) -> None:
    assert nice_ticks(lo, hi, 8) == pytest.approx(ticks, abs=1e-15)


def test_durations_read_like_a_person_writes_them() -> None:
    assert [fmt_seconds(v) for v in (0.009, 5.643, 12, 95, 4000)] == ["0.0 s", "5.6 s", "12 s", "1m 35s", "1h 06m"]
