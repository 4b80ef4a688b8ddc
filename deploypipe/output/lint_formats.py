"""Print lint findings as a linter does: text lines, JSON, GitHub annotations or SARIF, then a one-line count.

- ``text``: ``path:line:col: severity [rule] message`` per finding, then ``2 errors, 1 warning in 3 files``;
- ``json``: a JSON list of findings (``rule``, ``severity``, ``message``, ``remedy``, ``path``, ``line``, ...);
- ``github``: one workflow command per finding (``::error file=...,line=...,col=...,title=[rule]::message``;
  ``::warning`` / ``::notice`` for warnings and info) so GitHub Actions annotates the diff, then the count;
- ``sarif``: SARIF 2.1.0 (see :mod:`deploypipe.output.lint_sarif`).

Paths are shown relative to ``cwd`` when they are inside it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from deploypipe.core.findings import SEVERITIES, Finding

__all__ = ["count_line", "github_line", "relative", "render"]

_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def relative(findings: Sequence[Finding], cwd: Path) -> list[Finding]:
    """The findings with their paths relative to ``cwd`` when inside it."""
    base = cwd.resolve()
    out = []
    for finding in findings:
        path = finding.path
        if path:
            try:
                path = str(Path(path).resolve().relative_to(base))
            except ValueError:
                pass
        out.append(replace(finding, path=path))
    return out


def count_line(findings: Sequence[Finding], files: int) -> str:
    """``3 errors, 1 warning in 2 files`` (``no findings in 2 files``)."""
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    names = {"error": "error", "warning": "warning", "info": "info"}
    parts = [f"{n} {names[s]}{'s' if n != 1 and s != 'info' else ''}" for s, n in counts.items() if n]
    return f"{', '.join(parts) or 'no findings'} in {files} file{'s' if files != 1 else ''}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _message(finding: Finding) -> str:
    """What ``Finding.render`` says after ``path:line:col: severity [rule] ``."""
    text = replace(finding, path="", line=None, col=None).render()
    return text.removeprefix(f"{finding.severity} [{finding.rule}] ")


def github_line(finding: Finding) -> str:
    """``::error file=render.yaml,line=9,col=7,title=[or-true]::message`` (what is unknown is left out)."""
    properties = [f"{key}={_escape_property(str(value))}" for key, value in
                  (("file", finding.path), ("line", finding.line), ("col", finding.col)) if value not in ("", None)]
    properties.append(f"title={_escape_property(f'[{finding.rule}]')}")
    return f"::{_GITHUB_LEVEL[finding.severity]} {','.join(properties)}::{_escape_data(_message(finding))}"


def render(fmt: str, findings: Sequence[Finding], files: int, *, cwd: Path) -> str:
    """The whole output of ``deploypipe lint`` in ``fmt`` (text, json, github or sarif)."""
    shown = relative(findings, cwd)
    if fmt == "json":
        return json.dumps([f.as_dict() for f in shown], indent=2) + "\n"
    if fmt == "sarif":
        from deploypipe.output.lint_sarif import sarif_log

        return json.dumps(sarif_log(shown), indent=2) + "\n"
    lines = [github_line(f) for f in shown] if fmt == "github" else [f.render() for f in shown]
    return "".join(line + "\n" for line in lines) + count_line(shown, files) + "\n"
