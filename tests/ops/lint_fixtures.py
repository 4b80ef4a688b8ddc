"""Shared inputs of the lint tests: the seed's Blueprint, its expected findings, and a way to run `lint`."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.lint import lint_command
from deploypipe.lint.blueprint import RULES

__all__ = ["LONG", "MIGRATE", "OR_TRUE", "RESOLVE", "SEED_000", "lint", "write"]

# The startCommand of seed 000 (BMAD-DEPLOY-004), "BEFORE", as its render.yaml had it.
SEED_000 = """\
services:
  - type: web
    name: sentia-backend-prod
    runtime: node
    healthCheckPath: /api/health
    autoDeploy: false
    startCommand: |
      corepack enable &&
      pnpm exec prisma migrate resolve --rolled-back 20251017171256_init || true &&
      pnpm exec prisma migrate deploy &&
      pnpm run start:render
"""

_SERVICE = "service sentia-backend-prod startCommand: "
_RESOLVE_CMD = "`pnpm exec prisma migrate resolve --rolled-back 20251017171256_init || true`"
LONG = (_SERVICE + "4 chained commands (corepack enable && pnpm exec prisma && pnpm exec prisma && pnpm run "
        "start:render); the app starts only if every step succeeds on every start and restart; instead: "
        + RULES["long-start-chain"][1])
RESOLVE = (_SERVICE + _RESOLVE_CMD + " rewrites migration state on every start and restart without checking the "
           "schema; instead: " + RULES["migrate-resolve"][1])
OR_TRUE = (_SERVICE + _RESOLVE_CMD + " hides a failure and the next step runs anyway; instead: " + RULES["or-true"][1])
MIGRATE = (_SERVICE + "`pnpm exec prisma migrate deploy` migrates on every start and restart; a failure becomes a "
           "crash loop (502) instead of a cancelled deploy; instead: " + RULES["migration-in-start-command"][1])


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def lint(project: Path, *paths: str, env: dict[str, str] | None = None, **options) -> tuple[int, str]:
    """(exit code, stdout) of `deploypipe lint PATHS` run in ``project``."""
    inv = Invocation(project_dir=project, env=env or {}, stdout=io.StringIO(), stderr=io.StringIO())
    code = lint_command(inv, list(paths), **options)
    return code, inv.out.getvalue()
