"""The lint.blueprint stage: blocks on findings at or above fail_on, reports the rest as warnings."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import SEED_000

from deploypipe.errors import StageErrored, StageFailed
from deploypipe.spec.targets import ServiceTarget, Targets
from deploypipe.stages.context import Resources, StageContext
from deploypipe.stages.lint import LintBlueprint
from deploypipe.testing import stage_context

ROOT = Path(__file__).resolve().parents[2]

TWO_SERVICES = """\
services:
  - type: web
    name: backend-api
    healthCheckPath: /health
    autoDeploy: false
  - type: web
    name: frontend
"""


def context(project: Path, targets: Targets | None = None, events: list | None = None) -> StageContext:
    resources = Resources(project_dir=project, state_dir=project / ".deploypipe", env={}, targets=targets or Targets())
    sink = events if events is not None else []

    def emit(event: str, **fields: Any) -> None:
        sink.append({"event": event, **fields})

    return stage_context(resources, stage_id="blueprint", stage_type="lint.blueprint", run_dir=project / "run",
                         emit=emit)


def write(project: Path, text: str, name: str = "render.yaml") -> Path:
    path = project / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run(project: Path, targets: Targets | None = None, events: list | None = None, **params: Any):
    stage = LintBlueprint()
    return stage.run(context(project, targets, events), LintBlueprint.Params(**params))


def test_the_seed_blueprint_blocks_the_run_listing_every_error(tmp_path):
    write(tmp_path, SEED_000)
    events: list = []
    with pytest.raises(StageFailed) as info:
        run(tmp_path, events=events)
    message = str(info.value)
    assert message.startswith("stage blueprint: render.yaml: 3 errors, 1 warning (fail_on: error): ")
    assert message.count(" | ") == 2
    assert "render.yaml:9:7: error [migrate-resolve]" in message and "render.yaml:9:7: error [or-true]" in message
    assert "render.yaml:10:7: error [migration-in-start-command]" in message
    assert "long-start-chain" not in message
    assert [e["rule"] for e in events if e["event"] == "blueprint_finding"] == [
        "long-start-chain", "migrate-resolve", "or-true", "migration-in-start-command"]


def test_warnings_pass_and_are_reported_with_the_findings_in_outputs(tmp_path):
    write(tmp_path, TWO_SERVICES)
    targets = Targets(services={"api": ServiceTarget(name="backend-api")})
    result = run(tmp_path, targets)
    assert result.summary == "render.yaml: 1 warning"
    assert [f.rule for f in result.outputs.findings] == ["missing-health-check"]
    assert result.outputs.findings[0].subject == "service frontend"
    assert len(result.warnings) == 1 and "[missing-health-check] service frontend" in result.warnings[0]
    assert result.changed_production is False


def test_auto_deploy_is_checked_for_the_pipeline_targets_by_default(tmp_path):
    write(tmp_path, TWO_SERVICES)
    targets = Targets(services={"api": ServiceTarget(name="backend-api"), "web": ServiceTarget(name="frontend")})
    with pytest.raises(StageFailed, match=r"\[auto-deploy-on\] service frontend"):
        run(tmp_path, targets)


def test_explicit_services_override_the_targets(tmp_path):
    write(tmp_path, TWO_SERVICES)
    targets = Targets(services={"api": ServiceTarget(name="backend-api"), "web": ServiceTarget(name="frontend")})
    result = run(tmp_path, targets, services=["backend-api"])
    assert [f.rule for f in result.outputs.findings] == ["missing-health-check"]


def test_fail_on_warning_blocks_on_warnings(tmp_path):
    write(tmp_path, TWO_SERVICES)
    with pytest.raises(StageFailed, match=r"render.yaml: 1 warning \(fail_on: warning\): .*missing-health-check"):
        run(tmp_path, services=["backend-api"], fail_on="warning")


def test_a_deployed_service_missing_from_the_blueprint_is_a_warning(tmp_path):
    write(tmp_path, TWO_SERVICES)
    targets = Targets(services={"api": ServiceTarget(name="backend-api"), "jobs": ServiceTarget(id="srv-123")})
    result = run(tmp_path, targets, services=["backend-api", "worker"])
    assert result.warnings[0] == ("service worker is deployed by the pipeline but not described in render.yaml, so it "
                                  "was not linted")
    result = run(tmp_path, targets)
    assert result.warnings[0].startswith("service target jobs has only an id")


def test_a_missing_blueprint_errors_with_a_hint(tmp_path):
    with pytest.raises(StageErrored, match=r"stage blueprint: deploy/render.yaml not found in .*; hint: set `with: "):
        run(tmp_path, path="deploy/render.yaml")


def test_an_invalid_blueprint_fails_naming_file_and_line(tmp_path):
    path = write(tmp_path, "services:\n  - type: web\n\tname: a\n")
    with pytest.raises(StageFailed) as info:
        run(tmp_path)
    assert str(info.value) == (f"stage blueprint: {path}:3: invalid YAML: found character '\\t' that cannot start any "
                               "token; expected a Render Blueprint (YAML)")


def test_the_repository_blueprint_passes_for_the_local_pipeline_target():
    targets = Targets(services={"web": ServiceTarget(name="sampleapp")})
    result = run(ROOT, targets)
    assert result.outputs == LintBlueprint.Outputs(path="render.yaml", findings=[]) and result.warnings == ()


def test_plan_names_the_file_threshold_and_services():
    stage = LintBlueprint()
    assert stage.plan(LintBlueprint.Params()) == ("lint render.yaml (fail on errors; auto-deploy checked for the "
                                                  "pipeline's service targets)")
    assert stage.plan(LintBlueprint.Params(services=["api"], fail_on="warning")).endswith("warnings; auto-deploy "
                                                                                          "checked for api)")
