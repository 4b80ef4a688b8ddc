"""The one explicit registry of stage types (``family.action`` -> implementing class).

Entries are import paths so that listing types, validating names and
``deploypipe --help`` do not import every stage module; the class is imported
on first use.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

__all__ = ["STAGE_TYPES", "get_stage", "known_types"]

STAGE_TYPES: dict[str, str] = {
    "shell.run": "deploypipe.stages.shell:ShellRun",
    "http.check": "deploypipe.stages.http:HttpCheck",
    "verify.health": "deploypipe.stages.http:VerifyHealth",
    "render.preflight": "deploypipe.stages.render:RenderPreflight",
    "render.deploy": "deploypipe.stages.render:RenderDeploy",
    "render.rollback": "deploypipe.stages.render:RenderRollback",
    "db.backup": "deploypipe.stages.db:DbBackup",
    "db.migration_status": "deploypipe.stages.db:DbMigrationStatus",
    "db.lint": "deploypipe.stages.db:DbLint",
    "db.dry_run": "deploypipe.stages.db:DbDryRun",
    "db.migrate": "deploypipe.stages.db:DbMigrate",
    "lint.blueprint": "deploypipe.stages.lint:LintBlueprint",
    "notify.webhook": "deploypipe.stages.notify:NotifyWebhook",
}


def known_types() -> list[str]:
    return sorted(STAGE_TYPES)


@lru_cache(maxsize=None)
def get_stage(type_name: str) -> Any:
    """The stage instance registered for ``type_name`` (KeyError if unknown)."""
    module_name, _, class_name = STAGE_TYPES[type_name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if getattr(cls, "type", None) != type_name:  # the registry and the class must agree
        raise RuntimeError(f"registry entry {type_name} points at {cls.__name__} whose type is {cls.type!r}")
    return cls()
