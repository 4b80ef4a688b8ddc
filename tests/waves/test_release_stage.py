"""render.release on the local Render over loopback (simulated deploys, a fake clock): waves triggered at once and
in order, a crash after live fails the release, one rollback for all in reverse wave order with each service
verified again, and resume / rollback --run from the journal."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from deploypipe.emulator import Emulator, EmulatorServer
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.errors import StageFailed
from deploypipe.render import RenderClient, RetryPolicy
from deploypipe.spec.targets import ServiceTarget, Targets
from deploypipe.stages import waves
from deploypipe.stages.context import Resources
from deploypipe.stages.waves import ReleaseOutputs, RenderRelease
from deploypipe.testing import FakeClock, stage_context

KEY = "rnd_release_tests"
START = 1_767_225_600.0
OLD, NEW = "a" * 40, "b" * 40


class TurnClock:
    """The fake clock as the release's threads share it: time moves only when every thread of the release sleeps,
    to the earliest wake-up among them, as real time would. Which thread looks first then follows from the times
    they sleep, not from the OS's scheduling (a 10 s watch cannot end before a 2 s one has looked). ``on_wake``
    runs after each move (the harness injects crashes there). A thread outside the release moves the clock alone."""

    def __init__(self, clock: FakeClock, on_wake: Callable[[], None]):
        self.clock, self.on_wake = clock, on_wake
        self.turns = threading.Condition()
        self.members = 0
        self.asleep: dict[int, float] = {}
        self.local = threading.local()

    @contextmanager
    def member(self) -> Iterator[None]:
        with self.turns:
            self.members += 1
            self.local.member = True
        try:
            yield
        finally:
            with self.turns:
                self.members -= 1
                self.local.member = False
                self.turns.notify_all()

    def sleep(self, seconds: float) -> None:
        with self.turns:
            wake = self.clock.now + seconds
            if getattr(self.local, "member", False):
                me = threading.get_ident()
                self.asleep[me] = wake
                self.turns.notify_all()
                mine = self.turns.wait_for(  # the guard only keeps a broken test from hanging
                    lambda: len(self.asleep) == self.members and wake <= min(self.asleep.values()), timeout=60)
                assert mine, f"the release's threads did not all sleep: {self.members} members, {self.asleep}"
                del self.asleep[me]
            self.clock.sleep(max(0.0, wake - self.clock.now))
            self.on_wake()
            self.turns.notify_all()


@dataclass
class Harness:
    emulator: Emulator
    client: RenderClient
    clock: FakeClock
    turns: TurnClock
    targets: Targets
    project_dir: Any
    sent: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    crash_when_live: dict[str, int] = field(default_factory=dict)  # service name -> crashes still to inject

    def sleep(self, seconds: float) -> None:
        self.turns.sleep(seconds)

    def inject(self) -> None:
        """Crash each service of ``crash_when_live`` whose crashing release is live (once per crash left)."""
        for name, left in list(self.crash_when_live.items()):
            service = next(s for s in self.emulator.services.values() if s.name == name)
            self.emulator.runtime.advance(self.emulator, service)
            live = service.live()
            if left and live is not None and live.commit_id == self.crash_commit(name):
                self.emulator.server_failed(service, {"failure": {"evicted": False, "nonZeroExit": 1}})
                self.emulator.telemetry.log(service.id, "RuntimeError: queue connection lost", type="app")
                self.crash_when_live[name] = left - 1

    def crash_commit(self, name: str) -> str:
        return NEW if self.crash_when_live.get(name, 0) > 0 else ""

    def context(self, prior: tuple = ()) -> Any:
        resources = Resources(project_dir=self.project_dir, state_dir=self.project_dir / ".deploypipe", env={},
                              targets=self.targets, render_factory=lambda: self.client, sleep=self.sleep,
                              clock=self.clock.time)

        def emit(event: str, **fields: Any) -> None:
            self.events.append({"event": event, **fields})

        return stage_context(resources, stage_id="release", stage_type="render.release",
                             run_dir=self.project_dir / "run", emit=emit, sleep=self.sleep, clock=self.clock.time,
                             prior_events=prior)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def live_commit(self, name: str) -> str | None:
        service = next(s for s in self.emulator.services.values() if s.name == name)
        self.emulator.runtime.advance(self.emulator, service)
        live = service.live()
        return live.commit_id if live else None


NAMES = ("w1", "w2", "w3")


@pytest.fixture
def harness(tmp_path, monkeypatch):
    clock = FakeClock(now=START)
    made: list[Harness] = []
    turns = TurnClock(clock, on_wake=lambda: made and made[0].inject())
    parallel = waves.in_parallel

    def in_turns(keys: list[str], work: Callable[[str], Any]) -> dict[str, Any]:
        def member(key: str) -> Any:
            with turns.member():
                return work(key)
        return parallel(keys, member)

    monkeypatch.setattr(waves, "in_parallel", in_turns)
    emulator = Emulator(runtime=SimulatedRuntime(build_s=20.0, update_s=10.0), clock=clock.time, api_keys=(KEY,))
    for name in NAMES:
        emulator.add_service(ServiceDef(type="worker", name=name, autoDeploy=False))
    for service in emulator.services.values():  # what was live before this release
        emulator.trigger(service, commit_id=OLD)
    clock.now += 60
    emulator.all_services()
    server = EmulatorServer(emulator).start()
    sent: list[str] = []
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10,
                        event_hooks={"request": [lambda r: sent.append(f"{r.method} {r.url.path}")]})
    client = RenderClient(http, sleep=turns.sleep, clock=clock.time, wall_clock=clock.time,
                          retry=RetryPolicy(rng=random.Random(7)))
    targets = Targets(services={"w1": ServiceTarget(name="w1", kind="worker"),
                                "w2": ServiceTarget(name="w2", kind="worker"),
                                "w3": ServiceTarget(name="w3", kind="worker", depends_on=["w1"])})
    made.append(Harness(emulator, client, clock, turns, targets, tmp_path, sent))
    yield made[0]
    client.close()
    server.stop()


PARAMS = RenderRelease.Params(commit=NEW, poll_s=1, observe_s=10, interval_s=2)


def _index(events: list[dict[str, Any]], event: str, service: str) -> int:
    return next(i for i, e in enumerate(events) if e["event"] == event and e.get("service") == service)


def test_each_wave_is_triggered_at_once_and_the_next_waits_for_it_to_be_verified(harness):
    result = RenderRelease().run(harness.context(), PARAMS)
    outputs = result.outputs
    assert outputs.waves == [["w1", "w2"], ["w3"]]
    assert result.changed_production and {d.service for d in result.deploys} == set(NAMES)
    assert all(harness.live_commit(name) == NEW for name in NAMES)
    events = harness.events
    first_wait = min(_index(events, "deploy_status", "w1"), _index(events, "deploy_status", "w2"))
    assert _index(events, "deploy_triggered", "w1") < first_wait and _index(events, "deploy_triggered", "w2") < \
        first_wait, "both services of wave 1 are triggered before either is waited on"
    wave_one_done = next(i for i, e in enumerate(events) if e["event"] == "wave_finished" and e["wave"] == 1)
    assert _index(events, "deploy_triggered", "w3") > wave_one_done
    assert set(outputs.verified) == set(NAMES) and outputs.kinds == {n: "worker" for n in NAMES}
    assert "no instance failure or error line for 10s" in outputs.verified["w3"]


def test_a_crash_in_wave_2_fails_the_release_and_one_rollback_undoes_all_last_wave_first(harness):
    harness.crash_when_live["w3"] = 1
    with pytest.raises(StageFailed) as caught:
        RenderRelease().run(harness.context(), PARAMS)
    error = caught.value
    assert error.production_changed and isinstance(error.outputs, ReleaseOutputs)
    assert error.message.startswith("wave 2 of 2: w3: 1 instance failure since it went live at ")
    assert error.message.endswith("(exit status 1); app log: RuntimeError: queue connection lost")
    harness.events.clear()
    comp = RenderRelease().compensate(harness.context(), PARAMS, error.outputs)
    assert comp.verified, comp.summary
    order = [e["service"] for e in harness.named("rollback_triggered")]
    assert order[0] == "w3" and sorted(order[1:]) == ["w1", "w2"], order
    assert all(harness.live_commit(name) == OLD for name in NAMES)
    for name in NAMES:
        assert f"{name}: back to dep-" in comp.summary and f"(commit {OLD[:12]})" in comp.summary
    assert [e["phase"] for e in harness.named("service_watched")] and \
        {e["phase"] for e in harness.named("service_watched")} == {"after_rollback"}


def test_a_rolled_back_service_that_still_crashes_is_not_verified(harness):
    harness.crash_when_live["w3"] = 1
    with pytest.raises(StageFailed) as caught:
        RenderRelease().run(harness.context(), PARAMS)
    harness.crash_when_live["w3"] = 0
    harness.crash_commit = lambda name: OLD if name == "w3" else ""  # the old release crashes too
    harness.crash_when_live["w3"] = 1
    comp = RenderRelease().compensate(harness.context(), PARAMS, caught.value.outputs)
    assert not comp.verified
    assert "w3: back on dep-" in comp.summary and "but NOT verified: w3: 1 instance failure" in comp.summary


def test_a_resumed_release_waits_on_the_deploys_the_killed_run_triggered(harness):
    first = RenderRelease()
    ctx = harness.context()
    outputs = first._trigger(ctx, PARAMS, "w1", lambda key, out, kind: ctx.emit(
        "deploy_triggered", **out.model_dump(mode="json"), kind=kind, waves=[["w1", "w2"], ["w3"]],
        releases={key: out.model_dump(mode="json")}, kinds={key: kind}))
    prior = tuple(harness.named("deploy_triggered"))
    harness.sent.clear()
    result = RenderRelease().run(harness.context(prior=prior), PARAMS)
    w1 = next(s for s in harness.emulator.services.values() if s.name == "w1")
    assert f"POST /v1/services/{w1.id}/deploys" not in harness.sent
    assert result.outputs.releases["w1"].deploy_id == outputs.deploy_id
    assert [e["service"] for e in harness.named("deploy_resumed")] == ["w1"]


def test_a_resumed_release_keeps_the_waves_its_journal_names_even_if_the_order_changed_since(harness):
    journalled = [["w2"], ["w1", "w3"]]  # what the killed run worked out (from a Blueprint since edited, say)
    ctx = harness.context()
    RenderRelease()._trigger(ctx, PARAMS, "w2", lambda key, out, kind: ctx.emit(
        "deploy_triggered", **out.model_dump(mode="json"), kind=kind, waves=journalled,
        waves_from="the Blueprint render.yaml: w1 after w2", releases={key: out.model_dump(mode="json")},
        kinds={key: kind}))
    prior = tuple(harness.named("deploy_triggered"))
    harness.events.clear()
    result = RenderRelease().run(harness.context(prior=prior), PARAMS)  # the targets' depends_on: [w1, w2], [w3]
    assert result.outputs.waves == journalled
    assert result.outputs.waves_from == "the Blueprint render.yaml: w1 after w2"
    assert [e["services"] for e in harness.named("wave_started")] == journalled


def test_rollback_run_reads_every_triggered_service_from_the_last_deploy_triggered_event(harness):
    harness.crash_when_live["w3"] = 1
    with pytest.raises(StageFailed):
        RenderRelease().run(harness.context(), PARAMS)
    last = harness.named("deploy_triggered")[-1]
    outputs = RenderRelease().outputs_from_event(last)
    assert set(outputs.releases) == set(NAMES) and outputs.waves == [["w1", "w2"], ["w3"]]
    assert outputs.releases["w2"].previous_commit == OLD


def test_a_crash_in_wave_1_ends_the_other_watches_and_the_next_wave_never_starts(harness):
    harness.crash_when_live["w1"] = 1
    with pytest.raises(StageFailed) as caught:
        RenderRelease().run(harness.context(), PARAMS)
    outputs = caught.value.outputs
    assert caught.value.message.startswith("wave 1 of 2: w1: 1 instance failure")
    assert set(outputs.releases) == {"w1", "w2"} and harness.live_commit("w3") == OLD
    assert outputs.verified["w2"] == "w2: watch stopped early: another service of the release failed"
