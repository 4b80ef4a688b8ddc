"""The state of one run as it goes (stage records, outputs, deploys, rollback) and the one builder of its Report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from deploypipe.spec.model import StageSpec
from deploypipe.stages.base import DeployRecord, Outputs
from deploypipe.stages.report import Diagnostic, Outcome, Report, RollbackReport, StageReport

__all__ = ["RunState"]


@dataclass
class RunState:
    """What a run has done so far; :meth:`report` is the only place a :class:`Report` is made."""

    run_id: str
    pipeline: str
    pipeline_path: Path
    run_dir: Path
    started_at: datetime
    stages: list[StageSpec]
    records: dict[str, StageReport] = field(default_factory=dict)
    outputs: dict[str, Outputs] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)  # stages that changed production, in completion order
    deploys: list[DeployRecord] = field(default_factory=list)
    rollback: RollbackReport = field(default_factory=RollbackReport)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    message: str = ""
    resumed_from: str | None = None

    def __post_init__(self) -> None:
        for stage in self.stages:
            self.records.setdefault(stage.id, StageReport(id=stage.id, type=stage.type))

    def mark_changed(self, stage_id: str) -> None:
        if stage_id not in self.changed:
            self.changed.append(stage_id)

    def report(self, outcome: Outcome, *, finished_at: datetime | None = None, message: str | None = None) -> Report:
        """The run as a Report: provisional (outcome ``running``, no finish time) or final."""
        return Report(
            run_id=self.run_id, pipeline=self.pipeline, pipeline_path=str(self.pipeline_path),
            started_at=self.started_at, finished_at=finished_at, outcome=outcome,
            exit_code=int(outcome.exit_code),
            message=message if message is not None else (self.message or outcome.value),
            resumed_from=self.resumed_from,
            stages=[record.model_copy(deep=True) for record in self.records.values()],
            deploys=list(self.deploys), rollback=self.rollback.model_copy(deep=True),
            diagnostics=list(self.diagnostics), run_dir=str(self.run_dir),
        )
