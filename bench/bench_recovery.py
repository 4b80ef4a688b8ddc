"""Time to recovery against the local Render, with verify.health's default settings.

Scenarios (each: a good release is live, then a bad one is deployed by the real pipeline):
  * endpoints-500: the release passes /health but its endpoints answer 500 (seed 003)
  * degrades: the release is healthy for 5 s after it starts, then /health answers 500

Prints, from the run journal: bad release live -> verify failed (detection), bad release live -> previous release
live and verified (recovery), and for "degrades" the first failed probe -> verify failed. Targets: endpoints-500
detection <= 2 s and recovery <= 6 s (its first smoke request's 500, from the deployed commit, is certain);
degrades: first failed probe -> verdict <= failure_threshold x interval_s + 1 s = 7 s, recovery under 30 s. The
seeds: 30 minutes to 4 hours.

Run: python bench/bench_recovery.py
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEGRADING = '''
import time as _time
_STARTED = _time.time()
_original_health = health


async def health(request):  # noqa: F811 - healthy for 5 s, then failing
    if _time.time() - _STARTED > 5:
        return JSONResponse({"status": "unhealthy", "database": "ok"}, status_code=500)
    return await _original_health(request)


app = Starlette(routes=[Route("/health", health), Route("/", index), Route("/notes", notes, methods=["GET", "POST"])])
'''


def _ts(event: dict) -> float:
    return datetime.fromisoformat(event["ts"]).timestamp()


def measure(inv: Any, report: Any, interval_s: float) -> dict:
    events = [json.loads(line) for line in (Path(report.run_dir) / "events.jsonl").read_text().splitlines()]
    live = next(e for e in events if e["event"] == "stage_succeeded" and e.get("stage") == "deploy")
    failed = next(e for e in events if e["event"] == "stage_failed" and e.get("stage") == "verify")
    verified = next((e for e in events if e["event"] == "rollback_verified"), None)
    degraded = next((e for e in events if e["event"] in ("health_check_failed", "health_degraded")), None)
    return {
        "exit_code": report.exit_code,
        "detection_s": round(_ts(failed) - _ts(live), 2),
        "first_failed_probe_to_verdict_s": round(_ts(failed) - _ts(degraded), 2) if degraded else None,
        "recovery_s": round(_ts(verified) - _ts(live), 2) if verified else None,
    }


def main() -> None:
    from deploypipe.commands.invocation import Invocation, load
    from deploypipe.commands.local import maybe_local
    from deploypipe.commands.run import run_pipeline
    from deploypipe.engine.loader import LoadedPipeline
    from deploypipe.local.repo import LocalRepo
    from deploypipe.replays.changes import BAD_CHANGES

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        for name in ("render.yaml", "examples", "pipelines"):
            src = ROOT / name
            shutil.copytree(src, project / name) if src.is_dir() else shutil.copy2(src, project / name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL"))}
        env["CI"] = "true"
        inv = Invocation(pipeline="pipelines/local.yaml", project_dir=project, env=env, json_output=True,
                         stdout=io.StringIO(), stderr=io.StringIO(), interactive=False)
        with maybe_local(inv):
            loaded = load(inv)
            stage = next(s for s in loaded.spec.stages if s.type == "verify.health")
            from deploypipe.stages.http import VerifyHealth

            defaults = VerifyHealth.Params(service="web", expect_json={"status": "healthy", "database": "ok"},
                                           smoke=loaded.params[stage.id].smoke)
            params = dict(loaded.params)
            params[stage.id] = defaults
            pipeline = LoadedPipeline(loaded.path, loaded.spec, params, loaded.secrets, loaded.source)
            assert run_pipeline(inv, loaded=pipeline).exit_code == 0
            repo = LocalRepo(Path(inv.env["DEPLOYPIPE_LOCAL_REPO"]))
            good = repo.head()
            app = "examples/sampleapp/app.py"
            source = (repo.path / app).read_text()
            scenarios = {"endpoints-500": BAD_CHANGES["broken-release"]["transform"][app](source),
                         "degrades": source + DEGRADING}
            for name, bad in scenarios.items():
                repo.commit_change({app: bad}, f"bench: {name}")
                report = run_pipeline(inv, loaded=pipeline)
                figures = measure(inv, report, defaults.interval_s)
                print(f"{name:<14} exit {figures['exit_code']}  detection {figures['detection_s']:>6.2f} s  "
                      f"recovery {figures['recovery_s']:>6.2f} s  first failed probe -> verdict "
                      f"{figures['first_failed_probe_to_verdict_s']} s")
                repo.reset_to(good)
    target = defaults.failure_threshold * defaults.interval_s + 1
    print(f"defaults: successes {defaults.successes}, interval {defaults.interval_s} s, failure_threshold "
          f"{defaults.failure_threshold}, observe {defaults.observe_s} s; targets: endpoints-500 detection <= 2 s, "
          f"recovery <= 6 s; degrades first failed probe -> verdict <= {target:.0f} s, recovery < 30 s")


if __name__ == "__main__":
    main()
