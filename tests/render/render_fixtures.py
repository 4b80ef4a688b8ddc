"""Helpers for the Render tests: a fake clock, a request counter, the local Render with a client bound to it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from deploypipe import testing
from deploypipe.emulator import Emulator, EmulatorServer
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.render import RenderClient, RetryPolicy

API_KEY = "rnd_test_secret_key_0123456789"
#: Faults where Render performs the request and the answer is lost.
PERFORMED_THEN_LOST = [pytest.param({"action": "accept_then_status", "status": 500}, id="performed-then-500"),
                       pytest.param({"action": "accept_then_status", "status": 503}, id="performed-then-503"),
                       pytest.param({"action": "accept_then_drop"}, id="performed-then-dropped")]
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, on the emulator's clock and ours


@dataclass
class FakeClock(testing.FakeClock):
    """Epoch seconds on the emulator's clock and ours, moving only when someone sleeps."""

    now: float = START


@dataclass
class Counter:
    """Counts the requests an httpx client sends, by 'METHOD /path'."""

    sent: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> None:
        self.sent.append(f"{request.method} {request.url.path}")

    def count(self, prefix: str = "") -> int:
        return sum(1 for item in self.sent if item.startswith(prefix))


@dataclass
class Render:
    """The local Render plus a RenderClient bound to it, sharing one fake clock."""

    emulator: Emulator
    client: RenderClient
    clock: FakeClock
    counter: Counter

    def service(self, name: str = "web") -> Any:
        return next(s for s in self.emulator.services.values() if s.name == name)

    def deploy_live(self, name: str = "web", commit: str = "a" * 40) -> str:
        """Create a live deploy of ``commit`` directly in the emulator (no client requests)."""
        service = self.service(name)
        deploy, _ = self.emulator.trigger(service, commit_id=commit, commit_message=f"commit {commit[:7]}")
        self.clock.now += 120
        self.emulator.service(service.id)
        assert deploy.status == "live", deploy.status
        return deploy.id


def make_emulator(clock: FakeClock, *, pre_deploy: bool = True) -> Emulator:
    runtime = SimulatedRuntime(build_s=20.0, pre_deploy_s=10.0, update_s=30.0)
    emulator = Emulator(runtime=runtime, clock=clock.time, api_keys=(API_KEY,))
    emulator.add_service(ServiceDef(type="web", name="web", branch="main", autoDeploy=True,
                                    preDeployCommand="python migrate.py" if pre_deploy else None),
                         service_id="srv-web0000000000000000", url="https://web.example.test")
    emulator.add_service(ServiceDef(type="worker", name="worker", branch="main", autoDeploy=False),
                         service_id="srv-wrk0000000000000000")
    return emulator


def make_client(http: httpx.Client, clock: FakeClock, counter: Counter, **policy: Any) -> RenderClient:
    http.event_hooks["request"].append(counter)
    retry = RetryPolicy(rng=random.Random(7), **policy)
    return RenderClient(http, sleep=clock.sleep, clock=clock.time, wall_clock=clock.time, retry=retry)


@contextmanager
def client_by(way: str, render: Render, clock: FakeClock) -> Iterator[tuple[RenderClient, Counter]]:
    """A client of ``render`` and its request counter: ``render``'s own in-process, or (``loopback``) a new one over
    127.0.0.1 to a server started for it."""
    if way == "in-process":
        yield render.client, render.counter
        return
    with EmulatorServer(render.emulator) as server:
        counter = Counter()
        http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"},
                            timeout=httpx.Timeout(5.0))
        client = make_client(http, clock, counter)
        try:
            yield client, counter
        finally:
            client.close()


@dataclass
class StageHarness:
    """Builds StageContexts by hand the way the runner does, recording emitted journal events."""

    render: Render
    project_dir: Any
    targets: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Any] = field(default_factory=list)

    def context(self, stage_type: str, *, stage_id: str = "stage", prior: tuple = ()) -> Any:
        from deploypipe.stages.context import Resources
        from deploypipe.testing import stage_context

        resources = Resources(project_dir=self.project_dir, state_dir=self.project_dir / ".deploypipe", env={},
                              targets=self.targets, render_factory=lambda: self.render.client,
                              sleep=self.render.clock.sleep, clock=self.render.clock.time)

        def emit(event: str, **fields: Any) -> None:
            self.events.append({"event": event, "stage": stage_id, **fields})

        return stage_context(resources, stage_id=stage_id, stage_type=stage_type, run_dir=self.project_dir / "run",
                             earlier=self.outputs, emit=emit, diagnose=self.diagnostics.append,
                             sleep=self.render.clock.sleep,
                             clock=self.render.clock.time, prior_events=prior)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]
