"""Inline SVG charts of the HTML report: the stage time line, the health probes, the traffic looks.

Each chart is a string of escaped SVG drawn from :mod:`deploypipe.output.html_data`; colours come from CSS classes
(the page's stylesheet), never from ``style`` attributes, so the page's Content-Security-Policy can forbid them. Every
mark carries a ``<title>`` (a tooltip without JavaScript) and a class a test can count: ``.stage-row``, ``.probe``,
``.look``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from html import escape

from deploypipe.output.html_data import Marker, Probe, StageBar, TrafficLook

__all__ = ["esc", "fmt_seconds", "gantt_svg", "nice_ticks", "phase_shape", "probe_svg", "shape_svg", "slug",
           "traffic_svg"]

WIDTH = 1100
_PLOT_X0, _PLOT_X1 = 220.0, 1010.0


def esc(value: object) -> str:
    """Text or attribute value, HTML-escaped (quotes included)."""
    return escape("" if value is None else str(value), quote=True)


def slug(value: object) -> str:
    """A CSS class fragment from a status or phase: lowercase letters, digits, ``_`` and ``-`` only."""
    return re.sub(r"[^a-z0-9_-]", "", str(value).lower())[:40] or "other"


def fmt_seconds(value: float) -> str:
    """``4.5`` -> ``4.5 s``; ``95`` -> ``1m 35s``; ``4000`` -> ``1h 06m``."""
    if abs(value) < 60:
        return f"{value:.1f} s" if abs(value) < 10 and value != int(value) else f"{value:.0f} s"
    minutes, secs = divmod(int(round(value)), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering ``lo``..``hi``."""
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo]
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 9) for i in range(int((hi - first) / step + 1e-9) + 1)]


class _Scale:
    def __init__(self, lo: float, hi: float, px_lo: float, px_hi: float):
        self.lo, self.hi = lo, (hi if hi > lo else lo + 1.0)
        self.px_lo, self.px_hi = px_lo, px_hi

    def __call__(self, value: float) -> float:
        return self.px_lo + (value - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _svg(height: float, label: str, body: list[str], cls: str) -> str:
    return (f'<svg class="chart {cls}" viewBox="0 0 {WIDTH} {_f(height)}" role="img" aria-label="{esc(label)}" '
            f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">'
            f"<title>{esc(label)}</title>{''.join(body)}</svg>")


def _time_axis(x: _Scale, top: float, bottom: float) -> list[str]:
    parts = []
    for tick in nice_ticks(x.lo, x.hi, 8):
        px = x(tick)
        parts.append(f'<line class="grid" x1="{_f(px)}" x2="{_f(px)}" y1="{_f(top)}" y2="{_f(bottom)}"/>'
                     f'<text class="tick" x="{_f(px)}" y="{_f(top - 6)}" text-anchor="middle">'
                     f"{esc(fmt_seconds(tick))}</text>")
    return parts


def _marker_lines(marks: Sequence[Marker], x: _Scale, top: float, bottom: float, labels: bool) -> list[str]:
    parts = []
    for index, mark in enumerate(m for m in marks if x.lo <= m.at_s <= x.hi):
        px = x(mark.at_s)
        state = "ok" if mark.ok else "bad"
        title = f"{mark.label} at {fmt_seconds(mark.at_s)}"
        parts.append(f'<g class="marker marker-{slug(mark.kind)} {state}"><title>{esc(title)}</title>'
                     f'<line x1="{_f(px)}" x2="{_f(px)}" y1="{_f(top)}" y2="{_f(bottom)}"/>')
        if labels:
            anchor = "end" if px > WIDTH - 160 else "start"
            dx = -4 if anchor == "end" else 4
            parts.append(f'<text x="{_f(px + dx)}" y="{_f(top + 12 + 13 * (index % 3))}" '
                         f'text-anchor="{anchor}">{esc(mark.label)}</text>')
        parts.append("</g>")
    return parts


def _rollback_band(marks: Sequence[Marker], x: _Scale, top: float, bottom: float) -> list[str]:
    start = next((m.at_s for m in marks if m.kind == "rollback_started"), None)
    if start is None:
        return []
    end = next((m.at_s for m in marks if m.kind == "rollback_finished" and m.at_s >= start), x.hi)
    x0, x1 = x(max(start, x.lo)), x(min(end, x.hi))
    return [f'<rect class="rollback-band" x="{_f(x0)}" y="{_f(top)}" width="{_f(max(x1 - x0, 1))}" '
            f'height="{_f(bottom - top)}"><title>rollback: {esc(fmt_seconds(start))} to {esc(fmt_seconds(end))}'
            f"</title></rect>"]


def gantt_svg(bars: Sequence[StageBar], marks: Sequence[Marker], span_s: float) -> str:
    """The stages on a time line: one ``.stage-row`` per stage, retries as ``.retry`` marks, the rollback shaded."""
    row_h, top = 26.0, 34.0
    bottom = top + row_h * max(len(bars), 1)
    x = _Scale(0.0, max(span_s, 1.0), _PLOT_X0, _PLOT_X1)
    body = _time_axis(x, top, bottom) + _rollback_band(marks, x, top, bottom)
    for index, bar in enumerate(bars):
        y = top + index * row_h
        mid = y + row_h / 2
        cls = f"stage-row st-{slug(bar.status)}"
        label = bar.id if len(bar.id) <= 28 else bar.id[:27] + "…"
        body.append(f'<g class="{cls}" data-stage="{esc(bar.id)}">'
                    f'<rect class="stripe" x="0" y="{_f(y)}" width="{WIDTH}" height="{_f(row_h)}"/>'
                    f'<text class="label" x="8" y="{_f(mid + 4)}"><title>{esc(bar.id)} ({esc(bar.type)})</title>'
                    f"{esc(label)}</text>")
        if bar.start_s is None:
            body.append(f'<text class="no-bar" x="{_f(_PLOT_X0 + 4)}" y="{_f(mid + 4)}">'
                        f"{esc(bar.status.replace('_', ' '))}</text>")
        else:
            end = bar.end_s if bar.end_s is not None else x.hi
            x0, x1 = x(bar.start_s), x(end)
            what = f"{bar.id}: {bar.status}, {fmt_seconds(end - bar.start_s)}"
            if bar.attempts > 1:
                what += f", {bar.attempts} attempts"
            body.append(f'<rect class="bar" x="{_f(x0)}" y="{_f(y + 6)}" width="{_f(max(x1 - x0, 2.0))}" '
                        f'height="{_f(row_h - 12)}" rx="2"><title>{esc(what)}</title></rect>')
            body.append(f'<text class="duration" x="{WIDTH - 6}" y="{_f(mid + 4)}" text-anchor="end">'
                        f"{esc(fmt_seconds(end - bar.start_s))}</text>")
        for retry in bar.retries:
            px = x(min(max(retry.at_s, x.lo), x.hi))
            after = f" after attempt {retry.attempt}" if retry.attempt else ""
            title = f"retry{after}: {retry.reason}"
            body.append(f'<path class="retry" d="M{_f(px)} {_f(y + 4)} l5 9 l-5 9 l-5 -9 z">'
                        f"<title>{esc(title)}</title></path>")
        body.append("</g>")
    body += _marker_lines([m for m in marks if m.kind == "live"], x, top, bottom, labels=False)
    return _svg(bottom + 6, "stages on a time line (seconds since the run started)", body, "gantt")


_SHAPES = {"verify": "circle", "observe": "square", "after_rollback": "diamond"}


def shape_svg(kind: str, cx: float, cy: float) -> str:
    if kind == "circle":
        return f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="4.5"/>'
    if kind == "square":
        return f'<rect x="{_f(cx - 4)}" y="{_f(cy - 4)}" width="8" height="8"/>'
    if kind == "diamond":
        return f'<path d="M{_f(cx)} {_f(cy - 5.5)} l5.5 5.5 l-5.5 5.5 l-5.5 -5.5 z"/>'
    if kind == "cross":
        return (f'<path class="cross" d="M{_f(cx - 5)} {_f(cy - 5)} l10 10 M{_f(cx + 5)} {_f(cy - 5)} l-10 10"/>')
    return f'<path d="M{_f(cx)} {_f(cy - 5)} l5 9 l-10 0 z"/>'


def phase_shape(phase: str) -> str:
    """The mark of a probe phase (shapes, so phases stay apart when printed in black and white)."""
    return _SHAPES.get(phase, "triangle")


def _probe_window(items: Sequence[Probe], marks: Sequence[Marker]) -> tuple[float, float]:
    lo, hi = min(p.at_s for p in items), max(p.at_s for p in items)
    live = [m.at_s for m in marks if m.kind == "live" and m.at_s <= lo]
    if live:
        lo = max(live)
    hi = max([hi, *(m.at_s for m in marks if m.kind.startswith("rollback") and m.at_s >= lo)])
    pad = max((hi - lo) * 0.03, 0.25)
    return lo - pad, hi + pad


def probe_svg(items: Sequence[Probe], marks: Sequence[Marker]) -> str:
    """Response time per probe over the observation window: one ``.probe`` per probe, failures as crosses."""
    top, bottom, height = 44.0, 250.0, 286.0
    x = _Scale(*_probe_window(items, marks), _PLOT_X0 - 150, _PLOT_X1 + 60)
    timed = [p.elapsed_ms for p in items if p.elapsed_ms is not None]
    y_hi = max([10.0, *timed]) * 1.15
    y = _Scale(0.0, y_hi, bottom, top + 16)
    body = _time_axis(x, top, bottom)
    for tick in nice_ticks(0.0, y_hi, 5):
        py = y(tick)
        body.append(f'<line class="grid" x1="{_f(x.px_lo)}" x2="{_f(x.px_hi)}" y1="{_f(py)}" y2="{_f(py)}"/>'
                    f'<text class="tick" x="{_f(x.px_lo - 6)}" y="{_f(py + 4)}" text-anchor="end">'
                    f"{esc(f'{tick:g}')} ms</text>")
    if any(p.elapsed_ms is None for p in items):
        body.append(f'<text class="axis-label" x="{_f(x.px_lo - 6)}" y="{_f(top + 12)}" text-anchor="end">'
                    "no answer</text>")
    body += _rollback_band(marks, x, top, bottom)
    runs: list[list[Probe]] = []
    for probe in items:
        if runs and runs[-1][-1].phase == probe.phase:
            runs[-1].append(probe)
        else:
            runs.append([probe])
    for run in runs:
        x0, x1 = x(run[0].at_s) - 6, x(run[-1].at_s) + 6
        body.append(f'<g class="phase-band phase-{slug(run[0].phase)}"><rect x="{_f(x0)}" y="{_f(bottom)}" '
                    f'width="{_f(x1 - x0)}" height="6"/><text x="{_f(x0)}" y="{_f(bottom + 20)}">'
                    f"{esc(run[0].phase.replace('_', ' '))}</text></g>")
        points = " ".join(f"{_f(x(p.at_s))},{_f(y(p.elapsed_ms))}" for p in run if p.elapsed_ms is not None)
        if points.count(",") > 1:
            body.append(f'<polyline class="probe-line phase-{slug(run[0].phase)}" points="{points}"/>')
    body += _marker_lines(marks, x, top, bottom, labels=True)
    for probe in items:
        cy = y(probe.elapsed_ms) if probe.elapsed_ms is not None else top + 8
        shape = phase_shape(probe.phase) if probe.ok else "cross"
        state = "ok" if probe.ok else "fail"
        answer = "no answer" if probe.elapsed_ms is None else f"{probe.elapsed_ms:g} ms"
        title = (f"{fmt_seconds(probe.at_s)} · {probe.phase} · {'ok' if probe.ok else 'FAILED'} · "
                 f"{'status ' + str(probe.status) if probe.status is not None else 'no status'} · {answer}\n"
                 f"{probe.url}\n{probe.reason}")
        body.append(f'<g class="probe {state} phase-{slug(probe.phase)}" data-phase="{esc(probe.phase)}">'
                    f"<title>{esc(title)}</title>{shape_svg(shape, x(probe.at_s), cy)}</g>")
    return _svg(height, "health probes: response time per probe (ms) against seconds since the run started",
                body, "probes")


def _panel(looks: Sequence[TrafficLook], x: _Scale, left: float, right: float, values: list[float | None],
           baseline: list[float | None], unit: str, title: str, cls: str, when: Callable[[float], str]) -> list[str]:
    top, bottom = 40.0, 210.0
    known = [v for v in values + baseline if v is not None]
    y_hi = max([1.0 if unit == "%" else 10.0, *known]) * 1.15
    y = _Scale(0.0, y_hi, bottom, top)
    px = _Scale(x.lo, x.hi, left, right)
    body = [f'<text class="panel-title" x="{_f(left)}" y="20">{esc(title)}</text>']
    for tick in nice_ticks(0.0, y_hi, 4):
        py = y(tick)
        body.append(f'<line class="grid" x1="{_f(left)}" x2="{_f(right)}" y1="{_f(py)}" y2="{_f(py)}"/>'
                    f'<text class="tick" x="{_f(left - 4)}" y="{_f(py + 4)}" text-anchor="end">'
                    f"{esc(f'{tick:g}')}{esc(unit)}</text>")
    for tick in nice_ticks(x.lo, x.hi, 4):
        body.append(f'<text class="tick" x="{_f(px(tick))}" y="{_f(bottom + 16)}" text-anchor="middle">'
                    f"{esc(when(tick))}</text>")
    for series, kind in ((baseline, "baseline"), (values, "release")):
        points = " ".join(f"{_f(px(look.at_s or 0.0))},{_f(y(v))}" for look, v in zip(looks, series, strict=True)
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
                    f'<circle cx="{_f(px(look.at_s or 0.0))}" cy="{_f(y(value))}" r="4"/></g>')
    return body


def traffic_svg(looks: Sequence[TrafficLook]) -> str:
    """Two panels over the looks: the 5xx share and the latency quantile, the release against its baseline."""
    when: Callable[[float], str] = fmt_seconds
    if any(look.at_s is None for look in looks):  # no times: one look after the other
        looks = [TrafficLook(float(i + 1), *_rest(look)) for i, look in enumerate(looks)]
        when = _look_number
    known = [look.at_s for look in looks if look.at_s is not None]
    pad = max((max(known) - min(known)) * 0.04, 0.5)
    x = _Scale(min(known) - pad, max(known) + pad, 0, 1)
    share = [None if look.error_share is None else look.error_share * 100 for look in looks]
    base_share = [None if look.baseline_error_share is None else look.baseline_error_share * 100 for look in looks]
    body = _panel(looks, x, 70, 520, share, base_share, "%", "5xx share of requests", "look", when)
    body += _panel(looks, x, 640, 1090, [look.latency_ms for look in looks],
                   [look.baseline_latency_ms for look in looks], "ms", "latency", "look-latency", when)
    return _svg(236, "traffic analysis: the new release against the previous one at each look", body, "traffic")


def _look_number(value: float) -> str:
    return f"look {value:g}" if value == int(value) else ""


def _rest(look: TrafficLook) -> tuple[int | None, int | None, int | None, int | None, float | None, float | None, str]:
    return (look.requests, look.errors, look.baseline_requests, look.baseline_errors, look.latency_ms,
            look.baseline_latency_ms, look.verdict)
