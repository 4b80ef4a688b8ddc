"""Run directories for the HTML report tests: two real runs (samples/) and hostile or future-shaped variants of them.

``samples/deployed`` (exit 0) and ``samples/rolled_back`` (a broken release rolled back, exit 3) were written by
``invoke deploy`` and ``invoke replay broken-release`` against the local default; their logs were empty and they hold
no secret (the database URL is masked as ``***``).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from deploypipe.stages.report import Report

SAMPLES = Path(__file__).parent / "samples"
SAMPLE_NAMES = ("deployed", "rolled_back")

# What an attacker could put in a commit message, a stage summary or a log line.
HOSTILE = ('<script>window.__pwned = "script"</script><img src="http://127.0.0.1:9/x.png" '
           'onerror="window.__pwned = \'img\'">"\'><svg onload="window.__pwned = \'svg\'"></svg></title></pre>'
           "<!--")


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


def read_logs(run_dir: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(run_dir.glob("*.log"))}


def load(name: str) -> tuple[Report, list[dict[str, Any]], dict[str, str]]:
    """The report, events and logs of a sample run."""
    run_dir = SAMPLES / name
    return Report.load(run_dir / "report.json"), read_events(run_dir), read_logs(run_dir)


def copy_sample(name: str, dest: Path) -> Path:
    """A writable copy of a sample run directory."""
    target = dest / name
    shutil.copytree(SAMPLES / name, target)
    return target


def append_events(run_dir: Path, events: list[dict[str, Any]]) -> None:
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event) + "\n")


PATHS = ("GET /notes", "GET /", "GET /flaky")


def traffic_events(start: str = "2026-11-30T04:01:40+00:00") -> list[dict[str, Any]]:
    """The journal of a traffic analysis, as the traffic stage writes it: one ``traffic_baseline`` (five minutes
    before the switch at ``start``, in 60 s buckets), then four looks with latency per path, the last one failing."""
    t0 = datetime.fromisoformat(start)
    events: list[dict[str, Any]] = [{
        "seq": 999, "ts": t0.isoformat(), "event": "traffic_baseline", "stage": "traffic",
        "start": (t0 - timedelta(seconds=300)).timestamp(), "end": t0.timestamp(), "requests": 5000, "errors": 10,
        "buckets": [{"start": (t0 - timedelta(seconds=300 - 60 * i)).timestamp(), "requests": 1000, "errors": e}
                    for i, e in enumerate((1, 3, 2, 0, 4))]}]
    for index, (requests, errors, latency) in enumerate([(120, 0, 80.0), (260, 3, 95.0), (400, 19, 140.0),
                                                         (520, 41, 210.0)]):
        at = t0 + timedelta(seconds=30 * (index + 1))
        paths = [{"route": route, "ms": ms * (index + 1), "baseline_ms": ms}
                 for route, ms in zip(PATHS, (40.0, 12.0, 25.0), strict=True)]
        events.append({"seq": 1000 + index, "ts": at.isoformat(), "event": "traffic_look", "stage": "traffic",
                       "look": index + 1, "at": at.timestamp() if index % 2 else at.isoformat(),
                       "elapsed_s": 30.0 * (index + 1), "window_start": t0.timestamp(),
                       "window_end": (t0 + timedelta(seconds=600)).timestamp(), "requests": requests,
                       "errors": errors, "baseline_requests": 5000, "baseline_errors": 10, "latency_ms": latency,
                       "baseline_latency_ms": 85.0, "path_latency": paths, "paths": [],
                       "verdict": "fail" if index == 3 else None})
    return events


TRAFFIC_VERDICT = {
    "status": "fail", "outcome": "fail",
    "message": "5xx share 7.88 % on /notes (41 of 520 requests), baseline 0.20 %", "compared": True,
    "figures": {"requests": 520, "errors": 41, "success_rate": 0.9211, "baseline_requests": 5000,
                "baseline_errors": 10, "baseline_success_rate": 0.998, "latency_quantile": 0.99,
                "latency_ms": 210.0, "baseline_latency_ms": 85.0, "logs_sampled": False},
    "worst_paths": [{"route": "/notes", "requests": 300, "errors": 41, "status": "failing", "since": None,
                     "baseline_requests": 2500, "baseline_errors": 3, "baseline_read": True, "failed": True,
                     "latency_ms": 160.0, "baseline_latency_ms": 40.0,
                     "message": "/notes: 41 of 300 failed"}],
}


def traffic_stage() -> dict[str, Any]:
    """A ``verify.traffic`` stage as report.json will hold it."""
    return {"id": "traffic", "type": "verify.traffic", "status": "failed", "attempts": 1,
            "started_at": "2026-11-30T04:01:38+00:00", "finished_at": "2026-11-30T04:03:40+00:00",
            "duration_s": 122.0, "outputs": {"verdict": TRAFFIC_VERDICT}, "summary": TRAFFIC_VERDICT["message"]}


def wave_events(start: datetime) -> list[dict[str, Any]]:
    """The journal of a two-wave ``render.release`` as stages/waves.py writes it: wave 1 (web, api) live and verified,
    wave 2 (worker) live then failed, then every service rolled back, last wave first; times are seconds after
    ``start``."""
    def at(s: float, event: str, **fields: Any) -> dict[str, Any]:
        return {"ts": (start + timedelta(seconds=s)).isoformat(), "event": event, **fields}

    return [
        at(10, "wave_started", wave=1, of=2, services=["web", "api"]),
        at(10.5, "deploy_triggered", service="web", deploy_id="dep-web-1"),
        at(10.6, "deploy_triggered", service="api", deploy_id="dep-api-1"),
        at(30, "deploy_live", service="api", deploy_id="dep-api-1"),
        at(32, "deploy_live", service="web", deploy_id="dep-web-1"),
        at(40, "wave_finished", wave=1, of=2, services=["web", "api"], failed={}),
        at(41, "wave_started", wave=2, of=2, services=["worker"]),
        at(41.5, "deploy_triggered", service="worker", deploy_id="dep-wrk-1"),
        at(60, "deploy_live", service="worker", deploy_id="dep-wrk-1"),
        at(66, "wave_finished", wave=2, of=2, services=["worker"],
           failed={"worker": "worker: 1 instance failure (exit status 1); app log: RuntimeError: boom"}),
        at(67, "rollback_triggered", service="worker", deploy_id="dep-wrk-rb", to_deploy="dep-wrk-0"),
        at(80, "deploy_status", service="worker", deploy_id="dep-wrk-rb", status="live"),
        at(81, "rollback_triggered", service="web", deploy_id="dep-web-rb", to_deploy="dep-web-0"),
        at(81, "rollback_triggered", service="api", deploy_id="dep-api-rb", to_deploy="dep-api-0"),
        at(95, "deploy_status", service="web", deploy_id="dep-web-rb", status="live"),
        at(96, "deploy_status", service="api", deploy_id="dep-api-rb", status="live"),
    ]
