"""Fault injection for the local Render: make it fail the ways Render fails.

Rules match ``METHOD /path-glob`` (paths without the ``/v1`` prefix, e.g.
``POST /services/*/deploys``; ``*`` matches across ``/``) for the next ``times``
matching requests, first rule first:

- ``status``: answer ``status`` with Render's ``{id, message}`` body at once (a 429 carries
  ``Retry-After: retry_after_s`` when that is set; leave it unset to test a 429 without the header);
- ``latency``: wait ``latency_s`` (real seconds) before handling the request normally;
- ``drop``: close the connection without an answer and without doing anything (over loopback the TCP
  connection is aborted; in-process the client gets ``httpx.RemoteProtocolError``);
- ``accept_then_timeout``: do the work (e.g. create the deploy), then hold the answer ``latency_s`` seconds
  (default 120) and close the connection without it (in-process: ``httpx.ReadTimeout`` at once) -- the case that
  tempts clients into triggering twice;
- ``accept_then_status``: do the work, then answer ``status`` (a 5xx by default 500) with Render's error body
  instead of the real answer -- a deploy trigger (``POST /services/*/deploys``) or rollback
  (``POST /services/*/rollback``) has created its deploy, yet the client sees a failure it may retry;
- ``accept_then_drop``: do the work, then close the connection without an answer (over loopback the TCP
  connection is aborted; in-process ``httpx.RemoteProtocolError``) -- the same temptation, without a status;
- ``queued``: answer a 201 trigger with 202 and no body (Render's "Queued").

``fail_deploy`` (not request-matched; see ``app.apply_fault``) makes the next deploy of ``service`` (name or id)
fail at ``phase`` ``build``, ``pre_deploy`` or ``update``; ``fail_recovery`` makes the next point-in-time recovery
of ``postgres`` (name or id) end ``recovery_failed`` (the POST still answers 200 with the new database).
Rules come from a YAML/JSON file (``--faults``; a list or ``{faults: [...]}``), ``POST /_emulator/faults`` (a rule
or a list; ``DELETE`` clears) or ``Faults.add(**rule)``.
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

Action = Literal["status", "latency", "drop", "accept_then_timeout", "accept_then_status", "accept_then_drop", "queued",
                 "fail_deploy", "fail_recovery"]
_NOT_MATCHED = ("fail_deploy", "fail_recovery")  # applied to a service or database, never to a request


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    match: str = Field("* *", description="'METHOD /path/glob', e.g. 'POST /services/*/deploys'.")
    times: int = Field(1, ge=1, description="How many matching requests the rule affects.")
    status: int = Field(500, ge=400, le=599, description="status, accept_then_status: the error status to answer.")
    retry_after_s: float | None = None
    latency_s: float = 0.0
    service: str | None = Field(None, description="fail_deploy: service name or id.")
    postgres: str | None = Field(None, description="fail_recovery: Postgres name or id.")
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
                if rule.action not in _NOT_MATCHED and rule.matches(method, path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
                    return rule
        return None


def load_faults(path: Path | str) -> list[dict[str, Any]]:
    """Rules from a YAML or JSON file: a list of rule mappings (or ``{faults: [...]}``)."""
    from deploypipe.core.yamlio import load_yaml
    from deploypipe.errors import SpecError

    data = load_yaml(path).data
    if isinstance(data, dict):
        data = data.get("faults")
    if not isinstance(data, list):
        raise SpecError("expected a list of fault rules (or a mapping with 'faults')", where=str(path))
    return data
