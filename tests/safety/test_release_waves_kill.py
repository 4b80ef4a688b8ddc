"""A multi-service release (`render.release`, two waves from the Blueprint) killed with SIGKILL, as a CI runner or
the OOM killer would: `deploy --resume` waits on the deploys the killed run triggered and triggers no service twice,
under the release lock; `rollback --run` undoes every service the release changed, last wave first, each verified
again. The real CLI runs as a process against the local Render on loopback; every wait is on a journal event or on
Render's state, and the local Render holds a wave (a build that lasts until the test lets it end, a health path
that answers 500 until the release is undone) so each kill lands where the test says."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
from harness import (
    GOOD,
    NEW,
    Cli,
    LocalRender,
    cli_env,
    deploypipe,
    events_of,
    journal_has,
    named,
    report_of,
    run_dirs,
    write_pipeline,
)
from helpers import wait_until

pytestmark = pytest.mark.e2e

SERVICES = ("web", "api", "auth")
PIPELINE = f"""\
version: 1
name: shop
variables:
  RENDER_API_KEY: {{secret: true}}
targets:
  services:
    web: {{name: web, health_path: /health}}
    api: {{name: api, health_path: /health}}
    auth: {{name: auth, health_path: /health}}
stages:
  - id: release
    type: render.release
    with: {{services: [web, api, auth], commit: "{NEW}", poll_s: 0.2, max_poll_s: 0.5, timeout_s: 120,
           observe_s: 0, successes: 1, interval_s: 0.1, healthy_within_s: 120}}
"""
#: web reads api and auth: they are wave 1, web is wave 2 (the pipeline declares no order)
BLUEPRINT = """\
services:
  - {type: web, name: api}
  - {type: web, name: auth, envVars: [{key: SECRET, generateValue: true}]}
  - type: web
    name: web
    envVars:
      - {key: API_HOSTPORT, fromService: {name: api, type: web, property: hostport}}
      - {key: AUTH_SECRET, fromService: {name: auth, type: web, envVarKey: SECRET}}
"""
WAVES = [["api", "auth"], ["web"]]
BUILD_HELD_S = 3600.0  # a build that lasts until the test sets it back to 0


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[LocalRender]:
    """Three web services serving GOOD, the pipeline and its Blueprint in ``tmp_path``."""
    render = LocalRender()
    try:
        for name in SERVICES:
            render.add_service(name)
        write_pipeline(tmp_path, PIPELINE)
        (tmp_path / "render.yaml").write_text(BLUEPRINT)
        yield render
    finally:
        render.close()


def _api_deploys(render: LocalRender) -> Counter[str]:
    """Deploys triggered through the API (the pipeline's), per service."""
    return Counter({name: sum(1 for d in render.deploys(name) if d.trigger == "api") for name in SERVICES})


def _triggered(run_dir: Path) -> set[str]:
    """The services the run's journal says it triggered (the last deploy_triggered carries them all)."""
    last = named(events_of(run_dir), "deploy_triggered")
    return set(last[-1]["releases"]) if last else set()


def _kill(cli: Cli) -> None:
    cli.signal(signal.SIGKILL)
    assert cli.wait(10) == -signal.SIGKILL


def _hold_health(render: LocalRender, name: str, commit: str) -> None:
    """``name``'s health path answers 500 while ``commit`` is live on it (its verification cannot end)."""
    inner = render.health.app.respond

    def respond(request: Any) -> Any:
        if request.path.startswith(f"/svc/{name}/") and render.live_commit(name) == commit:
            return 500, {"status": "starting"}
        return inner(request)

    render.health.app.respond = respond


def _log_events(stderr: str, event: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in stderr.splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


def test_a_release_killed_after_wave_1_is_triggered_resumes_without_triggering_any_service_twice(tmp_path, shop):
    render, env = shop, cli_env(**shop.env())
    for name in ("api", "auth"):
        render.runtime.service_build_s[name] = BUILD_HELD_S
    first = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=env, tag="first")
    try:
        run_dir = wait_until(lambda: journal_has(tmp_path, "deploy_triggered"), timeout=60, what="a trigger")
        wait_until(lambda: _triggered(run_dir) == {"api", "auth"}, timeout=60, what="wave 1's triggers journalled")
        _kill(first)
    finally:
        first.cleanup()
    killed = events_of(run_dir)
    assert [(e["wave"], e["services"]) for e in named(killed, "wave_started")] == [(1, ["api", "auth"])]
    assert named(killed, "wave_started")[0]["waves_from"].startswith("the Blueprint render.yaml: web after api")
    assert not named(killed, "run_finished") and not (run_dir / "report.json").exists()
    assert _api_deploys(render) == Counter(api=1, auth=1, web=0)
    assert {render.deploys(n)[-1].status for n in ("api", "auth")} == {"build_in_progress"}  # still under way

    render.runtime.service_build_s.update(api=0.0, auth=0.0, web=BUILD_HELD_S)  # wave 1 ends; wave 2 is held
    resumed = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--resume", run_dir.name, "--json",
                        env=env, tag="resumed")
    try:
        resumed_dir = wait_until(lambda: next((d for d in run_dirs(tmp_path) if d != run_dir
                                               and "web" in _triggered(d)), None), timeout=60,
                                 what="the resumed run to trigger wave 2")
        second = deploypipe(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--json", env=env)
        assert second.returncode == 1, second.stderr[-2000:]
        assert f"another deploy holds the lock 'shop': run {resumed_dir.name} (pid {resumed.proc.pid}" in \
            json.loads(second.stdout)["message"]
        assert _api_deploys(render) == Counter(api=1, auth=1, web=1)  # the refused run triggered nothing
        render.runtime.service_build_s["web"] = 0.0
        assert resumed.wait(90) == 0, resumed.stderr[-3000:]
    finally:
        resumed.cleanup()

    assert _api_deploys(render) == Counter(api=1, auth=1, web=1)  # each service deployed once, across both runs
    assert all(render.live_commit(name) == NEW for name in SERVICES)
    (taken_over,) = _log_events(resumed.stderr, "lock_stale_taken_over")
    assert taken_over["previous_run"] == run_dir.name
    events = events_of(resumed_dir)
    assert sorted(e["service"] for e in named(events, "deploy_resumed")) == ["api", "auth"]
    assert [e["service"] for e in named(events, "deploy_triggered")] == ["web"]
    assert [e["services"] for e in named(events, "wave_started")] == WAVES
    report = report_of(resumed_dir)
    assert report["resumed_from"] == run_dir.name and report["exit_code"] == 0
    outputs = report["stages"][0]["outputs"]
    assert outputs["waves"] == WAVES and outputs["waves_from"].startswith("the Blueprint render.yaml")
    assert set(outputs["verified"]) == set(SERVICES)


def test_a_release_killed_in_wave_2_is_undone_by_rollback_run_last_wave_first_each_service_verified(
        tmp_path, shop):
    render, env = shop, cli_env(**shop.env())
    _hold_health(render, "web", NEW)  # web goes live, and its verification waits for a healthy answer
    first = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=env, tag="first")
    try:
        run_dir = wait_until(lambda: journal_has(tmp_path, "deploy_live"), timeout=60, what="a deploy live")
        wait_until(lambda: any(e["service"] == "web" for e in named(events_of(run_dir), "deploy_live")),
                   timeout=60, what="wave 2 live")
        _kill(first)
    finally:
        first.cleanup()
    killed = events_of(run_dir)
    assert [e["services"] for e in named(killed, "wave_started")] == WAVES
    assert [e["wave"] for e in named(killed, "wave_finished")] == [1]
    assert all(render.live_commit(name) == NEW for name in SERVICES)

    undo = deploypipe(tmp_path, "rollback", "--pipeline", "pipelines/p.yaml", "--run", run_dir.name, "--yes",
                      "--json", env=env, timeout=120)
    assert undo.returncode == 0, undo.stderr[-3000:]
    assert all(render.live_commit(name) == GOOD for name in SERVICES)
    assert _api_deploys(render) == Counter(api=1, auth=1, web=1)
    rollbacks = Counter({n: sum(1 for d in render.deploys(n) if d.trigger == "rollback") for n in SERVICES})
    assert rollbacks == Counter(api=1, auth=1, web=1)
    undo_dir = next(d for d in run_dirs(tmp_path) if d != run_dir)
    events = events_of(undo_dir)
    order = [(e["event"], e["service"]) for e in events
             if e["event"] in ("rollback_triggered", "service_watched") and e.get("phase", "after_rollback")
             == "after_rollback"]
    web_verified = order.index(("service_watched", "web"))
    assert order[0] == ("rollback_triggered", "web")
    assert {s for e, s in order[web_verified + 1:] if e == "rollback_triggered"} == {"api", "auth"}, order
    assert {s for e, s in order if e == "service_watched"} == set(SERVICES)  # each verified again
    report = report_of(undo_dir)
    assert report["outcome"] == "rollback_verified" and report["exit_code"] == 0
    assert all(item["verified"] for item in report["rollback"]["items"])
