"""report.html in a real headless browser: Debian's chromium driven by playwright, nothing downloaded at test time.

The browser is ``$DEPLOYPIPE_CHROMIUM`` or ``/usr/bin/chromium`` (``apt-get install -y chromium``); playwright only
drives it (``playwright install`` is never run). When it is missing the tests FAIL with the install command: CI
installs it before the suite, so a skipped browser test would hide a broken report.

``DEPLOYPIPE_UPDATE_SCREENSHOT=1 python -m pytest tests/output/test_html_report_browser.py`` also rewrites
``docs/report.png`` (the rolled-back sample, 1280 px wide) for the README.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from html_report_fixtures import (
    HOSTILE,
    SAMPLE_NAMES,
    append_events,
    copy_sample,
    read_events,
    traffic_events,
    traffic_stage,
    wave_events,
)

from deploypipe.output.html import write_report_html
from deploypipe.stages.report import Report

CHROMIUM = Path(os.environ.get("DEPLOYPIPE_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report.png"

try:
    from playwright.sync_api import Browser, Page, Request, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'", pytrace=False)
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium with `apt-get install -y chromium` "
                    "(as root), or set DEPLOYPIPE_CHROMIUM to a Chromium binary", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Opened:
    """A report open in a page, and everything the page said or asked for."""

    page: Page
    url: str
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """Every request other than the page itself: a self-contained report makes none."""
        return [url for url in self.requests if url != self.url]


@pytest.fixture
def open_report(browser: Browser) -> Iterator[Any]:
    pages: list[Page] = []

    def _open(path: Path) -> Opened:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=True)
        page = context.new_page()
        pages.append(page)
        opened = Opened(page, path.resolve().as_uri())

        def route(request_route: Any, request: Request) -> None:  # nothing may leave the page
            if request.url == opened.url:
                request_route.continue_()
            else:
                request_route.abort()

        page.route("**/*", route)
        page.on("console", lambda message: opened.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: opened.errors.append(str(error)))
        page.on("request", lambda request: opened.requests.append(request.url))
        page.on("requestfailed", lambda request: opened.errors.append(f"request failed: {request.url}"))
        page.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(opened.url, wait_until="load")
        return opened

    yield _open
    for page in pages:
        page.context.close()


def _assert_clean(opened: Opened) -> None:
    assert [m for m in opened.console if m.startswith(("error", "warning"))] == []
    assert opened.errors == [] and opened.dialogs == []
    assert opened.outside() == [] and opened.requests == [opened.url]


def _drawn(page: Page, selector: str) -> int:
    """How many elements match and have a visible, non-empty box (so the mark is really on the chart)."""
    return int(page.eval_on_selector_all(selector, """els => els.filter(e => {
        const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length"""))


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_each_sample_report_renders_with_a_row_per_stage_a_mark_per_probe_and_no_errors(
        name: str, tmp_path: Path, open_report: Any) -> None:
    run_dir = copy_sample(name, tmp_path)
    report = Report.load(run_dir / "report.json")
    probe_events = [e for e in read_events(run_dir) if e.get("event") == "health_probe"]
    opened = open_report(write_report_html(run_dir))
    page = opened.page

    outcome = report.outcome.value.replace("_", " ")
    assert page.title() == f"deploypipe · {report.pipeline} · {outcome} · {report.run_id}"
    assert page.inner_text("#outcome") == f"{outcome} · exit {report.exit_code}"
    assert page.locator("svg.gantt .stage-row").count() == len(report.stages)
    assert page.locator("table.stages tbody tr").count() == len(report.stages)
    assert _drawn(page, "svg.gantt .stage-row .bar") == len(report.stages)  # every stage ran: a bar each
    assert len(probe_events) > 0
    assert _drawn(page, "svg.probes .probe") == len(probe_events)
    assert page.locator("svg.probes .probe.fail").count() == sum(1 for e in probe_events if not e["ok"])
    phases = page.eval_on_selector_all("svg.probes .probe", "els => els.map(e => e.dataset.phase)")
    assert phases == [e["phase"] for e in probe_events]
    assert page.locator("details.log[open]").count() == 0  # logs collapsed by default
    assert page.is_visible(".tools")  # the script ran under the page's CSP
    _assert_clean(opened)


def test_the_rolled_back_report_marks_the_rollback_and_lists_its_steps(tmp_path: Path, open_report: Any) -> None:
    run_dir = copy_sample("rolled_back", tmp_path)
    page = open_report(write_report_html(run_dir)).page
    assert page.locator("svg.probes .marker-live").count() == 1
    assert page.locator("svg.probes .rollback-band").count() == 1
    assert page.locator("svg.gantt .rollback-band").count() == 1
    assert page.locator("#rollback ol.steps li").count() == 2
    assert "Rollback performed and verified." in page.inner_text("#rollback")
    page.set_viewport_size({"width": 1280, "height": 900})
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("DEPLOYPIPE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_hostile_text_shows_as_text_and_the_traffic_analysis_is_charted(tmp_path: Path, open_report: Any) -> None:
    run_dir = copy_sample("rolled_back", tmp_path)
    report = Report.load(run_dir / "report.json")
    data = report.model_dump(mode="json")
    data["message"] = HOSTILE
    data["stages"] = [*data["stages"], {**traffic_stage(), "summary": HOSTILE}]
    (run_dir / "report.json").write_text(Report.model_validate(data).model_dump_json(), encoding="utf-8")
    append_events(run_dir, traffic_events())
    append_events(run_dir, wave_events(report.started_at))
    (run_dir / "verify.smoke.log").write_text(f"GET /notes 500\n{HOSTILE}\n", encoding="utf-8")
    opened = open_report(write_report_html(run_dir))
    page = opened.page

    assert page.evaluate("() => window.__pwned") is None
    assert HOSTILE in page.inner_text("header .message")
    page.click(".tools [data-open]", timeout=5000)  # the script opens every log
    assert page.locator("details.log[open]").count() == 3
    assert HOSTILE in page.inner_text("details.log:last-of-type pre")
    assert _drawn(page, "svg.traffic .look") == 4 and _drawn(page, "svg.traffic .look-latency") == 4
    assert _drawn(page, "svg.traffic .path-look") == 4 * 3
    assert page.locator("#traffic table.worst-paths tbody tr").count() == 1
    assert page.locator("svg.gantt .stage-row").count() == len(data["stages"])
    assert page.locator("#waves table.waves tbody tr").count() == 3
    assert "RuntimeError: boom" in page.inner_text("#wave-2 + table.waves")
    _assert_clean(opened)


def test_the_printed_page_hides_navigation_and_opens_every_log(tmp_path: Path, open_report: Any) -> None:
    page = open_report(write_report_html(copy_sample("deployed", tmp_path))).page
    page.emulate_media(media="print")
    assert not page.is_visible("nav")
    page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
    assert page.locator("details[open]").count() == page.locator("details").count() > 0
    page.evaluate("() => window.dispatchEvent(new Event('afterprint'))")
    assert page.locator("details[open]").count() == 0


def _marks_per_chart(page: Page) -> list[dict[str, Any]]:
    """For each traffic chart on screen: its name, the switch line's x and the x of every drawn mark, by kind."""
    return list(page.eval_on_selector_all("svg.traffic", """charts => charts.map(chart => {
        const xs = sel => [...chart.querySelectorAll(sel)].map(e => e.getBoundingClientRect())
            .filter(r => r.width > 0 && r.height > 0).map(r => r.x + r.width / 2);
        const lines = sel => [...chart.querySelectorAll(sel)].filter(e => {
            const r = e.getBoundingClientRect(); return r.width > 0 || r.height > 0; }).length;
        return {name: [...chart.classList].find(c => c.startsWith("traffic-")),
                switch: [...chart.querySelectorAll(".switch line")].map(e => e.getBoundingClientRect())
                    .filter(r => r.height > 0).map(r => r.x)[0] ?? null,
                release: xs(".look circle, .look-latency circle, .path-look circle"),
                baseline: xs(".baseline-point circle"),
                lines: lines(".traffic-line")};
    })"""))


def test_every_traffic_chart_has_data_with_the_baseline_before_the_switch(tmp_path: Path, open_report: Any) -> None:
    run_dir = copy_sample("rolled_back", tmp_path)
    data = Report.load(run_dir / "report.json").model_dump(mode="json")
    data["stages"] = [*data["stages"], traffic_stage()]
    (run_dir / "report.json").write_text(Report.model_validate(data).model_dump_json(), encoding="utf-8")
    append_events(run_dir, traffic_events())
    opened = open_report(write_report_html(run_dir))
    charts = _marks_per_chart(opened.page)
    assert [c["name"] for c in charts] == ["traffic-errors", "traffic-latency", "traffic-paths"]
    for chart in charts:
        assert chart["release"] and chart["baseline"] and chart["lines"], chart  # an empty chart fails here
        assert chart["switch"] is not None
        assert max(chart["baseline"]) < chart["switch"] < min(chart["release"]), chart
    assert len(charts[2]["release"]) == 4 * 3 and len(charts[2]["baseline"]) == 3  # every path, before and after
    assert opened.page.locator("#traffic .no-chart").count() == 0
    _assert_clean(opened)
