"""``lint.blueprint``: check render.yaml for the start-up patterns behind the seed outages before deploying.

See :mod:`deploypipe.lint.blueprint` for the rules. The stage fails (the run is
blocked, nothing changed) when a finding is at or above ``fail_on``; findings
below it are reported as warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from deploypipe.core.findings import Finding, at_least, summarize
from deploypipe.errors import SpecError, StageErrored, StageFailed
from deploypipe.lint.blueprint import lint_blueprint, service_names
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.base import StageResult
from deploypipe.stages.context import StageContext

__all__ = ["LintBlueprint"]


class LintBlueprint:
    """Lint the Render Blueprint; block the run on findings at or above ``fail_on``."""

    type: ClassVar[str] = "lint.blueprint"
    description: ClassVar[str] = (
        "Lint render.yaml: `|| true`, `migrate resolve`, migrations or long chains in startCommand, web services "
        "without healthCheckPath, auto-deploy left on for services the pipeline deploys."
    )
    touches_production: ClassVar[bool] = False

    class Params(BaseParams):
        path: str = Field("render.yaml", description="Blueprint file, relative to the project directory.")
        fail_on: Literal["error", "warning"] = Field(
            "error", description="Lowest severity that fails the stage; lower findings are warnings."
        )
        services: list[str] | None = Field(
            None, description="Render service names the pipeline deploys (checked for auto-deploy); default: the "
                              "names of the pipeline's service targets."
        )

    class Outputs(BaseOutputs):
        path: str
        findings: list[Finding] = Field(default_factory=list)

    def plan(self, params: LintBlueprint.Params) -> str:
        who = ", ".join(params.services) if params.services is not None else "the pipeline's service targets"
        return f"lint {params.path} (fail on {params.fail_on}s; auto-deploy checked for {who})"

    def _deployed(self, ctx: StageContext, params: LintBlueprint.Params) -> tuple[set[str] | None, list[str]]:
        if params.services is not None:
            return set(params.services), []
        services = ctx.resources.targets.services
        if not services:
            return None, []
        unnamed = [f"service target {key} has only an id, so its auto-deploy setting is not checked; give it a name"
                   for key, target in services.items() if not target.name]
        return {t.name for t in services.values() if t.name}, unnamed

    def run(self, ctx: StageContext, params: LintBlueprint.Params) -> StageResult[LintBlueprint.Outputs]:
        path = Path(ctx.resources.project_dir) / params.path
        if not path.is_file():
            raise StageErrored(f"{params.path} not found in {ctx.resources.project_dir}", where=ctx.where,
                               hint="set `with: {path: <your render.yaml>}` or remove the lint.blueprint stage")
        deployed, warnings = self._deployed(ctx, params)
        try:
            findings = lint_blueprint(path, deployed_services=deployed)
        except SpecError as exc:
            raise StageFailed(f"{exc.render()}", where=ctx.where) from None
        names = service_names(path)
        if deployed is not None:
            warnings += [f"service {name} is deployed by the pipeline but not described in {params.path}, so it was "
                         "not linted" for name in sorted(deployed - names)]
        for finding in findings:
            ctx.emit("blueprint_finding", **finding.as_dict())
        blocking = at_least(findings, params.fail_on)
        summary = f"{params.path}: {summarize(findings)}"
        if blocking:
            ctx.log.warning("blueprint_lint_failed", path=params.path, findings=len(findings), blocking=len(blocking))
            raise StageFailed(f"{summary} (fail_on: {params.fail_on}): " + " | ".join(f.render() for f in blocking),
                              where=ctx.where)
        ctx.log.info("blueprint_linted", path=params.path, findings=len(findings))
        outputs = self.Outputs(path=params.path, findings=findings)
        return StageResult(outputs=outputs, summary=summary,
                           warnings=tuple(warnings) + tuple(f.render() for f in findings))
