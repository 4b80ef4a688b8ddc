"""The default wave order of render.release comes from the Blueprint: a service that reads another with fromService
goes in a later wave; the pipeline's waves and depends_on take precedence; a cycle is exit 2 at load naming the
Blueprint's file, line and key; `plan` shows the waves and where their order came from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploypipe.errors import SpecError
from deploypipe.spec.release_order import release_order
from deploypipe.spec.targets import ServiceTarget, Targets

BLUEPRINT = """\
services:
  - type: web
    name: backend-api
    envVars:
      - {key: GREETING, value: hello}
  - type: web
    name: frontend
    envVars:
      - {key: GREETING, value: hi}
      - key: API_HOSTPORT
        fromService: {name: backend-api, type: web, property: hostport}
      - key: API_GREETING
        fromService: {name: backend-api, type: web, envVarKey: GREETING}
      - fromGroup: shared
  - type: worker
    name: mailer
"""
#: backend-api reads frontend too: references both ways (Render accepts them; no wave order follows)
CYCLE = BLUEPRINT.replace("      - {key: GREETING, value: hello}\n", "      - {key: GREETING, value: hello}\n"
                          "      - key: FRONTEND_HOST\n        fromService: {name: frontend, type: web, property: host}\n")

PIPELINE = """\
version: 1
name: shop
targets:
  services:
    web: {name: frontend%s}
    api: {name: backend-api}
    mailer: {name: mailer, kind: worker}
stages:
  - id: release
    type: render.release
    with: {services: [web, api, mailer]%s}
"""
TARGETS = Targets(services={"web": ServiceTarget(name="frontend"), "api": ServiceTarget(name="backend-api"),
                            "mailer": ServiceTarget(name="mailer", kind="worker")})
CLI = [sys.executable, "-c", "from deploypipe.cli import main; main()"]


def _project(root: Path, blueprint: str | None = BLUEPRINT, *, depends_on: str = "", with_: str = "") -> Path:
    if blueprint is not None:
        (root / "render.yaml").write_text(blueprint)
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pipelines" / "p.yaml").write_text(PIPELINE % (depends_on, with_))
    return root


def _plan(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "CI": "true"}
    return subprocess.run([*CLI, "plan", "--pipeline", "pipelines/p.yaml", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_service_that_reads_another_with_from_service_goes_in_a_later_wave(tmp_path):
    (tmp_path / "render.yaml").write_text(BLUEPRINT)
    order = release_order(["web", "api", "mailer"], TARGETS, None, tmp_path / "render.yaml", "render.yaml")
    assert order.waves == [["api", "mailer"], ["web"]] and order.source == "blueprint"
    assert order.reason == ("the Blueprint render.yaml: web after api (frontend's API_HOSTPORT fromService "
                            "backend-api, line 11)")


def test_without_references_between_the_release_s_services_or_without_a_blueprint_it_is_one_wave(tmp_path):
    (tmp_path / "render.yaml").write_text(BLUEPRINT)
    order = release_order(["api", "mailer"], TARGETS, None, tmp_path / "render.yaml", "render.yaml")
    assert order.waves == [["api", "mailer"]] and order.source == "none"
    assert "no fromService between these services in render.yaml" in order.reason
    missing = release_order(["web", "api"], TARGETS, None, tmp_path / "other.yaml", "other.yaml")
    assert missing.waves == [["web", "api"]] and missing.reason == ("none in the pipeline and no Blueprint "
                                                                    "(other.yaml not found): one wave")


def test_the_pipeline_s_waves_and_depends_on_take_precedence_over_the_blueprint(tmp_path):
    (tmp_path / "render.yaml").write_text(CYCLE)  # a Blueprint that could give no order at all
    explicit = release_order(["web", "api"], TARGETS, [["web"], ["api"]], tmp_path / "render.yaml")
    assert explicit.waves == [["web"], ["api"]] and explicit.reason == "the pipeline's with.waves"
    targets = Targets(services={**TARGETS.services, "api": ServiceTarget(name="backend-api", depends_on=["web"])})
    declared = release_order(["web", "api"], targets, None, tmp_path / "render.yaml")
    assert declared.waves == [["web"], ["api"]] and declared.reason == "the pipeline's depends_on (api after web)"


def test_a_cycle_of_references_is_refused_naming_the_blueprint_s_file_line_and_key(tmp_path):
    (tmp_path / "render.yaml").write_text(CYCLE)
    with pytest.raises(SpecError) as caught:
        release_order(["web", "api"], TARGETS, None, tmp_path / "render.yaml", "render.yaml")
    assert caught.value.where == f"{tmp_path / 'render.yaml'}:7"
    assert caught.value.message == (
        "services[0].envVars[1].fromService: fromService references make a cycle between the services of a "
        "render.release (api after web (backend-api's FRONTEND_HOST fromService frontend), web after api "
        "(frontend's API_HOSTPORT fromService backend-api)), so no wave order follows; expected references one "
        "way only")


# -- plan, the real command ------------------------------------------------------------------------------------
def test_plan_shows_the_blueprint_s_two_waves_and_the_reference_they_come_from(tmp_path):
    result = _plan(_project(tmp_path))
    assert result.returncode == 0, result.stderr
    assert ("      release waves: [api, mailer] then [web] (order: the Blueprint render.yaml: web after api (frontend's "
            "API_HOSTPORT fromService backend-api, line 11))") in result.stdout.splitlines()
    (step,) = json.loads(_plan(tmp_path, "--json").stdout)
    assert step["waves"] == [["api", "mailer"], ["web"]] and step["params"]["blueprint"] == "render.yaml"


def test_plan_shows_the_pipeline_s_order_when_it_declares_one_even_over_a_cyclic_blueprint(tmp_path):
    result = _plan(_project(tmp_path, CYCLE, with_=", waves: [[web, mailer], [api]]"))
    assert result.returncode == 0, result.stderr
    assert "      release waves: [web, mailer] then [api] (order: the pipeline's with.waves)" in result.stdout
    result = _plan(_project(tmp_path, CYCLE, depends_on=", depends_on: [api]"))
    assert result.returncode == 0, result.stderr
    assert "      release waves: [api, mailer] then [web] (order: the pipeline's depends_on (web after api))" in result.stdout


def test_plan_of_a_release_over_a_cycle_of_references_exits_2_with_one_line_naming_file_and_key(tmp_path):
    result = _plan(_project(tmp_path, CYCLE))
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"deploypipe: {tmp_path / 'render.yaml'}:7: services[0].envVars[1].fromService: "
                           "fromService references make a cycle"), line
    assert line.endswith("hint: declare the order in the pipeline (render.release with.waves, or depends_on on the "
                         "service targets): it takes precedence over the Blueprint"), line


def test_the_local_default_s_blueprint_is_local_blueprint_and_a_named_blueprint_must_exist(tmp_path):
    _project(tmp_path, None)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "bp.yaml").write_text(BLUEPRINT + "databases:\n  - name: shop-db\n")
    pipeline = tmp_path / "pipelines" / "p.yaml"
    pipeline.write_text(pipeline.read_text().replace("stages:", "local: {blueprint: deploy/bp.yaml}\nstages:"))
    result = _plan(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "release waves: [api, mailer] then [web] (order: the Blueprint deploy/bp.yaml: web after api" in result.stdout
    pipeline.write_text(PIPELINE % ("", ", blueprint: missing.yaml"))
    result = _plan(tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"deploypipe: {pipeline}:11: stages[0].with.blueprint: missing.yaml not found in "
                             f"{tmp_path}; expected the Blueprint whose fromService references order the waves\n")
