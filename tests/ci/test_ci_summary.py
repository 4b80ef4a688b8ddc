"""deploypipe.output.ci_summary: the Markdown a CI job shows for a run report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import deploypipe.output.ci_summary as ci_summary
from deploypipe.cli.entry import run as deploypipe
from deploypipe.output.ci_summary import render_markdown, write_step_summary
from deploypipe.stages.report import Report

REPORT = {
    "run_id": "20251120T101500Z-ab12cd", "pipeline": "production",
    "started_at": "2025-11-20T10:15:00+00:00", "finished_at": "2025-11-20T10:18:12+00:00",
    "outcome": "rolled_back", "exit_code": 3,
    "message": "stage verify-api (verify.health) failed: smoke GET /api/v1/status: status 500, expected 200",
    "stages": [
        {"id": "blueprint", "type": "lint.blueprint", "status": "succeeded", "attempts": 1, "duration_s": 0.04,
         "error": None, "outputs": {}, "warnings": ["render.yaml:7: warning [missing-health-check] service web"]},
        {"id": "deploy-api", "type": "render.deploy", "status": "succeeded", "attempts": 2, "duration_s": 125.5,
         "error": None, "outputs": {"deploy_id": "dep-new"}},
        {"id": "verify-api", "type": "verify.health", "status": "failed", "attempts": 1, "duration_s": 31.2,
         "error": {"type": "StageFailed", "message": "smoke GET /api/v1/status: status 500 | expected 200\nsee log"},
         "outputs": {}},
        {"id": "notify", "type": "notify.webhook", "status": "skipped", "attempts": 0, "duration_s": 0.0,
         "error": None, "outputs": {}},
    ],
    "deploys": [{"service": "api", "deploy_id": "dep-new", "commit": "0123456789abcdef0123", "status": "live"},
                {"service": "api", "deploy_id": "dep-rb", "commit": "fedcba9876543210", "status": "live"}],
    "rollback": {"performed": True, "verified": True,
                 "items": [{"stage": "deploy-api", "type": "render.deploy", "action": "rolled_back", "verified": True,
                            "summary": "api: rolled back to dep-old", "details": {}}]},
    "run_dir": ".deploypipe/runs/20251120T101500Z-ab12cd",
}

EXPECTED = """\
## ↩️ deploypipe production: rolled back (exit 3)

> stage verify-api (verify.health) failed: smoke GET /api/v1/status: status 500, expected 200

Run `20251120T101500Z-ab12cd` · started 2025-11-20T10:15:00+00:00 · took 3m 12s

| Stage | Type | Result | Attempts | Time |
|---|---|---|---:|---:|
| blueprint | `lint.blueprint` | ✅ succeeded | 1 | 0.0 s |
| deploy-api | `render.deploy` | ✅ succeeded | 2 | 2m 06s |
| verify-api | `verify.health` | ❌ failed: StageFailed: smoke GET /api/v1/status: status 500 \\| expected 200<br>see log | 1 | 31.2 s |
| notify | `notify.webhook` | ⏭️ skipped | 0 | 0.0 s |

### Warnings

- **blueprint**: render.yaml:7: warning [missing-health-check] service web

### Deploys

| Service | Deploy | Commit | Status |
|---|---|---|---|
| api | `dep-new` | `0123456789ab` | live |
| api | `dep-rb` | `fedcba987654` | live |

### Rollback

Rollback performed, ✅ verified.

| Stage | Action | Verified | Summary |
|---|---|---|---|
| deploy-api | rolled_back | ✅ | api: rolled back to dep-old |

Run directory: `.deploypipe/runs/20251120T101500Z-ab12cd` (events.jsonl and report.json)

"""


def test_a_rolled_back_run_renders_heading_stage_table_deploys_rollback_and_run_dir():
    assert render_markdown(Report.model_validate(REPORT)) == EXPECTED


def test_an_unverified_rollback_says_a_human_must_act():
    report = {**REPORT, "outcome": "needs_human", "exit_code": 4,
              "rollback": {"performed": True, "verified": False,
                           "items": [{"stage": "migrate", "type": "db.migrate", "action": "restore", "verified": False,
                                      "summary": "x"}]}}
    text = render_markdown(Report.model_validate(report))
    assert text.startswith("## 🚨 deploypipe production: needs human (exit 4)\n")
    assert "Rollback performed, 🚨 **NOT verified: a human must act**." in text
    assert "| migrate | restore | ❌ | x |" in text


def test_a_clean_deploy_has_no_rollback_or_warning_sections():
    report = {**REPORT, "outcome": "deployed", "exit_code": 0, "message": "deployed",
              "rollback": {"performed": False, "verified": None, "items": []},
              "stages": [{**s, "warnings": []} for s in REPORT["stages"]]}
    text = render_markdown(Report.model_validate(report))
    assert text.startswith("## ✅ deploypipe production: deployed (exit 0)\n\nRun `")
    assert "### Rollback" not in text and "### Warnings" not in text and "### Deploys" in text


def test_long_cells_are_cut():
    report = {**REPORT, "stages": [{**REPORT["stages"][2], "error": {"type": "E", "message": "x" * 1000}}]}
    row = [line for line in render_markdown(Report.model_validate(report)).splitlines() if line.startswith("| verify-api")][0]
    assert "x" * 280 in row and "x" * 300 not in row and "…" in row


def test_write_step_summary_appends(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("earlier step\n")
    write_step_summary(Report.model_validate(REPORT), path)
    write_step_summary(Report.model_validate(REPORT), path)
    assert path.read_text() == "earlier step\n" + EXPECTED + EXPECTED


def test_the_command_prints_markdown_for_a_report_file(tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT, indent=2) + "\n")
    assert deploypipe(["ci-summary", str(path)]) == 0
    assert capsys.readouterr().out == EXPECTED


def test_the_command_reads_the_report_from_standard_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "deploypipe.cli", "ci-summary", "-"], input=json.dumps(REPORT),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == EXPECTED


def test_the_command_appends_to_output(tmp_path):
    report, out = tmp_path / "report.json", tmp_path / "summary.md"
    report.write_text(json.dumps(REPORT))
    out.write_text("before\n")
    assert deploypipe(["ci-summary", str(report), "--output", str(out)]) == 0
    assert out.read_text() == "before\n" + EXPECTED


@pytest.mark.parametrize(("content", "reason"), [
    (None, "file not found"),
    ("", "empty"),
    ("deploypipe: pipeline.yaml:3: ...\n", "not JSON (line 1: Expecting value)"),
    ('{"run_id": "x"}', "not a deploypipe run report (no outcome)"),
])
def test_without_a_usable_report_the_summary_says_so_with_the_exit_code(tmp_path, capsys, content, reason):
    path = tmp_path / "report-stdout.json"
    if content is not None:
        path.write_text(content)
    assert deploypipe(["ci-summary", str(path), "--exit-code", "2"]) == 0
    assert capsys.readouterr().out == (
        f"## ⛔ deploypipe: no run report (exit 2)\n\n`{path}`: {reason}. deploypipe stopped before a run started "
        "(invalid usage, pipeline or configuration, or the lock was held); its one-line reason is in the step's log.\n")


def test_the_installed_command_prints_the_summary(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT))
    proc = subprocess.run([sys.executable, "-m", "deploypipe.cli", "ci-summary", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout == EXPECTED


def test_all_is_honest():
    for name in ci_summary.__all__:
        assert callable(getattr(ci_summary, name))
    assert set(ci_summary.__all__) == {n for n in vars(ci_summary) if callable(getattr(ci_summary, n))
                                       and not n.startswith("_") and getattr(getattr(ci_summary, n), "__module__",
                                                                             None) == ci_summary.__name__}
