"""Run the `run:` steps of a GitHub Actions job locally, the way the runner does, to test the workflows' scripts.

Not a GitHub Actions emulator: `uses:` steps are skipped (checkout, setup-python, artifacts), expressions are limited
to the ones our workflows use (``a.b.c``, ``'literal'``, ``x || y``, ``always()``), and an expression it does not
understand fails the test so the simulation can never silently diverge from the file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["JobRun", "evaluate", "load_workflow", "run_job"]

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load_workflow(path: Path) -> dict[str, Any]:
    """yaml.safe_load, with the `on` key PyYAML reads as boolean True put back under "on"."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


def _operand(text: str, context: dict[str, Any]) -> Any:
    text = text.strip()
    if re.fullmatch(r"'[^']*'", text):
        return text[1:-1]
    if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[\w-]+)+", text):
        raise ValueError(f"expression not understood by the simulation: {text!r}")
    value: Any = context
    for part in text.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def evaluate(expression: str, context: dict[str, Any]) -> str:
    """``a.b || 'x'``: the first truthy operand, as a string ('' for none)."""
    for operand in expression.split("||"):
        value = _operand(operand, context)
        if value not in (None, ""):
            return str(value)
    return ""


def _substitute(text: str, context: dict[str, Any]) -> str:
    return _EXPR.sub(lambda m: evaluate(m.group(1), context), text)


@dataclass
class JobRun:
    steps: list[tuple[str, str | int]] = field(default_factory=list)  # (name, exit code or "skipped")
    failed: bool = False
    summary: str = ""

    @property
    def exit_code(self) -> int:
        codes = [code for _, code in self.steps if isinstance(code, int) and code]
        return codes[-1] if codes else 0


def run_job(workflow: dict[str, Any], job: str, *, cwd: Path, context: dict[str, Any], skip: tuple[str, ...] = ()) -> JobRun:
    """Run ``job``'s `run:` steps in ``cwd`` with bash -eo pipefail; `if: always()` steps run after a failure."""
    spec = workflow["jobs"][job]
    context = {**context, "steps": {}}
    summary = cwd / "step-summary.md"
    summary.write_text("")
    base = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(cwd),
            "GITHUB_STEP_SUMMARY": str(summary)}
    if "XDG_RUNTIME_DIR" in os.environ:
        base["XDG_RUNTIME_DIR"] = os.environ["XDG_RUNTIME_DIR"]
    result = JobRun()
    for index, step in enumerate(spec["steps"]):
        name = step.get("name", f"step {index}")
        condition = step.get("if")
        if "uses" in step or name in skip:
            result.steps.append((name, "skipped"))
            continue
        if condition not in (None, "always()"):
            raise ValueError(f"step {name}: condition not understood by the simulation: {condition!r}")
        if result.failed and condition != "always()":
            result.steps.append((name, "skipped"))
            continue
        output = cwd / f"output-{index}.txt"
        output.write_text("")
        env = dict(base, GITHUB_OUTPUT=str(output))
        for scope in (workflow.get("env") or {}, spec.get("env") or {}, step.get("env") or {}):
            env.update({k: _substitute(str(v), context) for k, v in scope.items()})
        script = cwd / f"step-{index}.sh"
        script.write_text(_substitute(step["run"], context))
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)
        result.steps.append((name, proc.returncode))
        result.failed = result.failed or proc.returncode != 0
        if "id" in step:
            outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
            context["steps"][step["id"]] = {"outputs": outputs}
    result.summary = summary.read_text()
    return result
