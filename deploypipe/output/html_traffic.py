"""The traffic analysis in the HTML report: the baseline and the looks of a traffic stage, and its verdict.

The journal holds one ``traffic_baseline`` (the previous release's traffic before the switch: its window, totals and
buckets) and a ``traffic_look`` per look (the new release's totals so far, its latency quantile and each path's
latency, with the baseline's figures beside them). The charts (:mod:`.html_traffic_charts`) put the switch at 0 s:
the baseline before it, the looks after it. The verdict ({status, outcome, message, compared, figures, worst_paths})
is read from the outputs of a stage of type ``verify.traffic``; ``compared: false`` means there was no baseline and
only the absolute floors were applied, and the section says so instead of showing a comparison. All of it is
optional: a run without them has no traffic section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploypipe.output.html_data import integer, mappings, num, origin_of, seconds, text
from deploypipe.output.html_parts import esc, mono, section, table
from deploypipe.output.html_traffic_charts import traffic_charts
from deploypipe.output.html_traffic_model import PathLatency, TrafficBaseline, TrafficBucket, TrafficLook
from deploypipe.stages.report import Report

__all__ = ["TrafficVerdict", "traffic_baseline", "traffic_looks", "traffic_section", "traffic_verdicts"]

NO_BASELINE = "no baseline — floors only"


def _path_latencies(value: Any) -> tuple[PathLatency, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(PathLatency(text(item.get("route")), num(item.get("ms")), num(item.get("baseline_ms")))
                 for item in mappings(value) if text(item.get("route")))


def traffic_looks(report: Report, events: Sequence[Any]) -> list[TrafficLook]:
    origin = origin_of(report)
    looks = []
    for event in mappings(events):
        if event.get("event") != "traffic_look":
            continue
        at = seconds(event.get("at"), origin)
        if at is None:
            at = seconds(event.get("ts"), origin)
        verdict = event.get("verdict")
        if isinstance(verdict, Mapping):
            verdict = verdict.get("status") or verdict.get("outcome")
        looks.append(TrafficLook(at, num(event.get("elapsed_s")), integer(event.get("requests")),
                                 integer(event.get("errors")), integer(event.get("baseline_requests")),
                                 integer(event.get("baseline_errors")), num(event.get("latency_ms")),
                                 num(event.get("baseline_latency_ms")), text(verdict),
                                 _path_latencies(event.get("path_latency"))))
    return looks


def traffic_baseline(report: Report, events: Sequence[Any]) -> TrafficBaseline | None:
    """The last ``traffic_baseline`` event with a window (times as seconds after the run's origin), or None."""
    origin = origin_of(report)
    found = None
    for event in mappings(events):
        if event.get("event") != "traffic_baseline":
            continue
        start, end = seconds(event.get("start"), origin), seconds(event.get("end"), origin)
        if start is None or end is None:
            continue
        raw = event.get("buckets")
        buckets = tuple(TrafficBucket(at, integer(b.get("requests")), integer(b.get("errors")))
                        for b in mappings(raw if isinstance(raw, Sequence) and not isinstance(raw, str) else [])
                        if (at := seconds(b.get("start"), origin)) is not None)
        found = TrafficBaseline(start, end, integer(event.get("requests")), integer(event.get("errors")), buckets)
    return found


@dataclass(frozen=True)
class TrafficVerdict:
    """The verdict of a ``verify.traffic`` stage, as its outputs hold it."""

    stage: str
    status: str
    outcome: str
    message: str
    compared: bool
    figures: dict[str, Any]
    worst_paths: list[dict[str, Any]]


def traffic_verdicts(report: Report) -> list[TrafficVerdict]:
    """The verdict of each traffic stage: ``outputs["verdict"]``, or the outputs themselves when they are one."""
    found = []
    for stage in report.stages:
        if not stage.type.startswith("verify.traffic"):
            continue
        outputs = stage.outputs if isinstance(stage.outputs, Mapping) else {}
        verdict = outputs.get("verdict") if isinstance(outputs.get("verdict"), Mapping) else outputs
        if not isinstance(verdict, Mapping) or not ({"status", "outcome", "message"} & set(verdict)):
            continue
        figures = verdict.get("figures")
        paths = verdict.get("worst_paths")
        found.append(TrafficVerdict(
            stage.id, text(verdict.get("status")), text(verdict.get("outcome")), text(verdict.get("message")),
            verdict.get("compared") is not False,
            dict(figures) if isinstance(figures, Mapping) else {},
            [dict(path) for path in paths if isinstance(path, Mapping)] if isinstance(paths, Sequence)
            and not isinstance(paths, str) else []))
    return found


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


_PATH_KEYS = ["route", "requests", "errors", "latency_ms", "baseline_requests", "baseline_errors",
              "baseline_latency_ms", "status", "message"]


def _verdict_html(verdict: TrafficVerdict) -> str:
    state = "ok-text" if verdict.outcome == "pass" else "bad-text" if verdict.outcome == "fail" else "muted"
    body = [f"<h3>{mono(verdict.stage)}: <span class=\"{state}\">{esc(verdict.status or '-')}"
            f"</span> (outcome {esc(verdict.outcome or '-')})</h3><p>{esc(verdict.message)}</p>"]
    if not verdict.compared:
        body.append(f'<p class="no-baseline muted">{esc(NO_BASELINE)}</p>')
    figures = {k: v for k, v in verdict.figures.items() if verdict.compared or not k.startswith("baseline")}
    if figures:
        body.append(table(["Figure", "Value"], [[f"<td>{esc(k)}</td>", f'<td class="num">{esc(_figure(v))}</td>']
                                                 for k, v in figures.items()], "figures"))
    if verdict.worst_paths:
        keys = [k for k in _PATH_KEYS if verdict.compared or not k.startswith("baseline")]
        rows = [[f"<td>{esc(_figure(path.get(k)))}</td>" for k in keys] for path in verdict.worst_paths]
        body.append("<h3>Worst paths</h3>" + table(keys, rows, "worst-paths"))
    return "".join(body)


def traffic_section(looks: Sequence[TrafficLook], verdicts: Sequence[TrafficVerdict],
                    baseline: TrafficBaseline | None = None) -> str:
    if not looks and not verdicts:
        return ""
    body = [_verdict_html(verdict) for verdict in verdicts]
    if looks:  # with verdicts that made no comparison, no baseline is drawn
        body.append(traffic_charts(looks, baseline, compared=not verdicts or any(v.compared for v in verdicts)))
    return section("traffic", "Traffic analysis", "".join(body))
