"""The ``when`` language of a stage, in one place: parse, check against earlier outputs, evaluate.

    when: on_success | on_failure | always
    when: "<earlier stage id>.<output field>[.<field>...]"                       truthy test
    when: "not <earlier stage id>.<output field>"                               falsy test
    when: "<earlier stage id>.<output field> <op> <JSON literal or word>"       op: == != > < >= <=

Expressions are checked when the pipeline is loaded (the stage id must be an
earlier stage and the field one of its declared outputs) and evaluated on the
success path only, against the typed outputs of earlier stages.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import BaseModel

from deploypipe.core.lookup import lookup

__all__ = ["SPECIAL", "Condition", "check", "parse", "should_run"]

#: ``when`` values with a fixed meaning; anything else is an expression over earlier outputs.
SPECIAL = ("on_success", "on_failure", "always")

_EXPR = re.compile(
    r"^\s*(?P<not>not\s+)?(?P<stage>[a-z][a-z0-9_-]*)\.(?P<path>[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\s*"
    r"(?:(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>.+?))?\s*$"
)


@dataclass(frozen=True)
class Condition:
    """A parsed expression: ``[not] stage.path [op literal]``."""

    negate: bool
    stage: str
    path: tuple[str, ...]
    op: str | None
    literal: Any

    def holds(self, outputs: Mapping[str, Any]) -> bool:
        try:
            actual = lookup(outputs[self.stage], self.path)
        except KeyError:
            actual = None
        result = bool(actual) if self.op is None else _compare(actual, self.op, self.literal)
        return not result if self.negate else result


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip("'\"")


def parse(expr: str) -> Condition | None:
    """The condition ``expr`` states, or None when it is not an expression of this language."""
    match = _EXPR.match(expr)
    if not match:
        return None
    literal = _literal(match["value"]) if match["value"] is not None else None
    return Condition(bool(match["not"]), match["stage"], tuple(match["path"].split(".")), match["op"], literal)


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "==":
        return bool(actual == expected)
    if op == "!=":
        return bool(actual != expected)
    try:
        return bool({">": actual > expected, "<": actual < expected, ">=": actual >= expected,
                     "<=": actual <= expected}[op])
    except TypeError:
        return False


def _field_type(model: type[BaseModel], path: tuple[str, ...]) -> str | None:
    """None when ``path`` names a declared output of ``model``; else what is wrong."""
    current: Any = model
    for depth, part in enumerate(path):
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0] if len(args) == 1 else Any
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = current.model_fields
            if part not in fields:
                where = ".".join(path[:depth]) or "the stage"
                return f"{where} has no output '{part}' (outputs: {', '.join(sorted(fields)) or 'none'})"
            current = fields[part].annotation
        else:
            return None  # inside a mapping, list or any value: keys are data, not declared
    return None


def check(expr: str, earlier: Mapping[str, type[BaseModel]]) -> str | None:
    """Why ``expr`` cannot be a ``when`` after stages ``earlier`` (id -> Outputs model), or None when it can."""
    if expr in SPECIAL:
        return None
    condition = parse(expr)
    expected = ("expected on_success, on_failure, always, or '[not] <earlier stage id>.<output> "
                "[== != > < >= <= value]'")
    if condition is None:
        return f"cannot use {expr!r}; {expected}"
    if condition.stage not in earlier:
        return (f"cannot use {expr!r}: '{condition.stage}' is not an earlier stage; {expected} "
                f"(earlier stages: {', '.join(earlier) or 'none'})")
    problem = _field_type(earlier[condition.stage], condition.path)
    return f"cannot use {expr!r}: {problem}" if problem else None


def should_run(when: str, *, failed: bool, outputs: Mapping[str, Any]) -> bool:
    """Whether a stage runs now: expressions are evaluated only on the success path."""
    if when == "always":
        return True
    if when == "on_failure":
        return failed
    if failed:
        return False
    if when == "on_success":
        return True
    condition = parse(when)
    return condition is not None and condition.holds(outputs)
