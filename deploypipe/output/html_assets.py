"""The HTML report's inline stylesheet and script, and the Content-Security-Policy that allows only those two.

The policy names the exact stylesheet and script by their SHA-256, so the page loads nothing from anywhere and no
other script or style can run in it, even if a value ever escaped the escaping. The script is optional: the page
reads the same without it (logs stay collapsed, details open one by one).
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSP", "CSS", "SCRIPT"]

CSS = """
:root { --fg: #1c2330; --muted: #5b6575; --line: #d9dee6; --band: #f4f6f9; --ok: #2e7d32; --bad: #c62828;
  --err: #6a1b9a; --warn: #e65100; --skip: #8a94a3; --info: #1565c0; --observe: #00838f; --after: #6a1b9a; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #fff; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; }
main, header > div, footer { max-width: 1240px; margin: 0 auto; padding: 0 24px; }
header { border-top: 6px solid var(--outcome, var(--info)); background: var(--band); padding: 18px 0 14px; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 16px 0 6px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 12.5px; }
pre { background: #0f1720; color: #e6edf3; padding: 10px 12px; border-radius: 6px; overflow-x: auto; margin: 6px 0;
  white-space: pre-wrap; word-break: break-all; }
.outcome { display: inline-block; padding: 2px 10px; border-radius: 999px; color: #fff; font-weight: 600;
  background: var(--outcome, var(--info)); }
body.outcome-deployed, body.outcome-rollback_verified, body.outcome-unchanged { --outcome: var(--ok); }
body.outcome-rolled_back { --outcome: var(--warn); }
body.outcome-blocked { --outcome: #b26a00; }
body.outcome-needs_human, body.outcome-rollback_failed { --outcome: var(--bad); }
.message { font-size: 15px; margin: 8px 0; }
dl.facts { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 6px 0 0; color: var(--muted); }
dl.facts div { display: flex; gap: 6px; } dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
nav { margin-top: 10px; display: flex; gap: 14px; flex-wrap: wrap; }
nav a { color: var(--info); text-decoration: none; } nav a:hover { text-decoration: underline; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; font-size: 12.5px; }
td.num { text-align: right; white-space: nowrap; }
table.figures { width: auto; min-width: 320px; }
.status { font-weight: 600; white-space: nowrap; }
.status.st-succeeded, .yes, .ok-text { color: var(--ok); } .status.st-failed, .no, .bad-text { color: var(--bad); }
.status.st-errored { color: var(--err); } .status.st-interrupted { color: var(--warn); }
.status.st-skipped, .status.st-not_run, .status.st-from_run, .muted { color: var(--skip); }
.error { color: var(--bad); } ul.warnings { margin: 4px 0; padding-left: 18px; color: var(--warn); }
.note { color: var(--muted); margin: 4px 0; }
svg.chart { width: 100%; height: auto; display: block; margin: 6px 0; font-size: 12px; }
svg.chart text { fill: var(--fg); } svg.chart .tick, svg.chart .axis-label { fill: var(--muted); font-size: 11px; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.gantt .stage-row:nth-of-type(even) .stripe { fill: var(--band); } svg.gantt .stripe { fill: transparent; }
svg.gantt .label { font-weight: 600; } svg.gantt .no-bar { fill: var(--skip); font-style: italic; }
svg.gantt .duration { fill: var(--muted); }
.bar { fill: var(--info); }
.st-succeeded .bar { fill: var(--ok); } .st-failed .bar { fill: var(--bad); } .st-errored .bar { fill: var(--err); }
.st-interrupted .bar { fill: var(--warn); } .st-from_run .bar, .st-skipped .bar { fill: var(--skip); }
.retry { fill: #ffb300; stroke: #7a5200; stroke-width: 1; }
.rollback-band { fill: #fff1e6; stroke: #ffc9a3; }
.marker line { stroke: var(--info); stroke-width: 1.5; stroke-dasharray: 4 3; }
.marker text { font-size: 11px; font-weight: 600; } .marker.bad line { stroke: var(--bad); }
.marker-rollback_started line, .marker-undone line { stroke: var(--warn); }
.marker-rollback_finished.ok line { stroke: var(--ok); }
.probe > :not(title), .probe-key > * { fill: var(--skip); stroke: #fff; stroke-width: 1; }
.phase-verify > :not(title) { fill: var(--info); } .phase-observe > :not(title) { fill: var(--observe); }
.phase-after_rollback > :not(title) { fill: var(--after); }
.fail > path.cross { stroke: var(--bad); stroke-width: 2.5; fill: none; }
.probe-line { fill: none; stroke-width: 1.2; stroke: var(--info); opacity: .55; }
.probe-line.phase-observe { stroke: var(--observe); } .probe-line.phase-after_rollback { stroke: var(--after); }
.phase-band rect { fill: var(--info); opacity: .35; } .phase-band text { fill: var(--muted); font-size: 11px; }
.phase-band.phase-observe rect { fill: var(--observe); } .phase-band.phase-after_rollback rect { fill: var(--after); }
.traffic-line { fill: none; stroke-width: 2; } .traffic-line.release { stroke: var(--info); }
.traffic-line.baseline { stroke: var(--skip); stroke-dasharray: 5 4; }
.look circle, .look-latency circle { fill: var(--info); stroke: #fff; }
.look.verdict-fail circle, .look-latency.verdict-fail circle { fill: var(--bad); }
.baseline-point circle { fill: var(--skip); stroke: #fff; } .switch line { stroke: var(--muted); }
.path-0 { --path: #1565c0; } .path-1 { --path: #ef6c00; } .path-2 { --path: #2e7d32; }
.path-3 { --path: #6a1b9a; } .path-4 { --path: #00838f; } .path-5 { --path: #ad1457; }
.traffic-line[class*="path-"] { stroke: var(--path); } .path-look circle { fill: var(--path); stroke: #fff; }
.baseline-point[class*="path-"] circle { fill: #fff; stroke: var(--path); stroke-width: 2; }
.swatch[class*="path-"] { background: var(--path); }
.panel-title { font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; color: var(--muted); font-size: 12.5px; margin: 2px 0 8px; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.legend svg { width: 14px; height: 14px; }
.swatch { display: inline-block; width: 14px; height: 10px; border-radius: 2px; background: var(--skip); }
.swatch.st-succeeded { background: var(--ok); } .swatch.st-failed { background: var(--bad); }
.swatch.st-errored { background: var(--err); } .swatch.retry { background: #ffb300; }
.swatch.rollback { background: #ffe0c7; } .swatch.baseline { background: none; border-top: 2px dashed var(--skip);
  height: 0; } .swatch.release { background: var(--info); height: 3px; }
details { border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; padding: 4px 10px; }
details > summary { cursor: pointer; font-weight: 600; }
details.outputs { border: none; padding: 0; margin: 2px 0; } details.outputs > summary { font-weight: 400;
  color: var(--muted); }
ol.steps { padding-left: 20px; } ol.steps li { margin: 6px 0; }
.tools { margin: 4px 0; } .tools button { font: inherit; padding: 2px 10px; margin-right: 6px; }
footer { color: var(--muted); font-size: 12px; margin: 32px auto 24px; }
@media (max-width: 720px) { main, header > div, footer { padding: 0 10px; } }
@media print {
  body { font-size: 11px; } nav, .tools { display: none; } header { background: none; }
  pre { background: #fff; color: #000; border: 1px solid var(--line); }
  svg.chart, table tr, ol.steps li { break-inside: avoid; } h2 { break-after: avoid; }
  .outcome { color: #000; border: 2px solid var(--outcome); background: none; }
}
"""

SCRIPT = """
(function () {
  "use strict";
  var all = document.querySelectorAll("details");
  function setAll(open) { for (var i = 0; i < all.length; i++) { all[i].open = open; } }
  var tools = document.querySelectorAll(".tools");
  for (var t = 0; t < tools.length; t++) {
    tools[t].hidden = false;
    tools[t].querySelector("[data-open]").addEventListener("click", function () { setAll(true); });
    tools[t].querySelector("[data-close]").addEventListener("click", function () { setAll(false); });
  }
  var before = [];
  window.addEventListener("beforeprint", function () {
    before = Array.prototype.map.call(all, function (d) { return d.open; });
    setAll(true);
  });
  window.addEventListener("afterprint", function () {
    Array.prototype.forEach.call(all, function (d, i) { d.open = before[i]; });
  });
  var times = document.querySelectorAll("time[datetime]");
  for (var k = 0; k < times.length; k++) {
    var when = new Date(times[k].getAttribute("datetime"));
    if (!isNaN(when.getTime())) { times[k].title = "your time: " + when.toLocaleString(); }
  }
})();
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


CSP = (f"default-src 'none'; style-src {_hash(CSS)}; script-src {_hash(SCRIPT)}; img-src data:; "
       "base-uri 'none'; form-action 'none'")
