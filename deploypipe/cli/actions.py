"""One function per command: options in, an Invocation built, deploypipe.commands called, an exit code out.

The installed ``deploypipe`` command (deploypipe.cli.parser) and the invoke
tasks (deploypipe.cli.tasks) both call these, so a command does the same
whichever way it is typed. Heavy imports happen inside the functions: the
parser and ``--help`` stay fast, and a plain install (without deploypipe[local])
runs every command that does not need the local Render.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.commands.invocation import Invocation

__all__ = ["BACKUPS_DIR", "backup", "ci_summary", "clean", "deploy", "emulator", "history", "lint", "plan", "replay",
           "restore", "rollback", "schema", "status"]

BACKUPS_DIR = ".deploypipe/backups"


def _invocation(**kwargs: Any) -> Invocation:
    """Options -> Invocation; logging goes to stderr from here on (stdout is for reports)."""
    from deploypipe.commands.invocation import Invocation, redactor_for, setup_logging

    inv = Invocation(**{k: v for k, v in kwargs.items() if v is not None})
    setup_logging(inv, redactor_for(inv))
    return inv


def _seconds(value: float | str | None) -> float | None:
    return None if value is None else float(value)


def deploy(*, pipeline: str | None = None, json: bool = False, wait_lock: float | str | None = None,
           resume: str | None = None, dry_run: bool = False, keep_running: bool = False, verbose: bool = False,
           force: bool = False) -> int:
    """Run the pipeline (``dry_run``: only show the plan)."""
    if dry_run:
        return _show_plan(pipeline, json)
    from deploypipe.commands.deploy import deploy as run_deploy

    inv = _invocation(pipeline=pipeline, json_output=json, keep_running=keep_running, verbose=verbose, force=force,
                      wait_lock_s=_seconds(wait_lock))
    return run_deploy(inv, resume=resume)


def plan(*, pipeline: str | None = None, json: bool = False, types: bool = False,
         from_revision: str | None = None) -> int:
    """What each stage would do, or (``types``) the stage types; ``from_revision``: production's migration revision
    for the phase-order check."""
    from deploypipe.commands.plan import show_types

    if types:
        return show_types(_invocation(pipeline=pipeline), json)
    return _show_plan(pipeline, json, from_revision)


def _show_plan(pipeline: str | None, as_json: bool, from_revision: str | None = None) -> int:
    from deploypipe.commands.local import maybe_local
    from deploypipe.commands.plan import show_plan

    inv = _invocation(pipeline=pipeline)
    with maybe_local(inv, start=False):  # the local default's variables are described, nothing starts
        return show_plan(inv, as_json, from_revision=from_revision)


def history(*, pipeline: str | None = None, run: str | None = None, limit: int | str = 20, json: bool = False,
            open: str | None = None) -> int:
    """Recent runs, one run in full, or (``open``) one run's report.html in the browser."""
    from deploypipe.commands.history import open_report, show_history

    if open:
        return open_report(_invocation(pipeline=pipeline), open)
    return show_history(_invocation(pipeline=pipeline), run=run, limit=int(limit), as_json=json)


def schema(*, output: str | None = None) -> int:
    """The JSON Schema of the pipeline format, on stdout or into ``output``."""
    import json

    from deploypipe.engine.schema import pipeline_schema

    text = json.dumps(pipeline_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def rollback(*, pipeline: str | None = None, service: str | None = None, to: str | None = None,
             run: str | None = None, yes: bool = False, json: bool = False, verbose: bool = False,
             wait_lock: float | str | None = None) -> int:
    """Roll a service back, or undo run ``run``."""
    from deploypipe.commands.local import maybe_local
    from deploypipe.commands.rollback import rollback as do_rollback
    from deploypipe.commands.run import emit_report

    inv = _invocation(pipeline=pipeline, json_output=json, verbose=verbose, wait_lock_s=_seconds(wait_lock))
    with maybe_local(inv):
        report = do_rollback(inv, service=service, to=to, run=run, yes=yes)
    return emit_report(inv, report)


def status(*, pipeline: str | None = None, json: bool = False, failed: Any = None, max_behind_commits: Any = None,
           max_behind_hours: Any = None, history: Any = None, notify_env: str | None = None, state: str | None = None,
           slack: bool = False) -> int:
    """What is live, how far behind, the last deploys; 1 when production is frozen."""
    from deploypipe.commands.local import maybe_local
    from deploypipe.commands.status import Thresholds, show_status

    limits = Thresholds.parse(failed, max_behind_commits, max_behind_hours, history)
    inv = _invocation(pipeline=pipeline, json_output=json)
    with maybe_local(inv):
        return show_status(inv, limits, as_json=json, notify_env=notify_env, state=state, slack=slack)


def lint(*, paths: Sequence[str] = (), pipeline: str | None = None, format: str | None = None,
         fail_on: str | None = None, json: bool = False) -> int:
    """Lint ``paths`` (none: the pipeline)."""
    from deploypipe.commands.lint import lint_command
    from deploypipe.errors import UsageError

    if "-" in paths:
        raise UsageError("- (standard input): lint reads files; what a file is and where its migrations are come "
                         "from its name and place", where="lint", hint="pass the file's path")
    fmt = format or ("json" if json else None)
    inv = _invocation(pipeline=pipeline, json_output=fmt in ("json", "sarif"))
    return lint_command(inv, list(paths), fmt=fmt, fail_on=fail_on)


def clean(*, all: bool = False) -> int:
    """Stop and remove the local default (``all``: run records and backups too)."""
    from deploypipe.commands.local import local_extra

    with local_extra("clean"):
        from deploypipe.commands.clean import clean as clean_local
    return clean_local(_invocation(), everything=all)


def replay(*, name: str | None = None, json: bool = False, keep_running: bool = False) -> int:
    """Replay incident ``name`` against the local default; no name (or ``list``) lists them."""
    from deploypipe.commands.local import local_extra

    with local_extra("replay"):
        from deploypipe.commands.replay import list_replays
        from deploypipe.commands.replay import replay as run_replay
    if name in (None, "list"):
        return list_replays(_invocation())
    inv = _invocation(pipeline="pipelines/local.yaml", json_output=json, keep_running=keep_running)
    return run_replay(inv, name, as_json=json)


def backup(*, pipeline: str | None = None, database: str | None = None, list: bool = False, no_verify: bool = False,
           dir: str = BACKUPS_DIR, json: bool = False) -> int:
    """A verified backup now, or (``list``) the backups."""
    from deploypipe.commands.backup import backup as take_backup
    from deploypipe.commands.backup import list_backups

    inv = _invocation(pipeline=pipeline)
    if list:
        return list_backups(inv, directory=dir, as_json=json)
    return take_backup(inv, database=database, directory=dir, verify=not no_verify, as_json=json)


def restore(*, backup: str, target: str, yes_i_mean_production: bool = False, reason: str | None = None,
            pipeline: str | None = None, dir: str = BACKUPS_DIR, json: bool = False) -> int:
    """Restore backup ``backup`` into ``target``."""
    from deploypipe.commands.backup import restore as do_restore

    return do_restore(_invocation(pipeline=pipeline), backup_id=backup, target=target,
                      yes_i_mean_production=yes_i_mean_production, reason=reason, directory=dir, as_json=json)


def emulator(*, port: int = 10000, blueprint: str = "render.yaml", repo: str = ".",
             data_dir: str = ".deploypipe/emulator", faults: str | None = None, database: Sequence[str] = (),
             api_key: str | None = None, health_grace_s: float = 30.0, health_interval_s: float = 0.25,
             auto_deploy_poll_s: float = 1.0, ingest_delay_s: float = 0.0, recovery_min_age_s: float = 600.0,
             recovery_window_days: float = 7.0, recovery_creating_s: float = 2.0) -> int:
    """Serve the local Render on 127.0.0.1 until SIGINT/SIGTERM.

    The API key comes from ``api_key``, else ``DEPLOYPIPE_EMULATOR_API_KEY``, else ``RENDER_API_KEY``, else
    ``rnd_test_key`` (prefer the environment: a command line is visible to every user of the machine).
    """
    from deploypipe.commands.local import local_extra
    from deploypipe.errors import UsageError

    bad = [item for item in database if "=" not in item]
    if bad:
        raise UsageError(f"--database expects NAME=URL, got {bad[0].split(':', 1)[0]}...", where="emulator")
    with local_extra("emulator"):
        from deploypipe.emulator.server import serve
    key = api_key or os.environ.get("DEPLOYPIPE_EMULATOR_API_KEY") or os.environ.get("RENDER_API_KEY") or "rnd_test_key"
    return serve(port=port, blueprint=Path(blueprint), repo=Path(repo), data_dir=Path(data_dir), api_key=key,
                 faults=Path(faults) if faults else None, databases=dict(item.split("=", 1) for item in database),
                 health_grace_s=health_grace_s, health_interval_s=health_interval_s,
                 auto_deploy_poll_s=auto_deploy_poll_s, ingest_delay_s=ingest_delay_s,
                 recovery_min_age_s=recovery_min_age_s, recovery_window_days=recovery_window_days,
                 recovery_creating_s=recovery_creating_s)


def apply_migrations(*, tool: Literal["prisma", "sql"], directory: str, through: str | None = None) -> int:
    """Apply a directory's pending Prisma or SQL migrations to ``$DATABASE_URL`` (``db.migrate``'s own command)."""
    from deploypipe.db.apply import apply_migrations as apply
    from deploypipe.errors import UsageError

    if tool not in ("prisma", "sql"):
        raise UsageError(f"tool {tool!r} is not prisma or sql", where="apply-migrations",
                         hint="prisma: prisma/migrations/<name>/migration.sql; sql: a directory of .sql files")
    return apply(tool, Path(directory), through)


def ci_summary(*, report: str, exit_code: int | None = None, output: str | None = None) -> int:
    """The Markdown summary of run report ``report`` (``-``: standard input), printed or appended to ``output``."""
    from deploypipe.output.ci_summary import summarize

    return summarize(report, exit_code=exit_code, output=Path(output) if output else None)
