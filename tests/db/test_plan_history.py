"""Where the run history says production is (``plan``'s phase-order check): the newest run that read or migrated
the database decides, its last stage and then its rollback; a run of another pipeline counts by its migration's
masked URL. Reports written as ``report.json`` holds them (the Report model), read back from ``.deploypipe/runs``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_plan_phase_order import phased_pipeline

from deploypipe.commands.plan_phases import seen_in_history
from deploypipe.core.redact import mask_url
from deploypipe.engine.loader import load_pipeline
from deploypipe.stages.report import Outcome, Report, RollbackItem, RollbackReport, StageReport

URL = "postgresql://app:s3cret@db.internal/app"


@pytest.fixture
def loaded(tmp_path: Path) -> Any:
    return load_pipeline(phased_pipeline(tmp_path), {"DATABASE_URL": URL})


def write_run(root: Path, run_id: str, stages: list[tuple[str, str, dict]], *, pipeline: str = "phased",
              rollback: list[RollbackItem] = ()) -> None:
    report = Report(run_id=run_id, pipeline=pipeline, started_at=datetime(2026, 1, 1, tzinfo=UTC),
                    outcome=Outcome.BLOCKED, exit_code=1,
                    stages=[StageReport(id=i, type=t, status="succeeded" if out else "not_run", outputs=out)
                            for i, t, out in stages],
                    rollback=RollbackReport(performed=bool(rollback), items=list(rollback)))
    run_dir = root / ".deploypipe" / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "report.json").write_text(report.model_dump_json(), encoding="utf-8")


def status(current: list[str]) -> tuple[str, str, dict]:
    return "status", "db.migration_status", {"tool": "alembic", "current": current}


def migrate(after: str | None, stage: str = "migrate", url: str = URL) -> tuple[str, str, dict]:
    return stage, "db.migrate", {"database": mask_url(url), "revision_after": after}


def test_the_newest_run_that_read_the_database_decides_with_its_last_stage(tmp_path, loaded):
    write_run(tmp_path, "20260101T000000Z-aaaaaa", [status(["0001"])])
    write_run(tmp_path, "20260102T000000Z-bbbbbb", [status(["0001"]), migrate("0002")])
    write_run(tmp_path, "20260103T000000Z-cccccc", [("status", "db.migration_status", {})])  # blocked before it
    seen = seen_in_history(tmp_path / ".deploypipe", loaded, "main")
    assert seen is not None
    assert (seen.revision, seen.source) == ("0002", "run 20260102T000000Z-bbbbbb, stage migrate: revision_after")


def test_an_empty_alembic_version_means_nothing_applied_and_no_run_means_unknown(tmp_path, loaded):
    assert seen_in_history(tmp_path / ".deploypipe", loaded, "main") is None
    write_run(tmp_path, "20260101T000000Z-aaaaaa", [status([])])
    seen = seen_in_history(tmp_path / ".deploypipe", loaded, "main")
    assert seen is not None and (seen.revision, seen.applied, seen.unknown) == (None, None, "")


def test_a_rollback_that_read_the_revision_moves_it_back_and_an_undo_that_did_not_leaves_it_unknown(tmp_path,
                                                                                                   loaded):
    downgraded = RollbackItem(stage="migrate", type="db.migrate", action="downgraded", verified=True,
                              details={"revision_before": "0001", "revision_now": "0001"})
    write_run(tmp_path, "20260101T000000Z-aaaaaa", [status(["0001"]), migrate("0002")], rollback=[downgraded])
    seen = seen_in_history(tmp_path / ".deploypipe", loaded, "main")
    assert seen is not None and seen.revision == "0001" and "rollback of stage migrate" in seen.source
    refused = RollbackItem(stage="migrate", type="db.migrate", action="restore_refused", verified=False)
    write_run(tmp_path, "20260102T000000Z-bbbbbb", [status(["0001"]), migrate("0002")], rollback=[refused])
    seen = seen_in_history(tmp_path / ".deploypipe", loaded, "main")
    assert seen is not None and seen.unknown == "restore_refused, revision not read"


def test_another_pipelines_migration_counts_by_its_masked_url_and_another_databases_does_not(tmp_path, loaded):
    write_run(tmp_path, "20260101T000000Z-aaaaaa", [status(["0001"])])
    write_run(tmp_path, "20260102T000000Z-bbbbbb", [migrate("0003", stage="m")], pipeline="hotfix")
    write_run(tmp_path, "20260103T000000Z-cccccc", [migrate("0009", url="postgresql://app:x@other/db")],
              pipeline="hotfix")
    write_run(tmp_path, "20260104T000000Z-dddddd", [status(["0009"])], pipeline="hotfix")  # its status: not ours
    seen = seen_in_history(tmp_path / ".deploypipe", loaded, "main")
    assert seen is not None and (seen.revision, seen.source) == (
        "0003", "run 20260102T000000Z-bbbbbb, stage m: revision_after")


def test_a_status_of_prisma_or_sql_files_gives_the_applied_migrations_not_an_empty_revision(tmp_path, loaded):
    for day, tool in enumerate(("prisma", "sql"), 1):  # each run newer than the one before: it decides
        write_run(tmp_path, f"2026010{day}T000000Z-aaaaaa",
                  [("status", "db.migration_status", {"tool": tool, "applied": ["0001.sql", "0002.sql"]})])
        seen = seen_in_history(tmp_path / ".deploypipe", loaded, "main")
        assert seen is not None and seen.applied == frozenset({"0001.sql", "0002.sql"}), tool
