"""Evaluate a stage's ``when`` against the run state (on_success, on_failure, always, or an expression)."""

from __future__ import annotations

import json
from typing import Any, Mapping

from deploypipe.spec.loader import parse_when
from deploypipe.stages.health import json_path

__all__ = ["should_run"]


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip("'\"")


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "==":
        return actual == expected
    if op == "!=":
        return actual != expected
    try:
        return {">": actual > expected, "<": actual < expected, ">=": actual >= expected, "<=": actual <= expected}[op]
    except TypeError:
        return False


def should_run(when: str, *, failed: bool, outputs: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a stage runs: expressions are evaluated only on the success path."""
    if when == "always":
        return True
    if when == "on_failure":
        return failed
    if failed:
        return False
    if when == "on_success":
        return True
    parsed = parse_when(when)
    if parsed is None:  # rejected at load time; be strict anyway
        return False
    negate, ref, op, literal = parsed
    stage_id, _, path = ref.partition(".")
    try:
        actual = json_path(outputs.get(stage_id, {}), path)
    except KeyError:
        actual = None
    result = bool(actual) if op is None else _compare(actual, op, _literal(literal or ""))
    return not result if negate else result
