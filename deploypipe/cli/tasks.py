"""The invoke tasks (``invoke deploy`` in this repository): each a thin call into deploypipe.cli.actions.

invoke's own parse errors (an unknown task or option) exit 1, which a task file
cannot change; CI jobs run the ``deploypipe`` command, whose usage errors exit 2.
"""

from __future__ import annotations

from typing import Any, Callable

from invoke import Collection, Exit, task

from deploypipe.cli import actions
from deploypipe.cli.boundary import run_action

__all__ = ["TASKS", "ns"]

_PIPELINE_HELP = "Pipeline file (default: $DEPLOYPIPE_PIPELINE or pipelines/local.yaml)."
_JSON_HELP = "Print the report as JSON on stdout; logs go to stderr as JSON lines."
_VERBOSE_HELP = "Also show info log lines on the terminal (default: progress, warnings and errors)."


def _run(action: Callable[..., int], **options: Any) -> None:
    code = run_action(action, **options)
    if code:
        raise Exit(code=code)


@task(help={"pipeline": _PIPELINE_HELP, "json": _JSON_HELP,
            "wait_lock": "Seconds to wait when another deploy of the same target holds the lock (default: fail at "
                         "once).",
            "resume": "Continue the interrupted run RUN_ID from its journal (finished stages are not repeated).",
            "dry_run": "Only show what would run (same as `plan`).",
            "keep_running": "Local default only: keep the embedded database and local Render running afterwards.",
            "verbose": _VERBOSE_HELP,
            "force": "Release even when the commit is already live and no migration is pending."})
def deploy(c, pipeline=None, json=False, wait_lock=None, resume=None, dry_run=False, keep_running=False,
           verbose=False, force=False):
    """Run the pipeline: checks, backup, dry run, migrate, deploy, verify; roll back on failure."""
    _run(actions.deploy, pipeline=pipeline, json=json, wait_lock=wait_lock, resume=resume, dry_run=dry_run,
         keep_running=keep_running, verbose=verbose, force=force)


@task(help={"pipeline": _PIPELINE_HELP, "json": "Print the plan as JSON.",
            "types": "List the stage types (parameters and outputs) instead.",
            "from-revision": "Production's migration revision for the phase-order check (REV, or DATABASE=REV; "
                             "base: none applied), where the run history does not know it (CI)."})
def plan(c, pipeline=None, json=False, types=False, from_revision=None):
    """Show what each stage would do, with resolved parameters (secrets masked). Runs nothing."""
    _run(actions.plan, pipeline=pipeline, json=json, types=types, from_revision=from_revision)


@task(help={"pipeline": _PIPELINE_HELP, "run": "Show one run in full.", "limit": "How many runs to list (default 20).",
            "json": "Print JSON.", "open": "Open run RUN's report.html in the browser."})
def history(c, pipeline=None, run=None, limit=20, json=False, open=None):
    """List recent runs (newest first), show one run's report with --run, or open its report.html with --open."""
    _run(actions.history, pipeline=pipeline, run=run, limit=limit, json=json, open=open)


@task(help={"output": "Write the schema to this file instead of stdout."})
def schema(c, output=None):
    """Print the JSON Schema of the pipeline format (for editors), with each stage type's outputs."""
    _run(actions.schema, output=output)


@task(help={"pipeline": _PIPELINE_HELP, "service": "Service to roll back (target key or Render name); needed when "
            "the pipeline has several.", "to": "Deploy id to roll back to (default: the previous successful deploy).",
            "run": "Undo what run RUN_ID changed (from its journal), in reverse order.",
            "yes": "Do not ask for confirmation (required when not on a terminal).", "json": _JSON_HELP,
            "verbose": _VERBOSE_HELP, "wait_lock": "Seconds to wait for a release that holds the lock."})
def rollback(c, pipeline=None, service=None, to=None, run=None, yes=False, json=False, verbose=False,
             wait_lock=None):
    """Roll a service back to an earlier deploy, or undo a run; verify health; write a run record."""
    _run(actions.rollback, pipeline=pipeline, service=service, to=to, run=run, yes=yes, json=json, verbose=verbose,
         wait_lock=wait_lock)


@task(help={"pipeline": _PIPELINE_HELP, "json": "Print the status as JSON on stdout; logs go to stderr.",
            "failed": "Frozen when the last N deploys all failed (default 2).",
            "max_behind_commits": "Frozen when the live commit trails the branch by more commits (default: off).",
            "max_behind_hours": "Frozen when the oldest commit not live is older than this (default: off).",
            "history": "How many recent deploys to read per service (default 10).",
            "notify_env": "Watch mode: post a new problem (once) and its recovery (once) to the webhook URL in this "
                          "environment variable, e.g. NOTIFY_WEBHOOK_URL.",
            "state": "Watch mode: file keeping the last notified problem (default .deploypipe/watch/<pipeline>.json).",
            "slack": "Watch mode: post Slack's {text} instead of the JSON status."}, auto_shortflags=False)
def status(c, pipeline=None, json=False, failed=None, max_behind_commits=None, max_behind_hours=None, history=None,
           notify_env=None, state=None, slack=False):
    """What is live on each service, how far behind its branch, the last deploys; exit 1 when production is frozen."""
    _run(actions.status, pipeline=pipeline, json=json, failed=failed, max_behind_commits=max_behind_commits,
         max_behind_hours=max_behind_hours, history=history, notify_env=notify_env, state=state, slack=slack)


@task(help={"path": "A render.yaml, pipeline, .sql or Alembic .py migration, or a directory of migrations to lint "
                    "(`invoke lint render.yaml`; the pipeline: `invoke lint pipelines/local.yaml`).",
            "also": "One more path to lint (repeatable: --also a.sql --also db/).",
            "pipeline": _PIPELINE_HELP + " Linted when no path is given.",
            "format": "text (default), json, github (default when GITHUB_ACTIONS=true: annotations) or sarif.",
            "fail_on": "Exit 1 for findings at or above this severity: error (default), warning or info.",
            "json": "Same as --format json."}, iterable=["also"], positional=["path"], auto_shortflags=False)
def lint(c, path, also=None, pipeline=None, format=None, fail_on=None, json=False):
    """Lint render.yaml files, migrations and pipelines: one finding per line (`invoke lint PATH [--also PATH]`)."""
    _run(actions.lint, paths=[path, *(also or [])], pipeline=pipeline, format=format, fail_on=fail_on, json=json)


@task(help={"all": "Also remove run records and backups (.deploypipe/runs, .deploypipe/backups)."})
def clean(c, all=False):
    """Stop and remove the embedded local default (.deploypipe/local/)."""
    _run(actions.clean, all=all)


@task(help={"name": "Replay to run, or `list` to list them.", "json": "Print the run reports as JSON.",
            "keep_running": "Keep the local default running afterwards."}, positional=["name"])
def replay(c, name, json=False, keep_running=False):
    """Replay a seed incident against the local default (`replay list` lists them)."""
    _run(actions.replay, name=name, json=json, keep_running=keep_running)


@task(help={"pipeline": _PIPELINE_HELP, "database": "Database target key (needed when the pipeline has several).",
            "list": "List backups instead of taking one.", "no_verify": "Skip the verification (restore and compare).",
            "dir": f"Backups directory (default {actions.BACKUPS_DIR}).", "json": "Print JSON."})
def backup(c, pipeline=None, database=None, list=False, no_verify=False, dir=actions.BACKUPS_DIR, json=False):
    """Take a verified backup of a database now (pg_dump, 0600, sha256; restored and compared as it is written)."""
    _run(actions.backup, pipeline=pipeline, database=database, list=list, no_verify=no_verify, dir=dir, json=json)


@task(help={"backup": "Backup id (see `backup --list`).", "target": "Database target key or URL to restore into.",
            "yes_i_mean_production": "Required to restore into a production database.",
            "reason": "Why (required for production; recorded with who and when).", "pipeline": _PIPELINE_HELP,
            "dir": f"Backups directory (default {actions.BACKUPS_DIR}).", "json": "Print JSON."})
def restore(c, backup, target, yes_i_mean_production=False, reason=None, pipeline=None, dir=actions.BACKUPS_DIR,
            json=False):
    """Restore a backup into a database; production targets need --yes-i-mean-production and --reason."""
    _run(actions.restore, backup=backup, target=target, yes_i_mean_production=yes_i_mean_production, reason=reason,
         pipeline=pipeline, dir=dir, json=json)


@task(help={"port": "Port on 127.0.0.1 (default 10000).", "blueprint": "Blueprint file (default render.yaml).",
            "faults": "YAML/JSON file of fault rules.", "repo": "Git repository services build from (default .).",
            "data_dir": "Where builds, logs and state go (default .deploypipe/emulator)."})
def emulator(c, port=10000, blueprint="render.yaml", faults=None, repo=".", data_dir=".deploypipe/emulator"):
    """Run the local Render (Render's API on 127.0.0.1) until Ctrl-C; the API key is $RENDER_API_KEY."""
    _run(actions.emulator, port=int(port), blueprint=blueprint, faults=faults, repo=repo, data_dir=data_dir)


@task(help={"report": "Report JSON (what `deploy --json` printed); - reads standard input.",
            "exit_code": "deploypipe's exit code, shown when there is no report.",
            "output": "Append to this file instead of printing."}, positional=["report"])
def ci_summary(c, report, exit_code=None, output=None):
    """Render a run report (JSON) as a Markdown summary for CI ($GITHUB_STEP_SUMMARY)."""
    _run(actions.ci_summary, report=report, exit_code=None if exit_code is None else int(exit_code), output=output)


@task(help={"tool": "prisma (prisma/migrations/<name>/migration.sql) or sql (.sql files in file-name order).",
            "directory": "prisma/migrations, or the directory of .sql files.",
            "through": "The last migration to apply (default: every pending one)."}, positional=["tool", "directory"])
def apply_migrations(c, tool, directory, through=None):
    """Apply a directory's pending Prisma or SQL-file migrations to $DATABASE_URL (what db.migrate runs for them)."""
    _run(actions.apply_migrations, tool=tool, directory=directory, through=through)


TASKS = (deploy, plan, rollback, history, status, schema, lint, backup, restore, apply_migrations, replay, emulator,
         clean, ci_summary)
ns = Collection(*TASKS)
