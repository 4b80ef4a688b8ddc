"""Inline SVG charts of the HTML report: the stage time line and the health probes (traffic: :mod:`.html_traffic`).

Each chart is a string of escaped SVG drawn from :mod:`deploypipe.output.html_data`; colours come from CSS classes
(the page's stylesheet), never from ``style`` attributes, so the page's Content-Security-Policy can forbid them. Every
mark carries a ``<title>`` (a tooltip without JavaScript) and a class a test can count: ``.stage-row``, ``.probe``,
``.look``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from deploypipe.output.html_data import Marker, Probe, StageBar
from deploypipe.output.html_parts import esc, fmt_seconds, slug

__all__ = ["WIDTH", "Scale", "coord", "gantt_svg", "nice_ticks", "phase_shape", "probe_svg", "shape_svg", "svg_doc"]

WIDTH = 1100
_PLOT_X0, _PLOT_X1 = 220.0, 1010.0


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering ``lo``..``hi``."""
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo]
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    digits = max(0, 1 - math.floor(math.log10(step)))  # enough to drop float noise such as 0.30000000000000004
    return [round(first + i * step, digits) for i in range(int((hi - first) / step + 1e-9) + 1)]


class Scale:
    """Maps values ``lo``..``hi`` linearly onto pixels ``px_lo``..``px_hi``."""

    def __init__(self, lo: float, hi: float, px_lo: float, px_hi: float):
        self.lo, self.hi = lo, (hi if hi > lo else lo + 1.0)
        self.px_lo, self.px_hi = px_lo, px_hi

    def __call__(self, value: float) -> float:
        return self.px_lo + (value - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo)


def coord(value: float) -> str:
    """A coordinate as SVG text, to a tenth of a pixel."""
    return f"{value:.1f}"


def svg_doc(height: float, label: str, body: list[str], cls: str) -> str:
    """An ``<svg class="chart cls">`` of the report's width; ``body`` is SVG markup, ``label`` is escaped here."""
    return (f'<svg class="chart {cls}" viewBox="0 0 {WIDTH} {coord(height)}" role="img" aria-label="{esc(label)}" '
            f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">'
            f"<title>{esc(label)}</title>{''.join(body)}</svg>")


def _time_axis(x: Scale, top: float, bottom: float) -> list[str]:
    parts = []
    for tick in nice_ticks(x.lo, x.hi, 8):
        px = x(tick)
        parts.append(f'<line class="grid" x1="{coord(px)}" x2="{coord(px)}" y1="{coord(top)}" y2="{coord(bottom)}"/>'
                     f'<text class="tick" x="{coord(px)}" y="{coord(top - 6)}" text-anchor="middle">'
                     f"{esc(fmt_seconds(tick))}</text>")
    return parts


def _marker_lines(marks: Sequence[Marker], x: Scale, top: float, bottom: float, labels: bool) -> list[str]:
    parts = []
    for index, mark in enumerate(m for m in marks if x.lo <= m.at_s <= x.hi):
        px = x(mark.at_s)
        state = "ok" if mark.ok else "bad"
        title = f"{mark.label} at {fmt_seconds(mark.at_s)}"
        parts.append(f'<g class="marker marker-{slug(mark.kind)} {state}"><title>{esc(title)}</title>'
                     f'<line x1="{coord(px)}" x2="{coord(px)}" y1="{coord(top)}" y2="{coord(bottom)}"/>')
        if labels:
            anchor = "end" if px > WIDTH - 160 else "start"
            dx = -4 if anchor == "end" else 4
            parts.append(f'<text x="{coord(px + dx)}" y="{coord(top + 12 + 13 * (index % 3))}" '
                         f'text-anchor="{anchor}">{esc(mark.label)}</text>')
        parts.append("</g>")
    return parts


def _rollback_band(marks: Sequence[Marker], x: Scale, top: float, bottom: float) -> list[str]:
    start = next((m.at_s for m in marks if m.kind == "rollback_started"), None)
    if start is None:
        return []
    end = next((m.at_s for m in marks if m.kind == "rollback_finished" and m.at_s >= start), x.hi)
    x0, x1 = x(max(start, x.lo)), x(min(end, x.hi))
    return [f'<rect class="rollback-band" x="{coord(x0)}" y="{coord(top)}" width="{coord(max(x1 - x0, 1))}" '
            f'height="{coord(bottom - top)}"><title>rollback: {esc(fmt_seconds(start))} to {esc(fmt_seconds(end))}'
            f"</title></rect>"]


def gantt_svg(bars: Sequence[StageBar], marks: Sequence[Marker], span_s: float) -> str:
    """The stages on a time line: one ``.stage-row`` per stage, retries as ``.retry`` marks, the rollback shaded."""
    row_h, top = 26.0, 34.0
    bottom = top + row_h * max(len(bars), 1)
    x = Scale(0.0, max(span_s, 1.0), _PLOT_X0, _PLOT_X1)
    body = _time_axis(x, top, bottom) + _rollback_band(marks, x, top, bottom)
    for index, bar in enumerate(bars):
        y = top + index * row_h
        mid = y + row_h / 2
        cls = f"stage-row st-{slug(bar.status)}"
        label = bar.id if len(bar.id) <= 28 else bar.id[:27] + "…"
        body.append(f'<g class="{cls}" data-stage="{esc(bar.id)}">'
                    f'<rect class="stripe" x="0" y="{coord(y)}" width="{WIDTH}" height="{coord(row_h)}"/>'
                    f'<text class="label" x="8" y="{coord(mid + 4)}"><title>{esc(bar.id)} ({esc(bar.type)})</title>'
                    f"{esc(label)}</text>")
        if bar.start_s is None:
            body.append(f'<text class="no-bar" x="{coord(_PLOT_X0 + 4)}" y="{coord(mid + 4)}">'
                        f"{esc(bar.status.replace('_', ' '))}</text>")
        else:
            end = bar.end_s if bar.end_s is not None else x.hi
            x0, x1 = x(bar.start_s), x(end)
            what = f"{bar.id}: {bar.status}, {fmt_seconds(end - bar.start_s)}"
            if bar.attempts > 1:
                what += f", {bar.attempts} attempts"
            body.append(f'<rect class="bar" x="{coord(x0)}" y="{coord(y + 6)}" width="{coord(max(x1 - x0, 2.0))}" '
                        f'height="{coord(row_h - 12)}" rx="2"><title>{esc(what)}</title></rect>')
            body.append(f'<text class="duration" x="{WIDTH - 6}" y="{coord(mid + 4)}" text-anchor="end">'
                        f"{esc(fmt_seconds(end - bar.start_s))}</text>")
        for retry in bar.retries:
            px = x(min(max(retry.at_s, x.lo), x.hi))
            after = f" after attempt {retry.attempt}" if retry.attempt else ""
            title = f"retry{after}: {retry.reason}"
            body.append(f'<path class="retry" d="M{coord(px)} {coord(y + 4)} l5 9 l-5 9 l-5 -9 z">'
                        f"<title>{esc(title)}</title></path>")
        body.append("</g>")
    body += _marker_lines([m for m in marks if m.kind == "live"], x, top, bottom, labels=False)
    return svg_doc(bottom + 6, "stages on a time line (seconds since the run started)", body, "gantt")


_SHAPES = {"verify": "circle", "observe": "square", "after_rollback": "diamond"}


def shape_svg(kind: str, cx: float, cy: float) -> str:
    if kind == "circle":
        return f'<circle cx="{coord(cx)}" cy="{coord(cy)}" r="4.5"/>'
    if kind == "square":
        return f'<rect x="{coord(cx - 4)}" y="{coord(cy - 4)}" width="8" height="8"/>'
    if kind == "diamond":
        return f'<path d="M{coord(cx)} {coord(cy - 5.5)} l5.5 5.5 l-5.5 5.5 l-5.5 -5.5 z"/>'
    if kind == "cross":
        return (f'<path class="cross" d="M{coord(cx - 5)} {coord(cy - 5)} l10 10 '
                f'M{coord(cx + 5)} {coord(cy - 5)} l-10 10"/>')
    return f'<path d="M{coord(cx)} {coord(cy - 5)} l5 9 l-10 0 z"/>'


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
    x = Scale(*_probe_window(items, marks), _PLOT_X0 - 150, _PLOT_X1 + 60)
    timed = [p.elapsed_ms for p in items if p.elapsed_ms is not None]
    y_hi = max([10.0, *timed]) * 1.15
    y = Scale(0.0, y_hi, bottom, top + 16)
    body = _time_axis(x, top, bottom)
    for tick in nice_ticks(0.0, y_hi, 5):
        py = y(tick)
        body.append(f'<line class="grid" x1="{coord(x.px_lo)}" x2="{coord(x.px_hi)}" y1="{coord(py)}" '
                    f'y2="{coord(py)}"/>'
                    f'<text class="tick" x="{coord(x.px_lo - 6)}" y="{coord(py + 4)}" text-anchor="end">'
                    f"{esc(f'{tick:g}')} ms</text>")
    if any(p.elapsed_ms is None for p in items):
        body.append(f'<text class="axis-label" x="{coord(x.px_lo - 6)}" y="{coord(top + 12)}" text-anchor="end">'
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
        body.append(f'<g class="phase-band phase-{slug(run[0].phase)}"><rect x="{coord(x0)}" y="{coord(bottom)}" '
                    f'width="{coord(x1 - x0)}" height="6"/><text x="{coord(x0)}" y="{coord(bottom + 20)}">'
                    f"{esc(run[0].phase.replace('_', ' '))}</text></g>")
        points = " ".join(f"{coord(x(p.at_s))},{coord(y(p.elapsed_ms))}" for p in run if p.elapsed_ms is not None)
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
    return svg_doc(height, "health probes: response time per probe (ms) against seconds since the run started",
                body, "probes")


