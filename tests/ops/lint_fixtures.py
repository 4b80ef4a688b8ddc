"""Shared inputs of the lint tests: the seed's Blueprint (from helpers), its expected findings, and a way to run `lint`."""

from __future__ import annotations

import textwrap
from pathlib import Path

from helpers import SEED_000, invocation

from deploypipe.commands.lint import lint_command
from deploypipe.lint.blueprint import RULES

__all__ = ["LONG", "MIGRATE", "OR_TRUE", "RESOLVE", "SEED_000", "lint", "write"]

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
    inv = invocation(project, env=env, interactive=None)
    code = lint_command(inv, list(paths), **options)
    return code, inv.out.getvalue()
