"""``shell.run``: run a command with env, cwd and timeout; output goes to a log file in the run directory."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from pydantic import Field

from deploypipe.errors import StageErrored, StageFailed, TransientStageError
from deploypipe.stages.base import Compensation, Params, StageContext, StageResult

__all__ = ["ShellRun", "run_command", "tail"]

TAIL_BYTES = 4000


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a file as text (outputs keep a tail; the file keeps everything)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        return handle.read().decode("utf-8", "replace")


def run_command(
    command: str, *, cwd: Path, env: Mapping[str, str], log_path: Path, timeout_s: float | None,
    redact: Callable[[str], str] = lambda text: text,
) -> tuple[int | None, float]:
    """Run ``command`` with bash; stdout+stderr are streamed line by line, redacted, into ``log_path``.

    Returns (exit code, or None on timeout, and seconds taken). Output is never held in memory.
    """
    start = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["bash", "-c", command], cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )

    def pump() -> None:
        assert proc.stdout is not None
        with open(log_path, "a", encoding="utf-8") as out:
            for raw in iter(proc.stdout.readline, b""):
                out.write(redact(raw.decode("utf-8", "replace")))
                out.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code: int | None = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code = None
    reader.join(timeout=5)
    return code, time.monotonic() - start


class ShellRun:
    """Run a shell command; non-zero exit fails the stage."""

    type: ClassVar[str] = "shell.run"
    description: ClassVar[str] = "Run a shell command (bash -c) with env, cwd and timeout; output is captured."
    touches_production: ClassVar[bool] = False

    class Params(Params):
        command: str = Field(..., description="Command line, run with bash -c.")
        cwd: str = Field(".", description="Working directory, relative to the project directory.")
        env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
        changes_production: bool = Field(False, description="Set when the command changes production.")
        compensate_command: str | None = Field(None, description="Command that undoes this one on rollback.")
        retry_on_exit_codes: list[int] = Field(
            default_factory=list, description="Exit codes that mean 'transient, try again' (with the stage retry)."
        )

    def plan(self, params: "ShellRun.Params") -> str:
        return f"run `{params.command}` in {params.cwd}"

    def _run(self, ctx: StageContext, params: "ShellRun.Params", command: str, label: str) -> dict[str, Any]:
        cwd = (ctx.resources.project_dir / params.cwd).resolve()
        if not cwd.is_dir():
            raise StageErrored(f"working directory {cwd} does not exist", where=f"stage {ctx.stage_id}")
        log_path = ctx.run_dir / f"{ctx.stage_id}.{label}.log"
        env = {**ctx.resources.env, **params.env}
        code, seconds = run_command(command, cwd=cwd, env=env, log_path=log_path, timeout_s=ctx.timeout_s,
                                    redact=ctx.resources.redactor.text)
        output = tail(log_path)
        ctx.emit("command_finished", command=command, exit_code=code, duration_s=round(seconds, 3),
                 output_tail=output[-1500:], log=str(log_path))
        where = f"stage {ctx.stage_id}"
        last = output.strip().splitlines()[-1] if output.strip() else "(no output)"
        if code is None:
            raise StageFailed(f"`{command}` timed out after {ctx.timeout_s:g}s; last output: {last}", where=where)
        if code == 127:
            raise StageErrored(f"`{command}`: command not found (exit 127): {last}", where=where)
        if code in params.retry_on_exit_codes:
            raise TransientStageError(f"`{command}` exited {code}: {last}", where=where)
        if code != 0:
            raise StageFailed(f"`{command}` exited {code}: {last}", where=where,
                              production_changed=params.changes_production)
        return {"exit_code": code, "duration_s": round(seconds, 3), "output_tail": output, "log": str(log_path)}

    def run(self, ctx: StageContext, params: "ShellRun.Params") -> StageResult:
        outputs = self._run(ctx, params, params.command, "run")
        return StageResult(outputs=outputs, changed_production=params.changes_production,
                           summary=f"exit 0 in {outputs['duration_s']:.1f}s")

    def compensate(self, ctx: StageContext, params: "ShellRun.Params", outputs: Mapping[str, Any]) -> Compensation:
        if not params.compensate_command:
            return Compensation(action="nothing_to_undo", verified=not params.changes_production,
                                summary="no compensate_command declared")
        result = self._run(ctx, params, params.compensate_command, "compensate")
        return Compensation(action="compensate_command", verified=True, summary="compensate_command exited 0",
                            details={"command": params.compensate_command, "exit_code": result["exit_code"]})
