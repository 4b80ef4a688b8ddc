"""Fixtures for the local Render's own tests: a simulated emulator on a fake clock and an in-process client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from deploypipe.emulator import Emulator, in_process_client
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.records import ServiceRec
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.testing import FakeClock

KEY = "rnd_emulator_tests"


@dataclass
class Sim:
    """A simulated local Render: build 20 s, pre-deploy 10 s, update 30 s on a clock that only moves when told."""

    emulator: Emulator
    runtime: SimulatedRuntime
    clock: FakeClock
    http: httpx.Client
    web: ServiceRec
    worker: ServiceRec

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, **kwargs)

    def trigger(self, commit: str, service: ServiceRec | None = None) -> httpx.Response:
        return self.post(f"/services/{(service or self.web).id}/deploys", json={"commitId": commit})

    def deploy(self, deploy_id: str, service: ServiceRec | None = None) -> dict[str, Any]:
        answer = self.get(f"/services/{(service or self.web).id}/deploys/{deploy_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def events(self, service: ServiceRec | None = None, **params: Any) -> list[dict[str, Any]]:
        answer = self.get(f"/services/{(service or self.web).id}/events", params={"limit": 100, **params})
        assert answer.status_code == 200, answer.text
        return [row["event"] for row in answer.json()]


@pytest.fixture
def sim() -> Sim:
    clock = FakeClock(now=1_767_225_600.0)  # 2026-01-01T00:00:00Z
    runtime = SimulatedRuntime(build_s=20.0, pre_deploy_s=10.0, update_s=30.0)
    emulator = Emulator(runtime=runtime, clock=clock.time, api_keys=(KEY,))
    web = emulator.add_service(ServiceDef(type="web", name="web", buildCommand="make", startCommand="serve",
                                          preDeployCommand="migrate", healthCheckPath="/health", autoDeploy=True))
    worker = emulator.add_service(ServiceDef(type="worker", name="worker", startCommand="work", autoDeploy=False))
    http = in_process_client(emulator, KEY)
    yield Sim(emulator, runtime, clock, http, web, worker)
    http.close()
    emulator.close()
