"""Startup and runner-overhead figures for the CLI (issue: pipeline core).

Prints:
  * wall time of `invoke --list` and `deploypipe --help` (median of N runs; target < 0.5 s)
  * `import deploypipe` cumulative import time from `python -X importtime` (target < 150 ms)
  * runner overhead per stage: a pipeline of no-op stages run through the real runner, journal and
    report, minus nothing (the stage itself does no work; target < 5 ms per stage)

Run: python bench/bench_core.py [--runs 7] [--stages 200]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_time_ms(runs: int) -> float:
    values = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import deploypipe"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stderr
        line = [row for row in out.splitlines() if row.rstrip().endswith("| deploypipe")][-1]
        values.append(int(line.split("|")[1]) / 1000)
    return statistics.median(values)


def runner_overhead_ms(stages: int) -> float:
    from typing import ClassVar

    from deploypipe.commands.invocation import Invocation
    from deploypipe.commands.run import run_pipeline
    from deploypipe.stages import registry
    from deploypipe.stages.base import Outputs as BaseOutputs
    from deploypipe.stages.base import Params as BaseParams
    from deploypipe.stages.base import StageResult

    class Noop:
        type: ClassVar[str] = "bench.noop"
        description: ClassVar[str] = "does nothing"
        touches_production: ClassVar[bool] = False

        class Params(BaseParams):
            pass

        class Outputs(BaseOutputs):
            n: int

        def plan(self, params: Any) -> str:
            return "nothing"

        def run(self, ctx: Any, params: Any) -> StageResult[Any]:
            return StageResult(outputs=self.Outputs(n=1))

    registry.STAGE_TYPES["bench.noop"] = registry.check_stage(Noop)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pipelines").mkdir()
        body = "".join(f"  - id: s{i}\n    type: bench.noop\n" for i in range(stages))
        (root / "pipelines" / "p.yaml").write_text(f"version: 1\nname: bench\nstages:\n{body}")
        inv = Invocation(pipeline="pipelines/p.yaml", project_dir=root, env={"PATH": "/usr/bin"}, json_output=True,
                         stdout=io.StringIO(), stderr=io.StringIO(), interactive=False)
        run_pipeline(inv)  # warm imports
        start = time.perf_counter()
        report = run_pipeline(inv)
        elapsed = time.perf_counter() - start
        assert report.exit_code == 0
    return elapsed / stages * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--stages", type=int, default=200)
    args = parser.parse_args()
    print(f"invoke --list           {wall([str(BIN / 'invoke'), '--list'], args.runs):.3f} s   (target < 0.5 s)")
    print(f"deploypipe --help       {wall([str(BIN / 'deploypipe'), '--help'], args.runs):.3f} s   (target < 0.5 s)")
    print(f"import deploypipe       {import_time_ms(args.runs):.1f} ms  (target < 150 ms)")
    print(f"runner overhead/stage   {runner_overhead_ms(args.stages):.2f} ms  over {args.stages} no-op stages, "
          f"journal + report included (target < 5 ms)")


if __name__ == "__main__":
    main()
