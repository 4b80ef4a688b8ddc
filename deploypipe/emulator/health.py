"""Health checks of a new instance, as Render gates a deploy on them.

A web service with ``healthCheckPath`` is healthy at its first 2xx/3xx answer
(each request times out after 5 s); without one (or a private service) once
its port accepts connections. Probing stops unhealthy when the process exits,
the grace period ends, or ``stopped()`` says so. Workers and cron jobs listen
on nothing: ``settled`` calls them healthy if still running after a moment.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any, Callable

import httpx

from deploypipe.core.polling import poll
from deploypipe.core.probe import Probe
from deploypipe.core.probe import probe as http_probe

__all__ = ["probe", "settled"]

_HEALTHY = tuple(range(200, 400))  # Render counts 2xx and 3xx answers as healthy
_REQUEST_TIMEOUT_S = 5.0


def _exited(code: int) -> dict[str, Any]:
    return {"failure": {"evicted": False, **({"nonZeroExit": code} if code else {"earlyExit": True})}}


def settled(proc: subprocess.Popen, settle_s: float) -> tuple[bool, dict[str, Any]]:
    """(healthy, deploy_ended reason): still running after ``settle_s``."""
    try:
        proc.wait(settle_s)
    except subprocess.TimeoutExpired:
        return True, {}
    return False, _exited(proc.returncode)


def probe(proc: subprocess.Popen, port: int, path: str | None, *, grace_s: float, interval_s: float,
          stopped: Callable[[], bool]) -> tuple[bool, dict[str, Any]]:
    """(healthy, deploy_ended reason) of the instance ``proc`` listening on 127.0.0.1:``port``."""
    last = ["no answer yet"]

    def timed_out() -> dict[str, Any]:
        return {"failure": {"evicted": False, "timedOutSeconds": int(grace_s),
                            "timedOutReason": f"{path or 'the port'} did not answer 2xx/3xx ({last[0]})"}}

    spec = Probe(url=f"http://127.0.0.1:{port}{path}", expect_status=_HEALTHY, timeout_s=_REQUEST_TIMEOUT_S) \
        if path else None

    with httpx.Client(trust_env=False, follow_redirects=False) as http:

        def check() -> tuple[bool, dict[str, Any]] | None:
            if stopped():
                return False, timed_out()
            code = proc.poll()
            if code is not None:
                return False, _exited(code)
            if spec is not None:
                result = http_probe(http, spec)
                if result.ok:
                    return True, {}
                last[0] = f"GET {path} answered {result.status}" if result.status is not None \
                    else f"{path}: {result.reason.split(':', 1)[0]}"
                return None
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError as exc:
                last[0] = f"port {port}: {type(exc).__name__}"
                return None
            return True, {}

        verdict = poll(check, timeout_s=grace_s, interval_s=interval_s)
    return verdict if verdict is not None else (False, timed_out())
