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
import time
from typing import Any, Callable

import httpx

__all__ = ["probe", "settled"]


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
    deadline = time.monotonic() + grace_s
    last = "no answer yet"
    while time.monotonic() < deadline and not stopped():
        code = proc.poll()
        if code is not None:
            return False, _exited(code)
        try:
            if path:
                response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5.0, trust_env=False)
                if response.status_code < 400:
                    return True, {}
                last = f"GET {path} answered {response.status_code}"
            else:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True, {}
        except (httpx.HTTPError, OSError) as exc:
            last = f"{path or 'port ' + str(port)}: {type(exc).__name__}"
        time.sleep(interval_s)
    return False, {"failure": {"evicted": False, "timedOutSeconds": int(grace_s),
                               "timedOutReason": f"{path or 'the port'} did not answer 2xx/3xx ({last})"}}
