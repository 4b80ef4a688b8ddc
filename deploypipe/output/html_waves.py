"""The waves of a multi-service release (``render.release``) in the HTML report: each wave and each service's time line.

From the journal: ``wave_started`` and ``wave_finished`` (its ``failed`` services and why), and per service
``deploy_triggered``, ``deploy_live``, ``rollback_triggered`` and the rollback deploy's last ``deploy_status``. Every
time is seconds since the run started; a step the run never reached is ``-``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploypipe.output import html_data as data
from deploypipe.output.html_parts import esc, fmt_seconds, mono, section, table
from deploypipe.stages.report import Report

__all__ = ["ServiceLine", "Wave", "waves", "waves_section"]


@dataclass
class ServiceLine:
    """One service's steps in its wave, in seconds since the run started."""

    key: str
    deploy_id: str = ""
    triggered_s: float | None = None
    live_s: float | None = None
    finished_s: float | None = None
    outcome: str = "pending"
    problem: str = ""
    rollback_s: float | None = None
    rollback_status: str = ""
    rollback_done_s: float | None = None


@dataclass
class Wave:
    number: int
    started_s: float | None = None
    finished_s: float | None = None
    services: list[ServiceLine] = field(default_factory=list)


def waves(report: Report, events: Sequence[Any]) -> list[Wave]:
    """The waves the journal records, in wave order; empty for a run without ``render.release``."""
    origin = data.origin_of(report)
    found: dict[int, Wave] = {}
    lines: dict[str, ServiceLine] = {}
    rollbacks: dict[str, ServiceLine] = {}
    for event in data.mappings(events):
        kind, at = event.get("event"), data.seconds(event.get("ts"), origin)
        number = data.integer(event.get("wave"))
        if kind in ("wave_started", "wave_finished") and number is not None:
            wave = found.setdefault(number, Wave(number))
            keys = [data.text(k) for k in event.get("services") or [] if isinstance(k, str)]
            for key in keys:
                if key not in lines:
                    lines[key] = ServiceLine(key)
                    wave.services.append(lines[key])
            if kind == "wave_started":
                wave.started_s = at
                continue
            wave.finished_s = at
            raw = event.get("failed")
            failed: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            for key in keys:
                done = lines[key]
                done.finished_s = at
                done.outcome = "failed" if key in failed else "verified"
                done.problem = data.text(failed.get(key)) if key in failed else ""
            continue
        found_line = lines.get(data.text(event.get("service")))
        if found_line is None:
            continue
        line = found_line
        if kind == "deploy_triggered":
            line.triggered_s, line.deploy_id = at, data.text(event.get("deploy_id"))
        elif kind == "deploy_resumed":
            line.deploy_id = line.deploy_id or data.text(event.get("deploy_id"))
        elif kind == "deploy_live" and data.text(event.get("deploy_id")) == line.deploy_id:
            line.live_s = at
        elif kind == "rollback_triggered":
            line.rollback_s, line.rollback_status = at, "triggered"
            rollbacks[data.text(event.get("deploy_id"))] = line
        elif kind == "deploy_status" and data.text(event.get("deploy_id")) in rollbacks:
            back = rollbacks[data.text(event.get("deploy_id"))]
            back.rollback_status, back.rollback_done_s = data.text(event.get("status")), at
    return [found[n] for n in sorted(found)]


def _at(value: float | None) -> str:
    return esc(fmt_seconds(value)) if value is not None else "-"


def _row(line: ServiceLine) -> list[str]:
    style = {"verified": "st-succeeded", "failed": "st-failed"}.get(line.outcome, "st-not_run")
    outcome = (f'<span class="status {esc(style)}">{esc(line.outcome)}</span>'
               + (f" {esc(line.problem)}" if line.problem else ""))
    back = "-"
    if line.rollback_s is not None:
        back = f"{_at(line.rollback_s)} → {esc(line.rollback_status)}"
        if line.rollback_done_s is not None:
            back += f" at {_at(line.rollback_done_s)}"
    return [f"<td>{esc(line.key)}</td>", f"<td>{mono(line.deploy_id or '-')}</td>", f"<td>{_at(line.triggered_s)}</td>",
            f"<td>{_at(line.live_s)}</td>", f"<td>{_at(line.finished_s)}</td>", f"<td>{outcome}</td>",
            f"<td>{back}</td>"]


def waves_section(report: Report, events: Sequence[Any]) -> str:
    """One table per wave: triggered → live → verified or failed, then rolled back; '' without waves."""
    found = waves(report, events)
    if not found:
        return ""
    body = "".join(
        f'<h3 class="wave" id="wave-{w.number}">wave {w.number} of {len(found)} · started {_at(w.started_s)}'
        f' · finished {_at(w.finished_s)}</h3>'
        + table(("service", "deploy", "triggered", "live", "verdict at", "verdict", "rolled back"),
                [_row(line) for line in w.services], "waves")
        for w in found)
    return section("waves", "Waves", "<p>Seconds since the run started; every service of a wave is triggered at "
                   "once and waited on in parallel; a failing wave rolls back every service, last wave first.</p>"
                   + body)
