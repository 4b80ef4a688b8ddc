"""``lint``: validate a pipeline and run its static checks (``lint.*`` and ``db.lint`` stages) without deploying."""

from __future__ import annotations

from deploypipe.commands.invocation import Invocation, load
from deploypipe.commands.run import emit_report, run_pipeline
from deploypipe.engine.loader import LoadedPipeline

__all__ = ["lint_pipeline"]


def lint_pipeline(inv: Invocation) -> int:
    loaded = load(inv)
    checks = [s for s in loaded.spec.stages if s.type.startswith("lint.") or s.type == "db.lint"]
    if not checks:
        inv.out.write(f"{loaded.path}: valid; it has no lint stages\n")
        return 0
    spec = loaded.spec.model_copy(update={"stages": [s.model_copy(update={"when": "on_success"}) for s in checks],
                                          "name": loaded.spec.name + "-lint", "lock": loaded.spec.lock.model_copy(
                                              update={"key": f"{loaded.spec.lock.key or loaded.spec.name}-lint"})})
    subset = LoadedPipeline(loaded.path, spec, {s.id: loaded.params[s.id] for s in checks}, loaded.secrets,
                            loaded.source)
    return emit_report(inv, run_pipeline(inv, loaded=subset))
