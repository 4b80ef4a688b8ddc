"""Benchmark the local Render: API overhead in-process and over loopback; real deploys: time to live, zero downtime.

    python bench/bench_emulator.py [--calls 2000] [--deploys 5]

(1) GET /services/{id} answered by the emulator in-process (sync transport) and over
    loopback (uvicorn), requests per second and p50/p95 latency.
(2) ProcessRuntime with a 15-line http.server app: seconds from trigger to ``live``
    (checkout, build, start, first healthy answer, switch), median over N deploys, and the
    number of failed requests on the stable URL while those deploys switch traffic (target 0);
    then the stable URL's cost (it reads every exchange to record it) against the instance's own
    port, p50 per sequential GET, and that every request it answered was recorded.
(3) Telemetry: metrics and log queries over full stores (50,000 requests and lines), and the
    stores' size after 200,000 more (bounded by count).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx
import structlog

from deploypipe.emulator import (
    Emulator,
    EmulatorServer,
    ProcessRuntime,
    RequestRec,
    ServiceDef,
    Telemetry,
    build_emulator,
    in_process_client,
)
from deploypipe.local.repo import LocalRepo

KEY = "rnd_bench_emulator"
APP = textwrap.dedent('''\
    import os
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients stay connected across switches
        wbufsize = 1 << 16  # one write per answer (no Nagle/delayed-ACK stall between headers and body)

        def do_GET(self):
            body = os.environ["RENDER_GIT_COMMIT"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
''')


class Ticking:
    """A clock moving one second per read, so the per-minute rate limits never bind during the load test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _latencies(http: httpx.Client, path: str, calls: int) -> tuple[float, list[float]]:
    for _ in range(50):
        http.get(path)
    samples = []
    start = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        assert http.get(path).status_code == 200
        samples.append(time.perf_counter() - t0)
    return time.perf_counter() - start, samples


def api_overhead(calls: int) -> None:
    emulator = Emulator(clock=Ticking(), api_keys=(KEY,))
    service = emulator.add_service(ServiceDef(type="web", name="bench", startCommand="run"))
    path = f"/services/{service.id}"
    with in_process_client(emulator, KEY) as http:
        total, samples = _latencies(http, path, calls)
        _report("in-process", calls, total, samples)
    with EmulatorServer(emulator) as server, httpx.Client(base_url=server.url,
                                                          headers={"Authorization": f"Bearer {KEY}"}) as http:
        total, samples = _latencies(http, path, calls)
        _report("loopback  ", calls, total, samples)


def _report(label: str, calls: int, total: float, samples: list[float]) -> None:
    samples.sort()
    print(f"{label}: {calls / total:8.0f} req/s   p50 {samples[len(samples) // 2] * 1000:6.2f} ms   "
          f"p95 {samples[int(len(samples) * 0.95)] * 1000:6.2f} ms")


def real_deploys(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
        root = Path(tmp)
        repo = LocalRepo(root / "repo")
        repo.ensure()
        blueprint = "services:\n  - {type: web, name: b, buildCommand: 'true', startCommand: python app.py, " \
                    "healthCheckPath: /}\n"
        commits = [repo.commit_change({"app.py": APP + f"# {i}\n", "render.yaml": blueprint}, f"release {i}")
                   for i in range(count + 1)]
        emulator = build_emulator(blueprint=repo.path / "render.yaml", repo=repo.path, data_dir=root / "render",
                                  api_keys=(KEY,), health_interval_s=0.05)
        with EmulatorServer(emulator) as server, httpx.Client(base_url=server.url,
                                                              headers={"Authorization": f"Bearer {KEY}"}) as http:
            service = http.get("/services").json()[0]["service"]
            url = service["serviceDetails"]["url"]
            _deploy(http, service["id"], commits[0])
            stop, served = threading.Event(), [0]
            failures: list[str] = []
            threading.Thread(target=_hammer, args=(url, stop, failures, served), daemon=True).start()
            durations = [_deploy(http, service["id"], commit) for commit in commits[1:]]
            stop.set()
            time.sleep(0.2)
            assert isinstance(emulator.runtime, ProcessRuntime)
            direct = emulator.runtime.instances["b"].port
            recorded_before = emulator.telemetry.counts()[0]
            proxied = _p50(url, 500)
            own = _p50(f"http://127.0.0.1:{direct}", 500)
            time.sleep(0.1)
            recorded = emulator.telemetry.counts()[0] - recorded_before
        print(f"real deploy, trigger -> live: median {statistics.median(durations):.2f} s "
              f"(min {min(durations):.2f}, max {max(durations):.2f}, n={len(durations)})")
        print(f"stable URL during {count} switches: {served[0]} requests, {len(failures)} failed"
              + (f" (first: {failures[0]})" if failures else ""))
        print(f"stable URL p50 {proxied * 1000:.2f} ms vs the instance's port {own * 1000:.2f} ms "
              f"(+{(proxied - own) * 1000:.2f} ms per request); {recorded} of 550 proxied requests recorded")


def _p50(url: str, calls: int) -> float:
    with httpx.Client(base_url=url, trust_env=False) as http:
        for _ in range(50):
            http.get("/")
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            http.get("/")
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def telemetry_queries() -> None:
    start = 1_767_225_600.0
    clock = [start + 3600]
    telemetry = Telemetry(lambda: clock[0])
    emulator = Emulator(clock=lambda: clock[0], api_keys=(KEY,), telemetry=telemetry)
    service = emulator.add_service(ServiceDef(type="web", name="bench", startCommand="run"))
    for i in range(50_000):
        telemetry.request(RequestRec(at=start + i * 0.07, resource=service.id, method="GET" if i % 3 else "POST",
                                     path="/notes", status=500 if i % 50 == 0 else 200, latency_ms=5 + i % 40,
                                     host="bench.local", instance=f"{service.id}-abcde", deploy="dep-1"))
    window = {"resource": service.id, "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T01:00:00Z"}
    queries: dict[str, tuple[str, dict[str, str | float]]] = {
        "http-requests by status": ("/metrics/http-requests", {**window, "resolutionSeconds": 30}),
        "http-latency p99": ("/metrics/http-latency", {**window, "resolutionSeconds": 30, "quantile": 0.99}),
        "logs 5xx, 100 lines": ("/logs", {**window, "ownerId": emulator.owner_id, "statusCode": "5*", "limit": 100}),
    }
    with in_process_client(emulator, KEY) as http:
        for label, (path, params) in queries.items():
            samples = []
            for _ in range(10):
                t0 = time.perf_counter()
                assert http.get(path, params=params).status_code == 200
                samples.append(time.perf_counter() - t0)
            print(f"{label:<24} over 50,000 requests/lines: median {statistics.median(samples) * 1000:7.1f} ms")
    for _ in range(200_000):
        telemetry.request(RequestRec(at=clock[0], resource=service.id, method="GET", path="/", status=200,
                                     latency_ms=1))
    print(f"after 200,000 more requests the stores hold {telemetry.counts()} (requests, log lines)")


def _deploy(http: httpx.Client, service_id: str, commit: str) -> float:
    start = time.perf_counter()
    answer = http.post(f"/services/{service_id}/deploys", json={"commitId": commit})
    if answer.status_code == 429:  # Render's 10 triggers per minute per service apply here too
        time.sleep(int(answer.headers["Retry-After"]))
        return _deploy(http, service_id, commit)
    deploy = answer.json()
    while (status := http.get(f"/services/{service_id}/deploys/{deploy['id']}").json().get("status")) != "live":
        assert status is None or status.endswith("in_progress") or status == "created", f"deploy ended {status}"
        time.sleep(0.05)
    return time.perf_counter() - start


def _hammer(url: str, stop: threading.Event, failures: list[str], served: list[int]) -> None:
    with httpx.Client(timeout=5) as http:
        while not stop.is_set():
            try:
                answer = http.get(url + "/")
                if answer.status_code != 200:
                    failures.append(f"HTTP {answer.status_code}")
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
            served[0] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--deploys", type=int, default=5)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    api_overhead(args.calls)
    real_deploys(args.deploys)
    telemetry_queries()


if __name__ == "__main__":
    main()
