"""Benchmark the local Render: API overhead in-process and over loopback; real deploys: time to live, zero downtime.

    python bench/bench_emulator.py [--calls 2000] [--deploys 5]

(1) GET /services/{id} answered by the emulator in-process (sync transport) and over
    loopback (uvicorn), requests per second and p50/p95 latency.
(2) ProcessRuntime with a 15-line http.server app: seconds from trigger to ``live``
    (checkout, build, start, first healthy answer, switch), median over N deploys, and the
    number of failed requests on the stable URL while those deploys switch traffic (target 0).
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

from deploypipe.emulator import Emulator, EmulatorServer, ServiceDef, build_emulator, in_process_client
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
        print(f"real deploy, trigger -> live: median {statistics.median(durations):.2f} s "
              f"(min {min(durations):.2f}, max {max(durations):.2f}, n={len(durations)})")
        print(f"stable URL during {count} switches: {served[0]} requests, {len(failures)} failed"
              + (f" (first: {failures[0]})" if failures else ""))


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


if __name__ == "__main__":
    main()
