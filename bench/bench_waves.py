"""Benchmark multi-service releases (render.release) on the local Render: waves against the sum and the critical path.

    python bench/bench_waves.py [--build-s 20] [--update-s 3] [--observe-s 5]

Six background workers whose builds take ``--build-s`` each (per-service build durations of the local Render),
released in two waves of three (the second wave ``depends_on`` the first), on the local Render over loopback with
the real clock. Prints:

(1) release wall time against the sum of the deploys (one at a time) and against the critical path (two waves of
    build + update + the observation window); target: within 1.2x of the critical path (the release is the only
    stage, so there are no other fixed stages);
(2) API requests the release used, per Render rate-limit bucket and per minute, against Render's limits
    (GET 400/min, deploy triggers 10/min per service, other writes 30/min);
(3) time to roll back all six, each verified again, after a deploy in wave 2 failed;
(4) a worker of wave 2 that crashes 5 s after it went live: how long after the crash the release failed, and
    whether the rollback of all six was verified.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import structlog

from deploypipe.emulator import Emulator, EmulatorServer
from deploypipe.emulator.app import apply_fault
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.errors import StageFailed
from deploypipe.render import RenderClient, RetryPolicy
from deploypipe.spec.targets import ServiceTarget, Targets
from deploypipe.stages.context import Resources
from deploypipe.stages.waves import RenderRelease
from deploypipe.testing import stage_context

KEY = "rnd_bench_waves"
NAMES = [f"svc{i}" for i in range(1, 7)]
LIMITS = {"GET": 400, "deploy trigger (per service)": 10, "other write": 30}


class Setup:
    """The local Render with six workers live at commit ``old``, a client counting its requests, a stage context."""

    def __init__(self, args: argparse.Namespace, run: int):
        self.args = args
        self.runtime = SimulatedRuntime(update_s=args.update_s)
        self.emulator = Emulator(runtime=self.runtime, api_keys=(KEY,))
        for name in NAMES:
            self.emulator.add_service(ServiceDef(type="worker", name=name, autoDeploy=False))
        self.old, self.new = f"{run:x}".rjust(40, "a"), f"{run:x}".rjust(40, "b")
        for service in self.emulator.services.values():
            self.emulator.trigger(service, commit_id=self.old)
        time.sleep(args.update_s + 0.2)
        assert all(s.live() for s in self.emulator.all_services())
        self.runtime.service_build_s = {name: args.build_s for name in NAMES}
        self.server = EmulatorServer(self.emulator).start()
        self.sent: list[tuple[float, str]] = []
        http = httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30,
                            event_hooks={"request": [lambda r: self.sent.append((time.time(), self._bucket(r)))]})
        self.client = RenderClient(http, retry=RetryPolicy(rng=random.Random(7)))
        self.targets = Targets(services={
            name: ServiceTarget(name=name, kind="worker", depends_on=["svc1"] if index >= 3 else [])
            for index, name in enumerate(NAMES)})
        self.run_dir = Path(tempfile.mkdtemp(prefix="bench-waves-"))

    @staticmethod
    def _bucket(request: httpx.Request) -> str:
        path = request.url.path.rstrip("/")
        if request.method == "GET":
            return "GET"
        if request.method == "POST" and path.endswith("/deploys"):
            return f"deploy trigger (per service) {path.split('/')[-2]}"
        return "other write"

    def context(self) -> Any:
        resources = Resources(project_dir=self.run_dir, state_dir=self.run_dir, env={}, targets=self.targets,
                              render_factory=lambda: self.client)
        return stage_context(resources, stage_id="release", stage_type="render.release", run_dir=self.run_dir)

    def params(self) -> RenderRelease.Params:
        return RenderRelease.Params(commit=self.new, poll_s=1.0, observe_s=self.args.observe_s, interval_s=1.0)

    def service(self, name: str) -> Any:
        return next(s for s in self.emulator.services.values() if s.name == name)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


def _per_minute(sent: list[tuple[float, str]]) -> dict[str, int]:
    """The most requests of each bucket in any 60 s window (per-service triggers: the busiest service)."""
    worst: dict[str, int] = {}
    for index, (at, _) in enumerate(sent):
        window = Counter(bucket.split(" svc")[0].rsplit(" srv-", 1)[0] for t, bucket in sent[index:] if t < at + 60)
        for bucket, count in window.items():
            worst[bucket] = max(worst.get(bucket, 0), count)
    return worst


def release(args: argparse.Namespace) -> None:
    setup = Setup(args, 1)
    try:
        started = time.monotonic()
        result = RenderRelease().run(setup.context(), setup.params())
        wall = time.monotonic() - started
        per_service = args.build_s + args.update_s + args.observe_s
        critical, serial = 2 * per_service, 6 * per_service
        print(f"(1) release of 6 services in {result.outputs.waves}: {wall:.1f} s")
        print(f"    one at a time: {serial:.0f} s -> {wall / serial:.2f}x of the sum; critical path (2 waves x "
              f"({args.build_s:g} build + {args.update_s:g} update + {args.observe_s:g} observe)): {critical:.0f} s "
              f"-> {wall / critical:.2f}x (target <= 1.2x)")
        counts = Counter(bucket.split(" srv-")[0] for _, bucket in setup.sent)
        worst = _per_minute([(t, b if not b.startswith("deploy") else b) for t, b in setup.sent])
        triggers = Counter(b for _, b in setup.sent if b.startswith("deploy trigger"))
        busiest = max(triggers.values()) if triggers else 0
        print(f"(2) requests: {len(setup.sent)} in all ({dict(counts)})")
        print(f"    busiest minute: GET {worst.get('GET', 0)} of {LIMITS['GET']}; deploy triggers {busiest} per "
              f"service of {LIMITS['deploy trigger (per service)']}; other writes {worst.get('other write', 0)} of "
              f"{LIMITS['other write']}")
    finally:
        setup.close()


def rollback_after_wave_2_fails(args: argparse.Namespace) -> None:
    setup = Setup(args, 2)
    try:
        apply_fault(setup.emulator, {"action": "fail_deploy", "service": "svc5", "phase": "update"})
        try:
            RenderRelease().run(setup.context(), setup.params())
            raise SystemExit("the release should have failed")
        except StageFailed as exc:
            outputs, message = exc.outputs, exc.message
        started = time.monotonic()
        comp = RenderRelease().compensate(setup.context(), setup.params(), outputs)
        took = time.monotonic() - started
        back = sum(1 for name in NAMES if (live := setup.service(name).live()) and live.commit_id == setup.old)
        print(f"(3) wave 2 failed ({message[:90]}...); rollback of all 6: {took:.1f} s, verified: {comp.verified}, "
              f"{back} of 6 back on the previous commit")
    finally:
        setup.close()


def worker_crash(args: argparse.Namespace) -> None:
    setup = Setup(args, 3)
    crashed_at: list[float] = []

    def crash_five_seconds_after_live() -> None:
        service = setup.service("svc6")
        while not ((live := service.live()) and live.commit_id == setup.new):
            time.sleep(0.05)
            setup.emulator.runtime.advance(setup.emulator, service)
        time.sleep(5.0)
        crashed_at.append(time.monotonic())
        setup.emulator.server_failed(service, {"failure": {"evicted": False, "nonZeroExit": 1}})
        setup.emulator.telemetry.log(service.id, "RuntimeError: queue connection lost", type="app")

    threading.Thread(target=crash_five_seconds_after_live, daemon=True).start()
    params = setup.params().model_copy(update={"observe_s": max(args.observe_s, 10.0)})
    try:
        try:
            RenderRelease().run(setup.context(), params)
            raise SystemExit("the crash was not detected")
        except StageFailed as exc:
            detected = time.monotonic() - crashed_at[0]
            outputs = exc.outputs
        comp = RenderRelease().compensate(setup.context(), params, outputs)
        print(f"(4) worker crash 5 s after live: detected {detected:.1f} s after the crash (observation window "
              f"{params.observe_s:g} s, a look every {params.interval_s:g} s); rollback of all 6 verified: "
              f"{comp.verified} (the run's exit code would be {3 if comp.verified else 4})")
    finally:
        setup.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-s", type=float, default=20.0)
    parser.add_argument("--update-s", type=float, default=3.0)
    parser.add_argument("--observe-s", type=float, default=5.0)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    release(args)
    rollback_after_wave_2_fails(args)
    worker_crash(args)


if __name__ == "__main__":
    main()
