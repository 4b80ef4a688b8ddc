"""The run record: ``.deploypipe/runs/<run_id>/events.jsonl`` (append-only) and ``report.json`` (atomic).

The journal is separate from log output so no log filter can drop a record;
resume and ``rollback --run`` read it back. Everything written passes through
the run's Redactor.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from deploypipe.core.deferral import critical
from deploypipe.core.redact import Redactor
from deploypipe.errors import UsageError
from deploypipe.stages.report import Report

__all__ = ["Journal", "list_runs", "new_run_id", "read_events", "read_report", "run_dir_for", "write_json_atomic"]


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20261122T230000Z-1a2b3c``."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=_default)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Journal:
    """Appends events to ``events.jsonl``, one JSON object per line, flushed per event."""

    def __init__(self, run_dir: Path, run_id: str, redactor: Redactor, *, now: Callable[[], datetime] | None = None):
        self.run_dir = run_dir
        self.run_id = run_id
        self.redactor = redactor
        self._now = now or (lambda: datetime.now(UTC))
        self._seq = 0
        self._emitting = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        run_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(run_dir / "events.jsonl", "a", encoding="utf-8")

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event (thread-safe: stages report progress from worker threads).

        A signal meanwhile waits until the event is written: a rollback's handler journals it, with this lock.
        """
        with critical(), self._emitting:
            self._seq += 1
            record = {"seq": self._seq, "ts": self._now().isoformat(), "run_id": self.run_id, "event": event}
            record.update(fields)
            record = self.redactor(json.loads(json.dumps(record, default=_default)))
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()
            for listener in self._listeners:
                listener(record)
            return record

    def write_report(self, report: Report) -> Report:
        """Write ``report.json`` atomically, secrets masked; return the report as written."""
        masked = Report.model_validate(self.redactor(report.to_json()))
        write_json_atomic(self.run_dir / "report.json", masked.to_json())
        return masked

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def run_dir_for(state_dir: Path, run_id: str) -> Path:
    path = state_dir / "runs" / run_id
    if "/" in run_id or run_id.startswith(".") or not path.is_dir():
        raise UsageError(f"no run '{run_id}' in {state_dir / 'runs'}", hint="list runs with `invoke history`")
    return path


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Events of a run; a torn last line (the process was killed mid-write) is skipped."""
    events: list[dict[str, Any]] = []
    path = run_dir / "events.jsonl"
    if not path.exists():
        return events
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def read_report(run_dir: Path) -> Report | None:
    """The run's report, or None when the run never finished (or the file is not a report)."""
    try:
        return Report.load(run_dir / "report.json")
    except (FileNotFoundError, ValueError):
        return None


def list_runs(state_dir: Path, limit: int = 20) -> Iterable[Path]:
    runs = state_dir / "runs"
    if not runs.is_dir():
        return []
    return sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True)[:limit]
