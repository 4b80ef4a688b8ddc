"""Cold and warm `invoke deploy` on the embedded local default (issue: deploy out of the box).

Copies render.yaml, examples/, pipelines/ and tasks.py into a fresh directory (nothing in .deploypipe/), then runs
`invoke deploy` there three times and prints the wall time of each: the cold run (initdb of the embedded
PostgreSQL, git repository, first build), a warm redeploy of the same commit (`--force`), and the same command
without `--force`, which finds nothing to release and stops after the read-only stages. Target: cold run under
60 s on 2 cores.

Run: python bench/bench_local.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        for name in ("render.yaml", "examples", "pipelines", "tasks.py"):
            src = ROOT / name
            shutil.copytree(src, project / name) if src.is_dir() else shutil.copy2(src, project / name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL"))}
        env["CI"] = "true"
        for label, extra in (("cold", []), ("warm, --force", ["--force"]), ("unchanged", [])):
            start = time.perf_counter()
            result = subprocess.run([str(Path(sys.executable).parent / "invoke"), "deploy", *extra], cwd=project,
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"{label + ' invoke deploy:':<28} {time.perf_counter() - start:6.1f} s  exit {result.returncode}")
        subprocess.run([str(Path(sys.executable).parent / "invoke"), "clean"], cwd=project, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print("a release includes the health observation window (DEPLOYPIPE_OBSERVE_S, default 5 s) and the traffic "
          "window (DEPLOYPIPE_TRAFFIC_WINDOW_S, default 12 s)")


if __name__ == "__main__":
    main()
