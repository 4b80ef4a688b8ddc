"""One HTTP health probe and its verdict: status, response time, JSON assertions, deployed commit.

With ``commit_field`` the result carries the commit the answer reported whatever its status (``ProbeResult.commit``),
so a failed answer can be told apart: from the expected release, or from a stale instance.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Mapping

import httpx

from deploypipe.core.commits import same_commit
from deploypipe.core.lookup import lookup

__all__ = ["Probe", "ProbeResult", "probe"]


@dataclass(frozen=True)
class Probe:
    """What one request must show to count as healthy."""

    url: str
    method: str = "GET"
    body: Any = None
    expect_status: tuple[int, ...] = (200,)
    expect_json: Mapping[str, Any] | None = None
    budget_ms: float | None = None
    commit_field: str | None = None
    expect_commit: str | None = None
    timeout_s: float = 5.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    status: int | None = None
    elapsed_ms: float = 0.0
    commit: str | None = None

    @property
    def server_error(self) -> bool:
        """The answer was a 5xx (not a network error, not another unexpected status)."""
        return self.status is not None and 500 <= self.status <= 599


def _reported_commit(response: httpx.Response, field: str) -> str | None:
    try:
        reported = lookup(response.json(), field)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError):
        return None
    return reported if isinstance(reported, str) else None


def probe(http: httpx.Client, spec: Probe) -> ProbeResult:
    """Send one request and judge it; never raises for network errors (they are unhealthy results)."""
    start = time.perf_counter()
    try:
        kwargs: dict[str, Any] = {"timeout": spec.timeout_s}
        if spec.body is not None:
            kwargs["json"] = spec.body
        response = http.request(spec.method, spec.url, **kwargs)
    except httpx.HTTPError as exc:
        return ProbeResult(False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    elapsed = (time.perf_counter() - start) * 1000
    status = response.status_code
    field = spec.commit_field or "commit"
    commit = _reported_commit(response, field) if spec.commit_field or spec.expect_commit else None
    if status not in spec.expect_status:
        expected = "/".join(map(str, spec.expect_status))
        return ProbeResult(False, f"status {status}, expected {expected}", status, elapsed, commit)
    if spec.budget_ms is not None and elapsed > spec.budget_ms:
        return ProbeResult(False, f"answered in {elapsed:.0f} ms, budget {spec.budget_ms:.0f} ms", status, elapsed,
                           commit)
    if spec.expect_json or spec.expect_commit:
        try:
            document = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return ProbeResult(False, "response is not JSON", status, elapsed)
        for path, expected in (spec.expect_json or {}).items():
            try:
                actual = lookup(document, path)
            except KeyError:
                return ProbeResult(False, f"JSON has no '{path}'", status, elapsed, commit)
            if actual != expected:
                return ProbeResult(False, f"JSON {path} is {actual!r}, expected {expected!r}", status, elapsed, commit)
        if spec.expect_commit:
            try:
                reported = lookup(document, field)
            except KeyError:
                reported = None
            if not same_commit(reported, spec.expect_commit):
                return ProbeResult(
                    False, f"reports commit {reported!r}, expected {spec.expect_commit[:12]} (stale instance?)",
                    status, elapsed, commit,
                )
    return ProbeResult(True, f"status {status} in {elapsed:.0f} ms", status, elapsed, commit)
