"""Compatibility check: does the currently-live release still start and answer its real requests on the migrated schema?

During a deploy the old release keeps serving on the new schema until the new
release is live, and stays on it if the deploy rolls back with
``on_rollback: leave``. The dry run can prove that on the staging copy: start
the live release's command with ``DATABASE_URL`` pointing at staging and a
free ``PORT`` on 127.0.0.1, poll its health path, then send it a sample of
real read requests (``paths``: GET only); a path that answers 5xx on every
attempt fails the check with the path and the release's own error line. Health alone proves little: ``/health``
rarely reads the column a migration drops.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, retry_if_result, wait_fixed

from deploypipe.core.processes import free_port, stop_group
from deploypipe.errors import StageErrored

__all__ = ["CompatRequest", "CompatResult", "app_error_line", "check_compat"]

#: an exception line of a traceback: ``psycopg.errors.UndefinedColumn: column "author" does not exist``
_EXCEPTION = re.compile(r"^(?P<name>(?:[A-Za-z_]\w*\.)*[A-Z]\w*[a-z]\w*): (?P<message>\S.*)$")

log = structlog.get_logger(__name__)


@dataclass
class CompatRequest:
    """One sampled read request sent to the live release on the migrated copy: its last status (None: no answer)
    and every attempt's."""

    path: str
    status_code: int | None
    attempts: list[int | None] = field(default_factory=list)


@dataclass
class CompatResult:
    """Outcome of one compatibility check; ``error`` says why it failed (unhealthy, or a path that answered 5xx)."""

    ok: bool
    url: str
    status_code: int | None
    body: str
    duration_s: float
    log: str
    error: str = ""
    requests: list[CompatRequest] = field(default_factory=list)
    app_error: str = ""

    @property
    def proven(self) -> bool:
        """Compatible, and proven by requests beyond health."""
        return self.ok and bool(self.requests)


def check_compat(database_url: str, *, command: str, cwd: Path, env: Mapping[str, str], log_path: Path,
                 health_path: str = "/health", paths: Sequence[str] = (), timeout_s: float = 30.0,
                 interval_s: float = 0.2,
                 unhealthy_answers: int = 3,
                 client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 redact: Callable[[str], str] = lambda text: text) -> CompatResult:
    """Start ``command`` against ``database_url``, wait (up to ``timeout_s``) for a 200 from ``health_path``, then
    GET each of ``paths``: a path that answers 5xx (or nothing) three times in a row fails the check.

    Connection errors are waited out (the release is starting); ``unhealthy_answers`` non-200 answers in a row end
    the check early as unhealthy. The release runs with this interpreter's directory first on ``PATH``, as the
    local Render runs it.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}{health_path}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = clock()
    deadline = started + timeout_s
    own_client = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0))
    out = open(log_path, "wb")
    try:
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**env, "DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1",
                                     "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")})
    except OSError as exc:
        out.close()
        raise StageErrored(f"cannot start the live release for the compatibility check: {exc}",
                           where="db.dry_run compat", hint="check compat_command and cwd") from None
    last: dict[str, Any] = {"status": None, "body": "", "error": "no answer yet", "bad_answers": 0}

    def probe() -> bool:
        """True when polling can stop: healthy, exited, or ``unhealthy_answers`` bad answers in a row."""
        if proc.poll() is not None:
            last.update(error=f"the release exited with code {proc.returncode} before answering")
            return True
        response = client.get(url)
        healthy_now = response.status_code == 200
        last.update(status=response.status_code, body=response.text[:500],
                    error="" if healthy_now else f"health answered {response.status_code}",
                    bad_answers=0 if healthy_now else last["bad_answers"] + 1)
        return healthy_now or last["bad_answers"] >= unhealthy_answers

    def give_up(state: RetryCallState) -> bool:
        return clock() >= deadline

    def transport_error(state: RetryCallState) -> None:
        if state.outcome is not None and state.outcome.failed:
            last.update(error=f"no answer: {type(state.outcome.exception()).__name__}")

    try:
        retrying = Retrying(stop=give_up, wait=wait_fixed(interval_s), sleep=sleep, before_sleep=transport_error,
                            retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(lambda ok: not ok),
                            retry_error_callback=lambda state: False)
        healthy = bool(retrying(probe)) and not last["error"]
        sent = _send(client, f"http://127.0.0.1:{port}", paths) if healthy else []
    finally:
        stop_group(proc)
        out.close()
        if own_client:
            client.close()
    output = redact(Path(log_path).read_text(encoding="utf-8", errors="replace"))
    Path(log_path).write_text(output, encoding="utf-8")  # the release's own output may name secrets
    broken = next((r for r in sent if r.status_code is None or r.status_code >= 500), None)
    app_error = app_error_line(output) if broken is not None else ""
    if not healthy:
        error = (last["error"] or "not healthy") + (
            f"; last output: {output.strip().splitlines()[-1][:300]}" if output.strip() else "")
    elif broken is not None:
        answered = f"answered {broken.status_code}" if broken.status_code else "did not answer"
        answered += f" {len(broken.attempts)} time(s) in a row"
        error = f"GET {broken.path} {answered}" + (f"; app error: {app_error}" if app_error else "")
    else:
        error = ""
    result = CompatResult(ok=healthy and broken is None, url=url, status_code=last["status"],
                          body=redact(last["body"]), duration_s=round(clock() - started, 3), log=str(log_path),
                          error=error, requests=sent, app_error=app_error)
    log.info("compat_checked", ok=result.ok, status_code=last["status"], requests=len(sent),
             duration_s=result.duration_s)
    return result


def app_error_line(output: str) -> str:
    """The release's own error: the last exception line of a traceback in its output, else its last ERROR line."""
    lines = [line.strip() for line in output.splitlines()]
    found = next((line for line in reversed(lines) if _EXCEPTION.match(line)), None)
    found = found or next((line for line in reversed(lines) if "ERROR" in line), "")
    return found[:300]


def _send(client: httpx.Client, base: str, paths: Sequence[str], attempts: int = 3) -> list[CompatRequest]:
    """GET each path (a read: nothing else writes the copy); a 5xx or no answer is asked again, up to ``attempts``
    in all: a migration that breaks a query breaks it every time, a chronically flaky path does not."""
    sent = []
    for path in dict.fromkeys(paths):
        statuses: list[int | None] = []
        while len(statuses) < attempts and (not statuses or statuses[-1] is None or statuses[-1] >= 500):
            try:
                statuses.append(client.get(base + path).status_code)
            except httpx.TransportError:
                statuses.append(None)
        sent.append(CompatRequest(path, statuses[-1], statuses))
    return sent
