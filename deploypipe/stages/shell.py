"""``shell.run``: run a command with env, cwd and timeout; output goes to a log file in the run directory."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from deploypipe.core.processes import run_command, tail
from deploypipe.errors import StageErrored, StageFailed, TransientStageError
from deploypipe.stages.base import Compensation, StageResult
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.context import StageContext

__all__ = ["ShellRun"]


class ShellRun:
    """Run a shell command; non-zero exit fails the stage."""

    type: ClassVar[str] = "shell.run"
    description: ClassVar[str] = "Run a shell command (bash -c) with env, cwd and timeout; output is captured."
    touches_production: ClassVar[bool] = False

    class Params(BaseParams):
        command: str = Field(..., description="Command line, run with bash -c.")
        cwd: str = Field(".", description="Working directory, relative to the project directory.")
        env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
        changes_production: bool = Field(False, description="Set when the command changes production.")
        compensate_command: str | None = Field(None, description="Command that undoes this one on rollback.")
        retry_on_exit_codes: list[int] = Field(
            default_factory=list, description="Exit codes that mean 'transient, try again' (with the stage retry)."
        )

    class Outputs(BaseOutputs):
        exit_code: int
        duration_s: float
        output_tail: str = Field("", description="The last 4000 bytes of the output.")
        log: str = Field("", description="The file holding the whole output.")

    def plan(self, params: ShellRun.Params) -> str:
        return f"run `{params.command}` in {params.cwd}"

    def _run(self, ctx: StageContext, params: ShellRun.Params, command: str, label: str) -> ShellRun.Outputs:
        cwd = (ctx.resources.project_dir / params.cwd).resolve()
        if not cwd.is_dir():
            raise StageErrored(f"working directory {cwd} does not exist", where=ctx.where)
        log_path = ctx.run_dir / f"{ctx.stage_id}.{label}.log"
        env = {**ctx.resources.env, **params.env}
        code, seconds = run_command(command, cwd=cwd, env=env, log_path=log_path, timeout_s=ctx.timeout_s,
                                    redact=ctx.resources.redactor.text)
        output = tail(log_path)
        ctx.emit("command_finished", command=command, exit_code=code, duration_s=round(seconds, 3),
                 output_tail=output[-1500:], log=str(log_path))
        last = output.strip().splitlines()[-1] if output.strip() else "(no output)"
        if code is None:
            raise StageFailed(f"`{command}` timed out after {ctx.timeout_s:g}s; last output: {last}", where=ctx.where)
        if code == 127:
            raise StageErrored(f"`{command}`: command not found (exit 127): {last}", where=ctx.where)
        if code in params.retry_on_exit_codes:
            raise TransientStageError(f"`{command}` exited {code}: {last}", where=ctx.where)
        if code != 0:
            failed = self.Outputs(exit_code=code, duration_s=round(seconds, 3), output_tail=output, log=str(log_path))
            raise StageFailed(f"`{command}` exited {code}: {last}", where=ctx.where,
                              production_changed=params.changes_production, outputs=failed)
        return self.Outputs(exit_code=code, duration_s=round(seconds, 3), output_tail=output, log=str(log_path))

    def run(self, ctx: StageContext, params: ShellRun.Params) -> StageResult[ShellRun.Outputs]:
        outputs = self._run(ctx, params, params.command, "run")
        return StageResult(outputs=outputs, changed_production=params.changes_production,
                           summary=f"exit 0 in {outputs.duration_s:.1f}s")

    def compensate(self, ctx: StageContext, params: ShellRun.Params, outputs: ShellRun.Outputs) -> Compensation:
        if not params.compensate_command:
            return Compensation(action="nothing_to_undo", verified=not params.changes_production,
                                summary="no compensate_command declared")
        result = self._run(ctx, params, params.compensate_command, "compensate")
        return Compensation(action="compensate_command", verified=True, summary="compensate_command exited 0",
                            details={"command": params.compensate_command, "exit_code": result.exit_code})
