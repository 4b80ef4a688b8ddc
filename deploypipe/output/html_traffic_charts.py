"""The traffic charts of the HTML report: 5xx share, latency and latency per path, the switch at 0 s.

The baseline (the previous release before the switch) is drawn at negative times: its buckets' 5xx share, and its
latency (service-wide and per path) as a level over its window; the new release's looks after the switch. A chart
with no figure of the new release is not drawn: a line says what is missing instead, so no chart is ever empty.
Marks a test can count: ``.look`` and ``.look-latency`` (the release's looks), ``.path-look`` (a path at a look),
``.baseline-point`` (the baseline), ``.switch`` (the switch line).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from deploypipe.output.html_parts import esc, fmt_seconds, slug, swatch
from deploypipe.output.html_svg import WIDTH, Scale, coord, nice_ticks, svg_doc
from deploypipe.output.html_traffic_model import TrafficBaseline, TrafficLook, share

__all__ = ["PATH_SERIES", "traffic_charts"]

#: paths drawn in the per-path chart (the first ones to appear in the looks); each has its own colour class
PATH_SERIES = 6
_LEFT, _RIGHT, _TOP, _BOTTOM, _HEIGHT = 70.0, WIDTH - 60.0, 40.0, 200.0, 226.0


@dataclass
class _Series:
    """One line of a chart: points (x, y, tooltip, extra class); ``level`` draws a flat baseline over a window."""

    cls: str
    mark: str
    points: list[tuple[float, float, str, str]] = field(default_factory=list)
    level: tuple[float, float] | None = None  # the window (x from, x to) of a baseline level


@dataclass(frozen=True)
class _Axis:
    """Where each look sits on the x axis, and how ticks read."""

    xs: list[float]
    label: Callable[[float], str]
    switch: bool  # x is seconds after the switch (a baseline can be drawn before it)


def _relative(value: float) -> str:
    if abs(value) < 1e-9:
        return "switch"
    return ("+" if value > 0 else "−") + fmt_seconds(abs(value))


def _axis(looks: Sequence[TrafficLook], baseline: TrafficBaseline | None) -> _Axis:
    if baseline is not None and all(look.elapsed_s is not None or look.at_s is not None for look in looks):
        xs = [look.elapsed_s if look.elapsed_s is not None else (look.at_s or 0.0) - baseline.end_s
              for look in looks]
        return _Axis(xs, _relative, True)
    if all(look.at_s is not None for look in looks):
        return _Axis([look.at_s or 0.0 for look in looks], fmt_seconds, False)
    return _Axis([float(i + 1) for i in range(len(looks))],
                 lambda v: f"look {v:g}" if v == int(v) else "", False)  # no times: one look after the other


def _chart(name: str, title: str, unit: str, series: Sequence[_Series], axis: _Axis, x_lo: float) -> str:
    ys = [y for s in series for _, y, _, _ in s.points]
    y = Scale(0.0, max([1.0 if unit == "%" else 10.0, *ys]) * 1.15, _BOTTOM, _TOP)
    xs_all = [x_lo, *axis.xs, *(x for s in series for x, _, _, _ in s.points)]
    pad = max((max(xs_all) - min(xs_all)) * 0.04, 0.5)
    x = Scale(min(xs_all) - pad, max(xs_all) + pad, _LEFT, _RIGHT)
    body = [f'<text class="panel-title" x="{coord(_LEFT)}" y="20">{esc(title)}</text>']
    for tick in nice_ticks(y.lo, y.hi, 4):
        body.append(f'<line class="grid" x1="{coord(_LEFT)}" x2="{coord(_RIGHT)}" y1="{coord(y(tick))}" '
                    f'y2="{coord(y(tick))}"/><text class="tick" x="{coord(_LEFT - 4)}" y="{coord(y(tick) + 4)}" '
                    f'text-anchor="end">{esc(f"{tick:g}")}{esc(unit)}</text>')
    for tick in nice_ticks(x.lo, x.hi, 6):
        body.append(f'<text class="tick" x="{coord(x(tick))}" y="{coord(_BOTTOM + 16)}" text-anchor="middle">'
                    f"{esc(axis.label(tick))}</text>")
    if axis.switch:
        body.append(f'<g class="switch marker"><line x1="{coord(x(0))}" x2="{coord(x(0))}" y1="{coord(_TOP - 8)}" '
                    f'y2="{coord(_BOTTOM)}"/><text x="{coord(x(0) + 4)}" y="{coord(_TOP - 10)}">switch</text></g>')
    for s in series:
        if s.level is not None and s.points:
            level = y(s.points[0][1])
            body.append(f'<line class="traffic-line baseline {s.cls}" x1="{coord(x(s.level[0]))}" '
                        f'x2="{coord(x(s.level[1]))}" y1="{coord(level)}" y2="{coord(level)}"/>')
        elif len(s.points) > 1:
            points = " ".join(f"{coord(x(px))},{coord(y(py))}" for px, py, _, _ in s.points)
            body.append(f'<polyline class="traffic-line {s.cls}" points="{points}"/>')
        for px, py, tip, extra in s.points:
            body.append(f'<g class="{s.mark} {s.cls}{extra}"><title>{esc(tip)}</title>'
                        f'<circle cx="{coord(x(px))}" cy="{coord(y(py))}" r="4"/></g>')
    label = f"traffic: {title}, the new release after the switch against the baseline before it"
    return svg_doc(_HEIGHT, label, body, f"traffic traffic-{name}")


def _shown(value: float, unit: str) -> str:
    return f"{value:.2f}{unit}" if unit == "%" else f"{value:.0f} {unit}"


def _release(looks: Sequence[TrafficLook], axis: _Axis, values: Sequence[float | None], unit: str, mark: str,
             cls: str = "release") -> _Series:
    series = _Series(cls, mark)
    for look, at, value in zip(looks, axis.xs, values, strict=True):
        if value is not None:
            tip = (f"{axis.label(at)}: {_shown(value, unit)}; {look.requests} requests, {look.errors} errors; "
                   f"verdict {look.verdict or '-'}")
            series.points.append((at, value, tip, f" verdict-{slug(look.verdict or 'none')}"))
    return series


def _level(baseline: TrafficBaseline, value: float | None, unit: str, cls: str = "baseline") -> _Series:
    """A baseline figure for its whole window, before the switch (x from start - switch to 0)."""
    series = _Series(cls, "baseline-point", level=(baseline.start_s - baseline.end_s, 0.0))
    if value is not None:
        middle = (baseline.start_s - baseline.end_s) / 2
        series.points.append((middle, value, f"baseline before the switch: {_shown(value, unit)}", ""))
    return series


def _baseline_errors(baseline: TrafficBaseline) -> _Series:
    buckets = [(b.at_s - baseline.end_s, share(b.errors, b.requests), b) for b in baseline.buckets]
    if not any(value is not None for _, value, _ in buckets):
        total = share(baseline.errors, baseline.requests)
        return _level(baseline, None if total is None else total * 100, "%")
    series = _Series("baseline", "baseline-point")
    for at, value, bucket in buckets:
        if value is not None:
            series.points.append((at, value * 100, f"baseline {_relative(at)}: {bucket.errors} of {bucket.requests} "
                                                   f"requests answered 5xx", ""))
    return series


def _last(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def _routes(looks: Sequence[TrafficLook]) -> list[str]:
    routes: list[str] = []
    for look in looks:
        routes += [p.route for p in look.paths if p.route not in routes]
    return routes[:PATH_SERIES]


def traffic_charts(looks: Sequence[TrafficLook], baseline: TrafficBaseline | None, compared: bool) -> str:
    """The legend and the three charts (a line instead of a chart that would have no figure of the release)."""
    axis = _axis(looks, baseline)
    drawn = baseline if compared and axis.switch else None
    x_lo = drawn.start_s - drawn.end_s if drawn is not None else min(axis.xs)
    shares = [None if look.error_share is None else look.error_share * 100 for look in looks]
    errors = [_release(looks, axis, shares, "%", "look")]
    latency = [_release(looks, axis, [look.latency_ms for look in looks], "ms", "look-latency")]
    routes = _routes(looks)
    paths = [_release(looks, axis, [next((p.ms for p in look.paths if p.route == route), None) for look in looks],
                      "ms", "path-look", f"path-{i}") for i, route in enumerate(routes)]
    if drawn is not None:
        errors.insert(0, _baseline_errors(drawn))
        latency.insert(0, _level(drawn, _last([look.baseline_latency_ms for look in looks]), "ms"))
        for i, route in enumerate(routes):
            base = _last([p.baseline_ms for look in looks for p in look.paths if p.route == route])
            paths.insert(i, _level(drawn, base, "ms", f"baseline path-{i}"))
    legend = [swatch("release", "new release")] + ([swatch("baseline", "baseline (before the switch)")]
                                                  if drawn is not None else [])
    parts = ['<div class="legend">' + "".join(legend) + "</div>"]
    for name, title, unit, series, missing in (
            ("errors", "5xx share of requests", "%", errors, "no request counts in the looks"),
            ("latency", "latency", "ms", latency, "no latency in the looks"),
            ("paths", "latency per path", "ms", paths, "no latency per path in the looks")):
        if any(s.points for s in series if s.mark != "baseline-point"):
            if name == "paths":
                parts.append('<div class="legend">' + "".join(swatch(f"path-{i}", route)
                                                              for i, route in enumerate(routes)) + "</div>")
            parts.append(_chart(name, title, unit, series, axis, x_lo))
        else:
            parts.append(f'<p class="muted no-chart">{esc(missing)}</p>')
    return "".join(parts)
