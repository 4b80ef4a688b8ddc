"""Lint findings as a SARIF 2.1.0 log (one run, its rules and results) for code scanning tools.

Severity maps to SARIF ``level`` (error, warning, note). A finding silenced by
an ignore comment keeps its result, with an ``inSource`` suppression whose
justification is the comment's reason. Paths are relative URIs (``%SRCROOT%``)
when the caller made them relative, else ``file://`` URIs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from deploypipe.core.findings import Finding

__all__ = ["SARIF_SCHEMA", "sarif_log"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deploypipe")
    except PackageNotFoundError:
        return "0+unknown"


def _location(finding: Finding) -> dict[str, Any]:
    path = Path(finding.path)
    artifact = ({"uri": path.as_uri()} if path.is_absolute() else
                {"uri": path.as_posix(), "uriBaseId": "%SRCROOT%"})
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if finding.line:
        physical["region"] = {"startLine": finding.line, **({"startColumn": finding.col} if finding.col else {})}
    return {"physicalLocation": physical}


def _rule(finding: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": finding.rule, "name": finding.rule,
                            "shortDescription": {"text": finding.rule.replace("-", " ")}}
    if finding.remedy:
        rule["help"] = {"text": finding.remedy}
    return rule


def _result(finding: Finding, index: int) -> dict[str, Any]:
    about = " ".join(part for part in (finding.subject, finding.field) if part)
    result: dict[str, Any] = {"ruleId": finding.rule, "ruleIndex": index, "level": _LEVEL[finding.severity],
                              "message": {"text": (f"{about}: " if about else "") + finding.message
                                          + (f"; instead: {finding.remedy}" if finding.remedy else "")}}
    if finding.path:
        result["locations"] = [_location(finding)]
    if finding.ignored_because:
        result["suppressions"] = [{"kind": "inSource", "justification": finding.ignored_because}]
    return result


def sarif_log(findings: Sequence[Finding]) -> dict[str, Any]:
    """A SARIF 2.1.0 log: the tool with one rule per rule id found, and one result per finding, in order."""
    rules: dict[str, int] = {}
    described: list[dict[str, Any]] = []
    for finding in findings:
        if finding.rule not in rules:
            rules[finding.rule] = len(described)
            described.append(_rule(finding))
    driver = {"name": "deploypipe", "version": _version(), "rules": described}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints",
                      "results": [_result(f, rules[f.rule]) for f in findings]}]}
