"""render.release on a cron job, on the local Render over loopback (simulated runs, a fake clock): with run_cron one
run is triggered once it is live and judged by its cron_job_run_ended (a failure names the run's error line and the
rollback runs it again); without, the last run in the window is judged, and no run at all is said plainly."""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from deploypipe.emulator import Emulator, EmulatorServer
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.engine.loader import load_pipeline
from deploypipe.errors import SpecError, StageFailed
from deploypipe.render import RenderClient, RetryPolicy
from deploypipe.spec.targets import ServiceTarget, Targets
from deploypipe.stages.context import Resources
from deploypipe.stages.service_checks import Released, verify_service
from deploypipe.stages.waves import RenderRelease
from deploypipe.testing import FakeClock, stage_context

KEY = "rnd_cron_release_tests"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
OLD, NEW = "a" * 40, "b" * 40
ERROR = "RuntimeError: the nightly report could not reach the database"


@dataclass
class World:
    emulator: Emulator
    client: RenderClient
    clock: FakeClock
    project_dir: Any
    events: list[dict[str, Any]] = field(default_factory=list)

    def context(self, prior: tuple = ()) -> Any:
        targets = Targets(services={"nightly": ServiceTarget(name="nightly", kind="cron")})
        resources = Resources(project_dir=self.project_dir, state_dir=self.project_dir / ".deploypipe", env={},
                              targets=targets, render_factory=lambda: self.client, sleep=self.clock.sleep,
                              clock=self.clock.time)
        return stage_context(resources, stage_id="release", stage_type="render.release",
                             run_dir=self.project_dir / "run", sleep=self.clock.sleep, clock=self.clock.time,
                             emit=lambda event, **fields: self.events.append({"event": event, **fields}),
                             prior_events=prior)

    @property
    def service(self) -> Any:
        return next(iter(self.emulator.services.values()))

    def started(self) -> list[dict[str, Any]]:
        return [e for e in self.service.events if e["type"] == "cron_job_run_started"]


@pytest.fixture
def world(tmp_path):
    clock = FakeClock(now=START)
    emulator = Emulator(runtime=SimulatedRuntime(build_s=20.0, update_s=10.0), clock=clock.time, api_keys=(KEY,))
    service = emulator.add_service(ServiceDef(type="cron", name="nightly", startCommand="python report.py",
                                              schedule="0 3 * * *", autoDeploy=False))
    emulator.trigger(service, commit_id=OLD)  # what was live before this release
    clock.now += 60
    emulator.all_services()
    emulator.cron.sim_run_s = 5.0
    emulator.cron.sim_exit[NEW] = 1
    emulator.cron.sim_output[NEW] = ["loading yesterday's orders", ERROR]
    server = EmulatorServer(emulator).start()
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    client = RenderClient(http, sleep=clock.sleep, clock=clock.time, wall_clock=clock.time,
                          retry=RetryPolicy(rng=random.Random(7)))
    yield World(emulator, client, clock, tmp_path)
    client.close()
    server.stop()


def params(**changes: Any) -> RenderRelease.Params:
    return RenderRelease.Params(**{"commit": OLD, "poll_s": 1, "observe_s": 10, "interval_s": 2, **changes})


def test_a_run_cron_job_gets_one_run_once_live_and_is_verified_when_it_ends_successful(world):
    result = RenderRelease().run(world.context(), params(run_cron=["nightly"]))
    summary = result.outputs.verified["nightly"]
    assert summary.startswith("nightly: its run triggered after it went live, run run-")
    assert summary.endswith(" ended successful; no instance failure or error line for 10s")
    assert len(world.started()) == 1, "one run, and the deploy started none"
    triggered = [e for e in world.events if e["event"] == "cron_run_triggered"]
    assert [e["run_id"] for e in triggered] == [world.emulator.cron.runs[world.service.id][-1].id]


def test_an_unsuccessful_run_fails_the_release_with_its_error_line_and_the_rollback_runs_the_old_build(world):
    with pytest.raises(StageFailed) as caught:
        RenderRelease().run(world.context(), params(commit=NEW, run_cron=["nightly"]))
    message = caught.value.message
    assert message.startswith("wave 1 of 1: nightly: its run triggered after it went live, run run-")
    assert message.endswith(f" ended unsuccessful (exit status 1); app log: {ERROR}")
    comp = RenderRelease().compensate(world.context(), params(commit=NEW, run_cron=["nightly"]),
                                      caught.value.outputs)
    assert comp.verified, comp.summary
    assert world.service.live().commit_id == OLD
    assert "nightly: back to dep-" in comp.summary and "its run triggered after it went live, run run-" in \
        comp.summary and "ended successful" in comp.summary
    assert [e["phase"] for e in world.events if e["event"] == "cron_run_triggered"] == ["verify", "after_rollback"]


def test_a_resumed_watch_judges_the_run_the_killed_one_triggered_instead_of_starting_another(world):
    live = world.service.live()
    since = datetime.fromtimestamp(live.finished_at, UTC)
    run = world.client.trigger_cron_run(world.service.id)
    prior = ({"event": "cron_run_triggered", "service": "nightly", "phase": "verify", "since": since.isoformat(),
              "run_id": run.id},)
    released = Released(key="nightly", kind="cron", service_id=world.service.id, owner_id=world.emulator.owner_id,
                        since=since)
    summary = verify_service(world.context(prior), released, RenderRelease._check(params(run_cron=["nightly"])))
    assert f"run {run.id} ended successful" in summary
    assert [r.id for r in world.emulator.cron.runs[world.service.id]] == [run.id]


def test_without_run_cron_and_no_run_in_the_window_the_summary_says_no_run_was_judged(world):
    result = RenderRelease().run(world.context(), params())
    assert result.outputs.verified["nightly"] == (
        "nightly: no run ended in its 10s window and none was asked for (run_cron triggers one once it is live), "
        "so no run was judged; no instance failure or error line for 10s")
    assert world.started() == []


def test_without_run_cron_an_unsuccessful_run_in_the_window_fails_the_release(world):
    world.emulator.cron.sim_exit[OLD] = 2
    world.emulator.cron.sim_output[OLD] = ["report: 0 rows"]
    due = world.emulator.cron.next_due
    due[world.service.id] = START + 60 + 20 + 10 + 4  # a scheduled run comes due 4 s after the deploy is live
    with pytest.raises(StageFailed) as caught:
        RenderRelease().run(world.context(), params())
    assert caught.value.message.endswith("ended unsuccessful (exit status 2); app log: report: 0 rows")
    assert "nightly: its last run in the window, run run-" in caught.value.message


def test_a_run_that_does_not_end_in_time_fails_the_service_with_its_last_error_line(world):
    world.emulator.cron.sim_run_s = 3600
    with pytest.raises(StageFailed) as caught:
        RenderRelease().run(world.context(), params(commit=NEW, run_cron=["nightly"], cron_run_timeout_s=60))
    assert caught.value.message.endswith(f", triggered after it went live, did not end within 60s; app log: {ERROR}")


PIPELINE = textwrap.dedent('''\
    version: 1
    name: cron
    targets:
      services:
        nightly: {name: shop-nightly, kind: cron}
        worker: {name: shop-worker, kind: worker}
    stages:
      - id: release
        type: render.release
        with: {run_cron: [{key}]}
''')


@pytest.mark.parametrize("key, what", [("worker", "service target 'worker' is a background worker"),
                                       ("nope", "'nope' is not a service target")])
def test_run_cron_naming_anything_but_a_cron_job_target_is_refused_at_load_time(tmp_path, key, what):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.replace("{key}", key))
    with pytest.raises(SpecError) as caught:
        load_pipeline(path, {})
    assert caught.value.render() == (f"{path}:10: stages[0].with.run_cron: {what}; expected cron job targets "
                                     "(kind: cron)")
    path.write_text(PIPELINE.replace("{key}", "nightly"))
    load_pipeline(path, {})
