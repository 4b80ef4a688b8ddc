"""Test helpers shipped with the package (like structlog.testing): a fake clock and a stage context builder.

The local Render (``deploypipe.emulator``: ``build_emulator``, ``in_process_client``, ``EmulatorServer``) is the
other half of deploypipe's test kit.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import structlog

from deploypipe.stages.base import Outputs, Params
from deploypipe.stages.context import Resources, StageContext
from deploypipe.stages.report import Diagnostic, Outcome, Report

__all__ = ["FakeClock", "damaging", "stage_context"]


@dataclass
class FakeClock:
    """Seconds that only move when someone sleeps: every wait is recorded, none is real.

    Pass ``clock`` (or ``time``) where a clock is injected and the instance itself (or ``sleep``) where a sleep is.
    """

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.waits.append(seconds)
        self.now += seconds

    __call__ = sleep

    def time(self) -> float:
        return self.now

    clock = time


def stage_context(resources: Resources, *, stage_id: str, stage_type: str, run_dir: Path,
                  earlier: Mapping[str, Outputs] | None = None, run: Report | None = None,
                  emit: Callable[..., None] | None = None, diagnose: Callable[[Diagnostic], None] | None = None,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic, prior_events: tuple[Mapping[str, Any], ...] = (),
                  timeout_s: float | None = None, run_id: str = "run-1", pipeline_name: str = "test",
                  later: Mapping[str, Params] | None = None) -> StageContext:
    """A StageContext for running one stage directly, outside a runner (events go to ``emit``, diagnostics to
    ``diagnose``, or nowhere)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if run is None:
        run = Report(run_id=run_id, pipeline=pipeline_name, started_at=datetime.now(UTC),
                     outcome=Outcome.RUNNING, exit_code=0, run_dir=str(run_dir))
    return StageContext(run_id=run_id, stage_id=stage_id, stage_type=stage_type, pipeline_name=pipeline_name,
                        pipeline_path=run_dir / "pipeline.yaml", run_dir=run_dir, resources=resources,
                        earlier=dict(earlier or {}), run=run, emit=emit or (lambda event, **fields: None),
                        diagnose=diagnose or (lambda diagnostic: None),
                        log=structlog.get_logger("deploypipe.test").bind(stage=stage_id), sleep=sleep, clock=clock,
                        timeout_s=timeout_s, prior_events=prior_events, later=dict(later or {}))


_DAMAGE = r"""
import subprocess, sys
kind, argv = sys.argv[1], sys.argv[2:]
data = subprocess.run(argv, stdout=subprocess.PIPE, check=True).stdout
cut = len(data) * 4 // 5
data = data[:cut] + bytes([data[cut] ^ 0xFF]) + data[cut + 1:] if kind == "corrupt" else data[:cut]
sys.stdout.buffer.write(data)
"""


def damaging(kind: Literal["corrupt", "truncated"]) -> Callable[[list[str]], list[str]]:
    """A ``dump_argv`` for :func:`deploypipe.db.verified.take_verified_backup` that damages pg_dump's output on its
    way to the backup file, as a bad disk or a broken network would: ``corrupt`` flips the byte at 80 % of it (past
    the table of contents, inside table data), ``truncated`` cuts it there."""
    def argv(command: list[str]) -> list[str]:
        return [sys.executable, "-c", _DAMAGE, kind, *command]
    return argv
