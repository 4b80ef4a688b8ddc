"""The traffic analysis in the HTML report: the looks (events ``traffic_look``) and the verdict of a traffic stage.

A look carries the windows' totals so far: requests, 5xx errors and the latency quantile of the new release and of
its baseline (the previous release). The chart shows the 5xx share and the latency at each look, the release against
the baseline; the verdict ({status, outcome, message, figures, worst_paths}) is read from the outputs of a stage of
type ``verify.traffic``. Both are optional: a run without them has no traffic section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploypipe.output.html_data import integer, mappings, num, origin_of, seconds, text
from deploypipe.output.html_parts import esc, fmt_seconds, mono, section, slug, swatch, table
from deploypipe.output.html_svg import Scale, coord, nice_ticks, svg_doc
from deploypipe.stages.report import Report

__all__ = ["TrafficLook", "TrafficVerdict", "traffic_looks", "traffic_section", "traffic_svg", "traffic_verdicts"]


@dataclass(frozen=True)
class TrafficLook:
    """One look of a traffic analysis (event ``traffic_look``); counts are the windows' totals at that look."""

    at_s: float | None
    requests: int | None
    errors: int | None
    baseline_requests: int | None
    baseline_errors: int | None
    latency_ms: float | None
    baseline_latency_ms: float | None
    verdict: str

    @property
    def error_share(self) -> float | None:
        return _share(self.errors, self.requests)

    @property
    def baseline_error_share(self) -> float | None:
        return _share(self.baseline_errors, self.baseline_requests)


def _share(part: int | None, whole: int | None) -> float | None:
    return None if part is None or not whole else part / whole


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
        looks.append(TrafficLook(at, integer(event.get("requests")), integer(event.get("errors")),
                                 integer(event.get("baseline_requests")), integer(event.get("baseline_errors")),
                                 num(event.get("latency_ms")), num(event.get("baseline_latency_ms")),
                                 text(verdict)))
    return looks


@dataclass(frozen=True)
class TrafficVerdict:
    """The verdict of a ``verify.traffic`` stage, as its outputs hold it."""

    stage: str
    status: str
    outcome: str
    message: str
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
            dict(figures) if isinstance(figures, Mapping) else {},
            [dict(path) for path in paths if isinstance(path, Mapping)] if isinstance(paths, Sequence)
            and not isinstance(paths, str) else []))
    return found


def _panel(looks: Sequence[TrafficLook], x: Scale, left: float, right: float, values: list[float | None],
           baseline: list[float | None], unit: str, title: str, cls: str, when: Callable[[float], str]) -> list[str]:
    top, bottom = 40.0, 210.0
    known = [v for v in values + baseline if v is not None]
    y_hi = max([1.0 if unit == "%" else 10.0, *known]) * 1.15
    y = Scale(0.0, y_hi, bottom, top)
    xs = Scale(x.lo, x.hi, left, right)
    body = [f'<text class="panel-title" x="{coord(left)}" y="20">{esc(title)}</text>']
    for tick in nice_ticks(0.0, y_hi, 4):
        py = y(tick)
        body.append(f'<line class="grid" x1="{coord(left)}" x2="{coord(right)}" y1="{coord(py)}" y2="{coord(py)}"/>'
                    f'<text class="tick" x="{coord(left - 4)}" y="{coord(py + 4)}" text-anchor="end">'
                    f"{esc(f'{tick:g}')}{esc(unit)}</text>")
    for tick in nice_ticks(x.lo, x.hi, 4):
        body.append(f'<text class="tick" x="{coord(xs(tick))}" y="{coord(bottom + 16)}" text-anchor="middle">'
                    f"{esc(when(tick))}</text>")
    for series, kind in ((baseline, "baseline"), (values, "release")):
        points = " ".join(f"{coord(xs(look.at_s or 0.0))},{coord(y(v))}" for look, v in zip(looks, series, strict=True)
                          if v is not None)
        if points:
            body.append(f'<polyline class="traffic-line {kind}" points="{points}"/>')
    for look, value, base in zip(looks, values, baseline, strict=True):
        if value is None:
            continue
        shown = f"{value:.2f}{unit}" if unit == "%" else f"{value:.0f} {unit}"
        base_shown = "-" if base is None else (f"{base:.2f}{unit}" if unit == "%" else f"{base:.0f} {unit}")
        tip = (f"{when(look.at_s or 0.0)}: {shown} (baseline {base_shown}); {look.requests} requests, "
               f"{look.errors} errors; verdict {look.verdict or '-'}")
        body.append(f'<g class="{cls} verdict-{slug(look.verdict or "none")}"><title>{esc(tip)}</title>'
                    f'<circle cx="{coord(xs(look.at_s or 0.0))}" cy="{coord(y(value))}" r="4"/></g>')
    return body


def traffic_svg(looks: Sequence[TrafficLook]) -> str:
    """Two panels over the looks: the 5xx share and the latency quantile, the release against its baseline."""
    when: Callable[[float], str] = fmt_seconds
    if any(look.at_s is None for look in looks):  # no times: one look after the other
        looks = [TrafficLook(float(i + 1), *_rest(look)) for i, look in enumerate(looks)]
        when = _look_number
    known = [look.at_s for look in looks if look.at_s is not None]
    pad = max((max(known) - min(known)) * 0.04, 0.5)
    x = Scale(min(known) - pad, max(known) + pad, 0, 1)
    share = [None if look.error_share is None else look.error_share * 100 for look in looks]
    base_share = [None if look.baseline_error_share is None else look.baseline_error_share * 100 for look in looks]
    body = _panel(looks, x, 70, 520, share, base_share, "%", "5xx share of requests", "look", when)
    body += _panel(looks, x, 640, 1090, [look.latency_ms for look in looks],
                   [look.baseline_latency_ms for look in looks], "ms", "latency", "look-latency", when)
    return svg_doc(236, "traffic analysis: the new release against the previous one at each look", body, "traffic")


def _look_number(value: float) -> str:
    return f"look {value:g}" if value == int(value) else ""


def _rest(look: TrafficLook) -> tuple[int | None, int | None, int | None, int | None, float | None, float | None, str]:
    return (look.requests, look.errors, look.baseline_requests, look.baseline_errors, look.latency_ms,
            look.baseline_latency_ms, look.verdict)


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def traffic_section(looks: Sequence[TrafficLook], verdicts: Sequence[TrafficVerdict]) -> str:
    if not looks and not verdicts:
        return ""
    body = []
    for verdict in verdicts:
        state = "ok-text" if verdict.outcome == "pass" else "bad-text" if verdict.outcome == "fail" else "muted"
        body.append(f"<h3>{mono(verdict.stage)}: <span class=\"{state}\">{esc(verdict.status or '-')}"
                    f"</span> (outcome {esc(verdict.outcome or '-')})</h3><p>{esc(verdict.message)}</p>")
        if verdict.figures:
            body.append(table(["Figure", "Value"], [[f"<td>{esc(k)}</td>", f'<td class="num">{esc(_figure(v))}</td>']
                                                     for k, v in verdict.figures.items()], "figures"))
        if verdict.worst_paths:
            keys = ["route", "requests", "errors", "baseline_requests", "baseline_errors", "status", "message"]
            rows = [[f"<td>{esc(_figure(path.get(k)))}</td>" for k in keys] for path in verdict.worst_paths]
            body.append("<h3>Worst paths</h3>" + table(keys, rows, "worst-paths"))
    if looks:
        body.append('<div class="legend">' + swatch("release", "new release") + swatch("baseline", "baseline")
                    + "</div>" + traffic_svg(looks))
    return section("traffic", "Traffic analysis", "".join(body))
