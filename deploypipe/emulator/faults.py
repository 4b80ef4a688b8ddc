"""Fault injection for the local Render: make it fail the ways Render fails.

Rules match ``METHOD /path-glob`` (paths without the ``/v1`` prefix, e.g.
``POST /services/*/deploys``) for the next ``times`` requests:

- ``status``: answer ``status`` (429 carries ``Retry-After: retry_after_s``) with Render's ``{id, message}`` body;
- ``latency``: wait ``latency_s`` before answering normally;
- ``drop``: close without an answer (in-process: the client sees a transport error; over loopback uvicorn can only
  close after a 500, so use ``accept_then_timeout`` for a transport-level failure there);
- ``accept_then_timeout``: do the work (e.g. create the deploy), then never answer in time — the case that tempts
  clients into triggering twice;
- ``queued``: answer a trigger with 202 and no body.

``fail_deploy`` (not request-matched) makes the next deploy of a service fail at ``build``, ``pre_deploy`` or
``update``. Rules come from a YAML/JSON file (``--faults``), ``POST /_emulator/faults`` or ``Faults.add``.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FaultRule", "Faults", "load_faults"]

Action = Literal["status", "latency", "drop", "accept_then_timeout", "queued", "fail_deploy"]


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    match: str = Field("* *", description="'METHOD /path/glob', e.g. 'POST /services/*/deploys'.")
    times: int = Field(1, ge=1, description="How many matching requests the rule affects.")
    status: int = 500
    retry_after_s: float | None = None
    latency_s: float = 0.0
    service: str | None = Field(None, description="fail_deploy: service name or id.")
    phase: Literal["build", "pre_deploy", "update"] | None = None

    def matches(self, method: str, path: str) -> bool:
        want_method, _, want_path = self.match.partition(" ")
        return want_method in ("*", method) and fnmatch.fnmatchcase(path, want_path or "*")


@dataclass
class Faults:
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, **kwargs: Any) -> FaultRule:
        rule = FaultRule.model_validate(kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule matching this request, consuming one of its ``times``."""
        with self._lock:
            for rule in self.rules:
                if rule.action != "fail_deploy" and rule.matches(method, path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
                    return rule
        return None


def load_faults(path: Path | str) -> list[dict[str, Any]]:
    """Rules from a YAML or JSON file: a list of rule mappings (or ``{faults: [...]}``)."""
    from deploypipe.errors import SpecError
    from deploypipe.yamlio import load_yaml

    data = load_yaml(path).data
    if isinstance(data, dict):
        data = data.get("faults")
    if not isinstance(data, list):
        raise SpecError("expected a list of fault rules (or a mapping with 'faults')", where=str(path))
    return data
