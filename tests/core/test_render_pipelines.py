"""Pipelines that deploy through the local Render (in-process, simulated deploys): exit codes 1, 3 and 4 and
multi-service rollbacks, plus undoing a run that was killed after it triggered a deploy."""

from __future__ import annotations

import io
import json
import textwrap

import pytest

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.rollback import rollback
from deploypipe.commands.run import run_pipeline
from deploypipe.emulator import build_emulator, in_process_client
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.render.client import RenderClient

GOOD, NEW = "a" * 40, "b" * 40


@pytest.fixture
def render(tmp_path):
    emulator = build_emulator()
    services = {}
    for name in ("api", "web"):
        service = emulator.add_service(ServiceDef(type="web", name=name, startCommand="run", healthCheckPath="/health"))
        emulator.trigger(service, commit_id=GOOD)  # simulated: live at once
        services[name] = service
    return emulator, services


def _run(tmp_path, emulator, body: str, **kwargs):
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    (tmp_path / "pipelines" / "p.yaml").write_text(textwrap.dedent(body))
    waits: list[float] = []
    inv = Invocation(pipeline="pipelines/p.yaml", project_dir=tmp_path, env={"PATH": "/usr/bin:/bin"},
                     json_output=True, stdout=io.StringIO(), stderr=io.StringIO(), interactive=False,
                     sleep=waits.append, render_factory=lambda: RenderClient(in_process_client(emulator), sleep=waits.append))
    return inv


HEAD = f"""\
version: 1
name: two-services
targets:
  services:
    api: {{name: api}}
    web: {{name: web}}
stages:
  - id: deploy-api
    type: render.deploy
    with: {{service: api, commit: "{NEW}", poll_s: 0.01}}
  - id: deploy-web
    type: render.deploy
    with: {{service: web, commit: "{NEW}", poll_s: 0.01}}
"""


def _live(emulator, service) -> str:
    return emulator.service(service.id).live().commit_id


def test_a_failure_after_both_services_deployed_rolls_both_back_in_reverse(tmp_path, render):
    emulator, services = render
    inv = _run(tmp_path, emulator, HEAD + "  - id: check\n    type: shell.run\n    with: {command: 'exit 1'}\n")
    report = run_pipeline(inv)
    assert report.exit_code == 3 and report.outcome == "rolled_back", report.message
    assert [item.stage for item in report.rollback.items] == ["deploy-web", "deploy-api"]
    assert _live(emulator, services["api"]) == GOOD and _live(emulator, services["web"]) == GOOD
    triggers = [d.trigger for d in emulator.service(services["web"].id).deploys]
    assert triggers == ["api", "api", "rollback"]


def test_second_service_failing_its_build_rolls_back_the_first_and_leaves_the_second_serving(tmp_path, render):
    emulator, services = render
    services["web"].fail_next = "build"
    report = run_pipeline(_run(tmp_path, emulator, HEAD))
    assert report.exit_code == 3, report.message
    assert "build_failed" in report.message and "build failed" in report.message
    assert [item.stage for item in report.rollback.items] == ["deploy-api"]
    assert _live(emulator, services["api"]) == GOOD and _live(emulator, services["web"]) == GOOD


@pytest.mark.parametrize("phase, status", [("build", "build_failed"), ("pre_deploy", "pre_deploy_failed"),
                                           ("update", "update_failed")])
def test_a_deploy_that_fails_on_render_leaves_production_untouched_with_exit_1(tmp_path, render, phase, status):
    emulator, services = render
    if phase == "pre_deploy":
        services["api"].spec = services["api"].spec.model_copy(update={"preDeployCommand": "migrate"})
    services["api"].fail_next = phase
    report = run_pipeline(_run(tmp_path, emulator, HEAD))
    assert report.exit_code == 1 and report.outcome == "blocked", report.message
    assert status in report.message
    assert _live(emulator, services["api"]) == GOOD


def test_a_rollback_that_fails_gives_exit_4_and_says_what_is_live(tmp_path, render):
    emulator, services = render
    emulator.faults.add(action="status", status=503, match="POST /services/*/rollback", times=50)
    inv = _run(tmp_path, emulator, HEAD.split("  - id: deploy-web")[0]
               + "  - id: check\n    type: shell.run\n    with: {command: 'exit 1'}\n")
    report = run_pipeline(inv)
    assert report.exit_code == 4 and report.outcome == "needs_human", report.message
    assert "ROLLBACK NOT VERIFIED" in report.message and "live now" in report.message
    assert NEW[:7] in report.message


def test_rollback_run_undoes_a_deploy_triggered_by_a_run_that_was_killed(tmp_path, render):
    emulator, services = render
    api = services["api"]
    previous = emulator.service(api.id).live()
    new, _ = emulator.trigger(api, commit_id=NEW)  # what the killed run had triggered; now live
    inv = _run(tmp_path, emulator, HEAD)
    run_dir = tmp_path / ".deploypipe" / "runs" / "20260101T000000Z-dead00"
    run_dir.mkdir(parents=True)
    events = [{"event": "run_started", "pipeline": "two-services"},
              {"event": "stage_started", "stage": "deploy-api", "type": "render.deploy"},
              {"event": "deploy_triggered", "stage": "deploy-api", "service": "api", "service_id": api.id,
               "deploy_id": new.id, "commit": NEW, "previous_deploy_id": previous.id, "previous_commit": GOOD}]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    report = rollback(inv, service=None, to=None, run=run_dir.name, yes=True)
    assert report.exit_code == 0 and report.outcome == "rollback_verified", report.message
    assert _live(emulator, api) == GOOD


UNCHANGED = """\
version: 1
name: one-service
targets:
  services:
    api: {name: api, repo_dir: app}
stages:
  - id: preflight
    type: render.preflight
  - id: deploy
    type: render.deploy
    with: {service: api, poll_s: 0.01}
  - id: after
    type: shell.run
    with: {command: "echo verified > after.txt"}
  - id: notify
    type: shell.run
    when: always
    with: {command: "echo notified > notified.txt"}
"""


def _git_repo(path) -> str:
    """A git checkout on branch main with one commit; its sha."""
    import subprocess

    path.mkdir()
    for args in (["init", "-q", "-b", "main"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q",
                                                  "--allow-empty", "-m", "release"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_a_release_whose_commit_is_already_live_is_skipped_and_force_releases_it(tmp_path, render):
    emulator, services = render
    live = _git_repo(tmp_path / "app")
    emulator.trigger(services["api"], commit_id=live)  # production already runs the checkout's HEAD
    deploys_before = len(emulator.service(services["api"].id).deploys)
    inv = _run(tmp_path, emulator, UNCHANGED)
    report = run_pipeline(inv)
    assert report.exit_code == 0 and report.outcome == "unchanged", report.message
    assert report.message.startswith(f"nothing to release: api at {live[:12]} already live")
    assert [s.status for s in report.stages] == ["succeeded", "skipped", "skipped", "succeeded"]
    assert len(emulator.service(services["api"].id).deploys) == deploys_before  # nothing was triggered
    assert not (tmp_path / "after.txt").exists() and (tmp_path / "notified.txt").exists()

    inv.force = True
    forced = run_pipeline(inv)
    assert forced.exit_code == 0 and forced.outcome == "deployed", forced.message
    assert len(emulator.service(services["api"].id).deploys) == deploys_before + 1
