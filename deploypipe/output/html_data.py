"""What the HTML report draws, derived from a run's report and journal: plain data, no markup.

Every time is seconds since the run started (``report.started_at``), so the stage time line, the health probes and
the traffic looks share one axis. The journal is read defensively: unknown events and fields are ignored, missing or
mistyped fields give ``None`` (never an exception), because a report must render for any run, old or new.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deploypipe.stages.report import Report, StageReport

__all__ = [
    "LOG_TAIL_LINES", "Diagnostic", "LogExcerpt", "Marker", "Probe", "Retry", "StageBar", "diagnostics", "integer",
    "log_excerpts", "mappings", "markers", "num", "origin_of", "parse_time", "probes", "run_span", "seconds",
    "stage_bars", "text",
]

LOG_TAIL_LINES = 30
_TERMINAL = ("stage_succeeded", "stage_failed", "stage_errored", "stage_skipped")
Event = Mapping[str, Any]


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string or epoch seconds as an aware UTC datetime; ``None`` for anything else."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, bool):
        return None
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def seconds(value: Any, origin: datetime) -> float | None:
    """``value`` (a time) as seconds after ``origin``."""
    moment = parse_time(value)
    return None if moment is None else (moment - origin).total_seconds()


def num(value: Any) -> float | None:
    """A finite number as float; ``None`` for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def integer(value: Any) -> int | None:
    """A finite number as int; ``None`` for anything else."""
    number = num(value)
    return None if number is None else int(number)


def text(value: Any) -> str:
    """``str(value)``; ``""`` for None."""
    return "" if value is None else str(value)


def mappings(events: Sequence[Any]) -> list[Event]:
    """The events that are JSON objects (anything else in a journal is ignored)."""
    return [event for event in events if isinstance(event, Mapping)]


def origin_of(report: Report) -> datetime:
    """Time zero of every chart: when the run started."""
    return parse_time(report.started_at) or datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class Retry:
    at_s: float
    attempt: int | None
    reason: str


@dataclass(frozen=True)
class StageBar:
    """One row of the stage time line; ``start_s``/``end_s`` are None for a stage that never ran here."""

    id: str
    type: str
    status: str
    start_s: float | None
    end_s: float | None
    attempts: int
    retries: tuple[Retry, ...]


def stage_bars(report: Report, events: Sequence[Any]) -> list[StageBar]:
    """One bar per stage of the report, from its started_at/finished_at (or its journal events when missing)."""
    origin = origin_of(report)
    journal = mappings(events)
    bars = []
    for stage in report.stages:
        start, end = _stage_times(stage, journal, origin)
        retries = tuple(
            Retry(at, integer(event.get("attempt")), text(event.get("reason")))
            for event in journal
            if event.get("event") == "stage_retrying" and event.get("stage") == stage.id
            and (at := seconds(event.get("ts"), origin)) is not None)
        bars.append(StageBar(stage.id, stage.type, stage.status, start, end, stage.attempts, retries))
    return bars


def _stage_times(stage: StageReport, journal: list[Event], origin: datetime) -> tuple[float | None, float | None]:
    start = seconds(stage.started_at, origin)
    end = seconds(stage.finished_at, origin)
    mine = [event for event in journal if event.get("stage") == stage.id]
    if start is None:
        start = next((at for event in mine if event.get("event") == "stage_started"
                      and (at := seconds(event.get("ts"), origin)) is not None), None)
    if end is None and start is not None:
        end = next((at for event in reversed(mine) if event.get("event") in _TERMINAL
                    and (at := seconds(event.get("ts"), origin)) is not None), None)
    if start is not None and end is not None and end < start:
        end = start
    return start, end


@dataclass(frozen=True)
class Probe:
    """One journalled health probe (event ``health_probe``)."""

    at_s: float
    elapsed_ms: float | None
    ok: bool
    phase: str
    status: int | None
    url: str
    reason: str
    stage: str


def probes(report: Report, events: Sequence[Any]) -> list[Probe]:
    """Every ``health_probe`` event with a time, in journal order."""
    origin = origin_of(report)
    found = []
    for event in mappings(events):
        if event.get("event") != "health_probe":
            continue
        at = seconds(event.get("ts"), origin)
        if at is None:
            continue
        found.append(Probe(at, num(event.get("elapsed_ms")), event.get("ok") is True,
                           text(event.get("phase")) or "verify", integer(event.get("status")),
                           text(event.get("url")), text(event.get("reason")), text(event.get("stage"))))
    return found


@dataclass(frozen=True)
class Marker:
    """A moment worth a vertical line: a deploy went live, the rollback started, a step was undone, it ended."""

    at_s: float
    kind: str  # live | rollback_started | undone | rollback_finished
    label: str
    ok: bool = True


def markers(report: Report, events: Sequence[Any]) -> list[Marker]:
    origin = origin_of(report)
    found = []
    for event in mappings(events):
        kind = event.get("event")
        at = seconds(event.get("ts"), origin)
        if at is None:
            continue
        if kind == "deploy_live":
            found.append(Marker(at, "live", f"{text(event.get('service')) or 'service'} live"))
        elif kind == "rollback_started":
            found.append(Marker(at, "rollback_started", "rollback started", ok=False))
        elif kind in ("compensation_succeeded", "compensation_failed"):
            action = text(event.get("action")) or "undone"
            found.append(Marker(at, "undone", f"{text(event.get('stage'))}: {action}".strip(": "),
                                ok=kind == "compensation_succeeded" and event.get("verified") is not False))
        elif kind == "rollback_finished":
            verified = event.get("verified") is True
            found.append(Marker(at, "rollback_finished", "rollback verified" if verified else "rollback unverified",
                                ok=verified))
    return found


def run_span(report: Report, events: Sequence[Any]) -> float:
    """Seconds from the run's start to its last known moment (finish, last event or last stage end)."""
    origin = origin_of(report)
    moments = [seconds(report.finished_at, origin)]
    moments += [seconds(event.get("ts"), origin) for event in mappings(events)]
    moments += [bar.end_s for bar in stage_bars(report, events)]
    return max([0.0, *(m for m in moments if m is not None)])


@dataclass(frozen=True)
class LogExcerpt:
    """The last lines of one command log, and which stage wrote it."""

    name: str
    stage: str
    lines: tuple[str, ...]
    total_lines: int


def _tail(text: str, limit: int) -> tuple[tuple[str, ...], int]:
    lines = text.splitlines()
    return tuple(lines[-limit:]) if limit > 0 else (), len(lines)


def log_excerpts(report: Report, logs: Mapping[str, str], limit: int = LOG_TAIL_LINES) -> list[LogExcerpt]:
    """The last ``limit`` lines of each log (named ``<stage>.<label>.log``), in the order the stages ran."""
    ids = sorted((stage.id for stage in report.stages), key=len, reverse=True)
    order = {stage.id: index for index, stage in enumerate(report.stages)}
    found = []
    for name, text in logs.items():
        stage = next((sid for sid in ids if name.startswith(sid + ".")), "")
        lines, total = _tail(text if isinstance(text, str) else "", limit)
        found.append(LogExcerpt(str(name), stage, lines, total))
    return sorted(found, key=lambda log: (order.get(log.stage, len(order)), log.name))


@dataclass(frozen=True)
class Diagnostic:
    """Lines Render's logs gave for a failed deploy (build or app), when the report carries them."""

    stage: str
    service: str
    deploy_id: str
    kind: str
    lines: tuple[str, ...]
    total_lines: int


def diagnostics(report: Report, limit: int = LOG_TAIL_LINES) -> list[Diagnostic]:
    """``report.diagnostics`` when the model has it (each {stage, service, deploy_id, kind, lines}); else none."""
    raw = getattr(report, "diagnostics", None)
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return []
    found = []
    for item in raw:
        data = item.model_dump(mode="json") if hasattr(item, "model_dump") else item
        if not isinstance(data, Mapping):
            continue
        lines = data.get("lines")
        joined = "\n".join(map(str, lines)) if isinstance(lines, Sequence) and not isinstance(lines, str) \
            else text(lines)
        tail, total = _tail(joined, limit)
        found.append(Diagnostic(text(data.get("stage")), text(data.get("service")), text(data.get("deploy_id")),
                                text(data.get("kind")), tail, total))
    return found
