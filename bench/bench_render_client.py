"""Benchmark the Render client: polling load while waiting on deploys, and per-call overhead over real loopback.

    python bench/bench_render_client.py [--calls 2000]

(1) Requests issued by wait_for_deploy while the local Render's simulated deploy
    runs for 30 s .. 15 min on a fake clock (target: on average at most one request per 2 s).
(2) get_service against the local Render on 127.0.0.1 versus a bare httpx GET of the same URL
    (target: within 1.2x).
(3) Observing a release the way the traffic analysis does: every 30 s, one request-metrics call and
    one logs call through an unretried twin, over 5 minutes of recorded traffic (fake clock): the
    requests sent per interval (target: exactly one of each) and the median time per call in-process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import structlog

from deploypipe.emulator import Emulator, EmulatorServer
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.render import RenderClient, RetryPolicy

KEY = "rnd_bench_key"
SRV = "srv-bench000000000000000"


class Ticking:
    """An emulator clock that moves one second per read, so the local Render's per-minute rate limits never bind."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _emulator(clock, build_s: float = 0.0, pre_s: float = 0.0, update_s: float = 0.0) -> Emulator:
    emulator = Emulator(runtime=SimulatedRuntime(build_s=build_s, pre_deploy_s=pre_s, update_s=update_s),
                        clock=clock, api_keys=(KEY,))
    emulator.add_service(ServiceDef(type="web", name="bench", preDeployCommand="migrate"), service_id=SRV)
    return emulator


def polling(duration_s: float) -> tuple[int, float, float]:
    """(requests while waiting, seconds waited, seconds from live to noticed) for a deploy of ``duration_s``."""
    from deploypipe.emulator import in_process_client

    clock = FakeClock()
    third = duration_s / 3
    emulator = _emulator(clock.time, third, third, third)
    sent: list[str] = []
    http = in_process_client(emulator, KEY)
    http.event_hooks["request"].append(lambda request: sent.append(request.url.path))
    with RenderClient(http, sleep=clock.sleep, clock=clock.time, wall_clock=clock.time) as client:
        deploy = client.trigger_deploy(SRV, commit_id="a" * 40)
        start, before = clock.now, len(sent)
        client.wait_for_deploy(SRV, deploy.id, timeout_s=3600)
        waited = clock.now - start
    return len(sent) - before, waited, waited - duration_s


def overhead(calls: int, rounds: int = 7) -> tuple[float, float]:
    """Median microseconds per call: (RenderClient.get_service, bare httpx GET + JSON) over loopback."""
    emulator = _emulator(Ticking())
    with EmulatorServer(emulator) as server:
        headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}
        bare = httpx.Client(base_url=server.url, headers=headers)
        client = RenderClient(httpx.Client(base_url=server.url, headers=headers))
        for _ in range(200):  # warm up both connections
            bare.get(f"/services/{SRV}").json()
            client.get_service(SRV)
        ours, theirs = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(calls):
                client.get_service(SRV)
            ours.append((time.perf_counter() - t0) / calls * 1e6)
            t0 = time.perf_counter()
            for _ in range(calls):
                response = bare.get(f"/services/{SRV}")
                response.raise_for_status()
                response.json()
            theirs.append((time.perf_counter() - t0) / calls * 1e6)
        client.close()
        bare.close()
    return statistics.median(ours), statistics.median(theirs)


def observing(interval_s: float = 30.0, window_s: float = 300.0) -> tuple[dict[str, int], int, float, float]:
    """(requests by path, intervals, median ms per metrics call, median ms per logs call)."""
    from deploypipe.emulator import RequestRec, in_process_client

    clock = FakeClock()
    emulator = _emulator(clock.time)
    start = clock.now
    for i in range(int(window_s * 5)):  # 5 requests per second, 1 % answering 500
        emulator.telemetry.request(RequestRec(at=start + i / 5, resource=SRV, method="GET", path="/notes",
                                              status=500 if i % 100 == 0 else 200, latency_ms=5.0 + i % 20))
    sent: list[str] = []
    http = in_process_client(emulator, KEY)
    http.event_hooks["request"].append(lambda request: sent.append(request.url.path))
    metrics_ms, logs_ms = [], []
    with RenderClient(http, sleep=clock.sleep, clock=clock.time, wall_clock=clock.time) as client:
        owner = client.get_service(SRV).owner_id
        sent.clear()
        once = client.with_retry(RetryPolicy(attempts=1))
        intervals = int(window_s // interval_s)
        for step in range(1, intervals + 1):
            clock.now = start + step * interval_s
            t0 = time.perf_counter()
            once.http_request_metrics(SRV, start=start, end=clock.now, resolution_s=interval_s)
            metrics_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            once.list_logs(owner, resources=[SRV], start=start, end=clock.now, types=["request"],
                           status_codes=["5*"], limit=100)
            logs_ms.append((time.perf_counter() - t0) * 1000)
    by_path = {path: sent.count(path) for path in sorted(set(sent))}
    return by_path, intervals, statistics.median(metrics_ms), statistics.median(logs_ms)


def main() -> None:
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per round for the overhead benchmark")
    args = parser.parse_args()
    print("(1) polling while waiting on a simulated deploy (fake clock)")
    print(f"    {'deploy':>8} {'requests':>9} {'s/request':>10} {'noticed after':>14}")
    for duration in (30.0, 60.0, 300.0, 900.0):
        requests, waited, late = polling(duration)
        print(f"    {duration:>7g}s {requests:>9d} {waited / requests:>10.1f} {late:>13.1f}s")
    print("    target: >= 2.0 s per request on average")
    ours, theirs = overhead(args.calls)
    print(f"(2) per call over loopback ({args.calls} calls x 7 rounds, median)")
    print(f"    RenderClient.get_service {ours:8.0f} us")
    print(f"    bare httpx GET + json    {theirs:8.0f} us")
    print(f"    ratio {ours / theirs:.3f}x (target <= 1.2x)")
    by_path, intervals, metrics_ms, logs_ms = observing()
    print(f"(3) observing for {intervals} intervals of 30 s (one metrics and one logs call each, no retries)")
    for path, count in by_path.items():
        print(f"    {path:<28} {count:>3} requests ({count / intervals:.1f} per interval)")
    print(f"    per call in-process: metrics {metrics_ms:.1f} ms, logs {logs_ms:.1f} ms (median)")


if __name__ == "__main__":
    main()
