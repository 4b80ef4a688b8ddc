"""Helpers for core tests: write a pipeline, run it in-process with collected sleeps, read the run record."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import invocation

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.run import emit_report, run_pipeline
from deploypipe.testing import FakeClock

Sleeps = FakeClock  # waits recorded, clock advanced, nothing slept


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    sleeps: Sleeps

    def pipeline(self, text: str, name: str = "p.yaml") -> Path:
        path = self.root / "pipelines" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def invocation(self, pipeline: str = "pipelines/p.yaml", **kwargs: Any) -> Invocation:
        return invocation(self.root, env=self.env, pipeline=pipeline, json_output=True, sleep=self.sleeps,
                          clock=self.sleeps.clock, **kwargs)

    def run(self, pipeline: str = "pipelines/p.yaml", **kwargs: Any) -> tuple[dict[str, Any], Invocation]:
        resume = kwargs.pop("resume", None)
        inv = self.invocation(pipeline, **kwargs)
        report = run_pipeline(inv, resume=resume)
        emit_report(inv, report)
        return report, inv

    def events(self, report: dict[str, Any]) -> list[dict[str, Any]]:
        path = Path(report.run_dir) / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return Project(tmp_path, env, Sleeps())
