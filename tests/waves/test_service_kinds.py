"""A stage that needs a URL, given a service without one, is refused at load time (exit 2) by plan, lint and deploy,
with one line naming the file, the line and the key."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deploypipe.engine.loader import load_pipeline
from deploypipe.errors import SpecError

REPO = Path(__file__).resolve().parents[2]
PIPELINE = textwrap.dedent('''\
    version: 1
    name: kinds
    targets:
      services:
        web: {name: shop}
        worker: {name: shop-worker, kind: worker}
        jobs: {name: shop-cron, kind: cron}
        internal: {name: shop-internal, kind: private}
    stages:
      - id: verify
        type: {type}
        with: {service: {service}}
''')


def _write(tmp_path: Path, stage_type: str, service: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.replace("{type}", stage_type).replace("{service}", service))
    return path


@pytest.mark.parametrize("stage_type,service,kind", [
    ("verify.health", "worker", "a background worker (kind: worker)"),
    ("verify.health", "jobs", "a cron job (kind: cron)"),
    ("verify.health", "internal", "a private service (kind: private)"),
    ("verify.traffic", "worker", "a background worker (kind: worker)"),
])
def test_a_url_stage_on_a_service_without_a_url_is_a_spec_error_naming_file_line_and_key(tmp_path, stage_type,
                                                                                         service, kind):
    path = _write(tmp_path, stage_type, service)
    with pytest.raises(SpecError) as caught:
        load_pipeline(path, {})
    needs = "needs the service's URL" if stage_type == "verify.health" else "judges the service's HTTP traffic"
    assert caught.value.render() == (
        f"{path}:12: stages[0].with.service: {stage_type} {needs}, and service target '{service}' is {kind}, which "
        "has none; expected a web service; hint: render.release verifies workers, private services and cron jobs "
        "from Render's events and logs; drop this stage or point it at a web service")


def test_a_web_service_and_a_private_service_with_a_url_pass(tmp_path):
    load_pipeline(_write(tmp_path, "verify.health", "web"), {})
    path = tmp_path / "q.yaml"
    path.write_text(PIPELINE.replace("kind: private}", "kind: private, url: 'http://10.0.0.5:8080'}")
                    .replace("{type}", "verify.health").replace("{service}", "internal"))
    load_pipeline(path, {})


def test_an_unknown_dependency_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.replace("kind: worker}", "kind: worker, depends_on: [webb]}")
                    .replace("{type}", "shell.run").replace("with: {service: {service}}", "with: {command: 'true'}"))
    with pytest.raises(SpecError) as caught:
        load_pipeline(path, {})
    assert "services.worker.depends_on: unknown service target 'webb'; expected one of: internal, jobs, web" \
        in caught.value.render()


@pytest.mark.parametrize("waves,problem", [
    ("[[web], [wokrer]]", "unknown service 'wokrer'; expected one of: internal, jobs, web, worker"),
    ("[[worker, web]]", "service 'worker' (wave 1) depends on 'web', which is not in an earlier wave; expected each "
                        "service after the ones it depends_on"),
])
def test_release_waves_naming_an_unknown_service_or_breaking_depends_on_are_refused(tmp_path, waves, problem):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.replace("kind: worker}", "kind: worker, depends_on: [web]}")
                    .replace("{type}", "render.release").replace("with: {service: {service}}", f"with: {{waves: {waves}}}"))
    with pytest.raises(SpecError) as caught:
        load_pipeline(path, {})
    assert caught.value.render() == f"{path}:12: stages[0].with.waves: {problem}"


def _invoke(task: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENDER_")}
    where = [str(path)] if task == "lint" else ["--pipeline", str(path)]
    args = [str(Path(sys.executable).with_name("deploypipe")), task, *where]  # the installed entry point
    return subprocess.run(args, cwd=REPO, env={**env, "CI": "true"}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("task", ["plan", "deploy"])
def test_plan_and_deploy_exit_2_before_anything_runs(tmp_path, task):
    path = _write(tmp_path, "verify.health", "worker")
    result = _invoke(task, path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}:12: stages[0].with.service: verify.health needs the service's URL" in result.stderr


def test_lint_reports_it_as_an_error_finding_on_its_line(tmp_path):
    path = _write(tmp_path, "verify.health", "worker")
    result = _invoke("lint", path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}:12: error [pipeline-invalid] stages[0].with.service: verify.health needs the service's URL" \
        in result.stdout
