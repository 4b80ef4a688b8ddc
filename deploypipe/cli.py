"""The command line: invoke tasks (``invoke deploy`` here, ``deploypipe deploy`` anywhere).

Tasks are thin: parse options, build an Invocation, call deploypipe.commands,
map errors to exit codes. Heavy imports happen inside the tasks so ``--help``
and ``--list`` stay fast.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from invoke import Collection, Exit, Program, task

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.commands.invocation import Invocation

__all__ = ["main", "ns"]

_PIPELINE_HELP = "Pipeline file (default: $DEPLOYPIPE_PIPELINE or pipelines/local.yaml)."
_JSON_HELP = "Print the report as JSON on stdout; logs go to stderr as JSON lines."
_VERBOSE_HELP = "Also show info log lines on the terminal (default: progress, warnings and errors)."
_BACKUPS_DIR = ".deploypipe/backups"


def _boundary(func: Callable[..., int | None]) -> Callable[..., None]:
    """One error boundary: DeployPipeError -> one line + its exit code; never a traceback for bad input."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        import signal

        from deploypipe.errors import DeployPipeError

        def terminated(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, terminated)  # a cancelled CI job is recorded and rolled back like Ctrl-C
        try:
            code = func(*args, **kwargs) or 0
        except DeployPipeError as exc:
            from deploypipe.commands.invocation import fail_line

            code = fail_line(exc)
        except KeyboardInterrupt:
            sys.stderr.write("deploypipe: interrupted before any stage ran\n")
            code = 1
        except Exception as exc:  # a bug or an unexpected environment: one line, the traceback on request
            if os.environ.get("DEPLOYPIPE_DEBUG"):
                raise
            from deploypipe.core.redact import Redactor

            redactor = Redactor()
            redactor.add_from_env(os.environ)
            sys.stderr.write(redactor.text(f"deploypipe: unexpected error: {type(exc).__name__}: {exc}; hint: this is "
                                           "likely a bug; DEPLOYPIPE_DEBUG=1 shows the traceback. Any run record "
                                           "in .deploypipe/runs/ says what the run did\n"))
            code = 1
        if code:
            raise Exit(code=code)

    return wrapper


def _invocation(**kwargs: Any) -> Invocation:
    """Options -> Invocation; logging goes to stderr from here on (stdout is for reports)."""
    from deploypipe.commands.invocation import Invocation, redactor_for, setup_logging

    inv = Invocation(**{k: v for k, v in kwargs.items() if v is not None})
    setup_logging(inv, redactor_for(inv))
    return inv


@task(help={"pipeline": _PIPELINE_HELP, "json": _JSON_HELP,
            "wait_lock": "Seconds to wait when another deploy of the same target holds the lock (default: fail at "
                         "once).",
            "resume": "Continue the interrupted run RUN_ID from its journal (finished stages are not repeated).",
            "dry_run": "Only show what would run (same as `plan`).",
            "keep_running": "Local default only: keep the embedded database and local Render running afterwards.",
            "verbose": _VERBOSE_HELP,
            "force": "Release even when the commit is already live and no migration is pending."})
@_boundary
def deploy(c, pipeline=None, json=False, wait_lock=None, resume=None, dry_run=False, keep_running=False,
           verbose=False, force=False):
    """Run the pipeline: checks, backup, dry run, migrate, deploy, verify; roll back on failure."""
    if dry_run:
        return _show_plan(pipeline, json)
    from deploypipe.commands.deploy import deploy as run_deploy

    inv = _invocation(pipeline=pipeline, json_output=json, keep_running=keep_running, verbose=verbose, force=force,
                      wait_lock_s=None if wait_lock is None else float(wait_lock))
    return run_deploy(inv, resume=resume)


@task(help={"pipeline": _PIPELINE_HELP, "json": "Print the plan as JSON.",
            "types": "List the stage types (parameters and outputs) instead."})
@_boundary
def plan(c, pipeline=None, json=False, types=False):
    """Show what each stage would do, with resolved parameters (secrets masked). Runs nothing."""
    from deploypipe.commands.plan import show_types

    return show_types(_invocation(pipeline=pipeline), json) if types else _show_plan(pipeline, json)


def _show_plan(pipeline: str | None, as_json: bool) -> int:
    from deploypipe.commands.plan import show_plan
    from deploypipe.local.session import maybe_local

    inv = _invocation(pipeline=pipeline)
    with maybe_local(inv, start=False):  # the local default's variables are described, nothing starts
        return show_plan(inv, as_json)


@task(help={"pipeline": _PIPELINE_HELP, "run": "Show one run in full.", "limit": "How many runs to list (default 20).",
            "json": "Print JSON.", "open": "Open run RUN's report.html in the browser."})
@_boundary
def history(c, pipeline=None, run=None, limit=20, json=False, open=None):
    """List recent runs (newest first), show one run's report with --run, or open its report.html with --open."""
    from deploypipe.commands.history import open_report, show_history

    if open:
        return open_report(_invocation(pipeline=pipeline), open)
    return show_history(_invocation(pipeline=pipeline), run=run, limit=int(limit), as_json=json)


@task(help={"output": "Write the schema to this file instead of stdout."})
@_boundary
def schema(c, output=None):
    """Print the JSON Schema of the pipeline format (for editors), with each stage type's outputs."""
    import json

    from deploypipe.engine.schema import pipeline_schema

    text = json.dumps(pipeline_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


_STATIC_CHECKS = (
    ("ruff", "-m ruff check --quiet ."),
    ("mypy", "-m mypy"),
    ("lint-imports", "-c 'from importlinter.cli import lint_imports_command as main; raise SystemExit(main())'"),
)


@task(help={"args": "Extra arguments for pytest, e.g. '-k lint -x'.",
            "static": "Run ruff, mypy and lint-imports first (default); --no-static skips them.",
            "workers": "pytest worker processes (default: one per core, up to 4; 1 runs in this process)."})
def test(c, args="", static=True, workers=None):
    """Run ruff, mypy and lint-imports (the layer contracts), then the test suite with pytest.

    Every check runs even when an earlier one failed; the task exits with the first failure's code. pytest's
    'no tests collected' (exit 5) counts as a failure. Test files run in parallel worker processes (pytest-xdist),
    one per core up to 4. The report's browser test needs Debian's chromium: when it is
    missing and this runs as root (CI), it is installed first (apt-get install -y chromium); elsewhere that test
    fails saying how to install it.
    """
    failed: list[tuple[str, int]] = []
    for name, command in _STATIC_CHECKS if static else ():
        result = c.run(f"{sys.executable} {command}", warn=True, pty=False)
        if result is None or result.exited:
            failed.append((name, result.exited if result else 1))
    _browser_for_tests(c)
    count = int(workers) if workers else max(1, min(4, os.cpu_count() or 1))
    parallel = f"-n {count} --dist loadfile " if count > 1 else ""  # a test file's tests share one worker
    result = c.run(f"{sys.executable} -m pytest {parallel}{args}", warn=True, pty=False)
    code = result.exited if result else 1
    if code == 5:
        sys.stderr.write("deploypipe: pytest collected no tests\n")
    if code:
        failed.append(("pytest", code))
    if failed:
        names = ", ".join(f"{name} (exit {status})" for name, status in failed)
        sys.stderr.write(f"deploypipe: failed: {names}\n")
        raise Exit(code=failed[0][1])


@task(help={"pipeline": _PIPELINE_HELP, "service": "Service to roll back (target key or Render name); needed when "
            "the pipeline has several.", "to": "Deploy id to roll back to (default: the previous successful deploy).",
            "run": "Undo what run RUN_ID changed (from its journal), in reverse order.",
            "yes": "Do not ask for confirmation (required when not on a terminal).", "json": _JSON_HELP,
            "verbose": _VERBOSE_HELP, "wait_lock": "Seconds to wait for a release that holds the lock."})
@_boundary
def rollback(c, pipeline=None, service=None, to=None, run=None, yes=False, json=False, verbose=False,
             wait_lock=None):
    """Roll a service back to an earlier deploy, or undo a run; verify health; write a run record."""
    from deploypipe.commands.rollback import rollback as do_rollback
    from deploypipe.commands.run import emit_report
    from deploypipe.local.session import maybe_local

    inv = _invocation(pipeline=pipeline, json_output=json, verbose=verbose,
                      wait_lock_s=None if wait_lock is None else float(wait_lock))
    with maybe_local(inv):
        report = do_rollback(inv, service=service, to=to, run=run, yes=yes)
    return emit_report(inv, report)


@task(help={"pipeline": _PIPELINE_HELP, "json": "Print the status as JSON on stdout; logs go to stderr.",
            "failed": "Frozen when the last N deploys all failed (default 2).",
            "max_behind_commits": "Frozen when the live commit trails the branch by more commits (default: off).",
            "max_behind_hours": "Frozen when the oldest commit not live is older than this (default: off).",
            "history": "How many recent deploys to read per service (default 10).",
            "notify_env": "Watch mode: post a new problem (once) and its recovery (once) to the webhook URL in this "
                          "environment variable, e.g. NOTIFY_WEBHOOK_URL.",
            "state": "Watch mode: file keeping the last notified problem (default .deploypipe/watch/<pipeline>.json).",
            "slack": "Watch mode: post Slack's {text} instead of the JSON status."}, auto_shortflags=False)
@_boundary
def status(c, pipeline=None, json=False, failed=None, max_behind_commits=None, max_behind_hours=None, history=None,
           notify_env=None, state=None, slack=False):
    """What is live on each service, how far behind its branch, the last deploys; exit 1 when production is frozen."""
    from deploypipe.commands.status import Thresholds, show_status
    from deploypipe.local.session import maybe_local

    limits = Thresholds.parse(failed, max_behind_commits, max_behind_hours, history)
    inv = _invocation(pipeline=pipeline, json_output=json)
    with maybe_local(inv):
        return show_status(inv, limits, as_json=json, notify_env=notify_env, state=state, slack=slack)


_LINT_OPTIONS = {"--format": "format", "-f": "format", "--fail-on": "fail_on", "--pipeline": "pipeline",
                 "-p": "pipeline"}


def _lint_remainder(remainder: str) -> tuple[list[str], dict[str, str]]:
    """Paths and options given after ``--`` (``deploypipe lint -- render.yaml --format github``)."""
    import shlex

    from deploypipe.errors import UsageError

    paths: list[str] = []
    options: dict[str, str] = {}
    tokens = shlex.split(remainder or "")
    while tokens:
        token = tokens.pop(0)
        name, _, value = token.partition("=")
        if name in _LINT_OPTIONS or name == "--path":
            if not value and not tokens:
                raise UsageError(f"{name} needs a value", where="lint")
            if name == "--path":
                paths.append(value or tokens.pop(0))
            else:
                options[_LINT_OPTIONS[name]] = value or tokens.pop(0)
        elif token == "--json":
            options["format"] = "json"
        elif token.startswith("-"):
            raise UsageError(f"unknown option {token}", where="lint",
                             hint="options: --format text|json|github|sarif, --fail-on error|warning|info")
        else:
            paths.append(token)
    return paths, options


@task(help={"path": "A render.yaml, pipeline, .sql or Alembic .py migration, or a directory of migrations to lint "
                    "(repeatable; paths after `--` count too). Default: the pipeline.",
            "pipeline": _PIPELINE_HELP + " Linted when no path is given.",
            "format": "text (default), json, github (default when GITHUB_ACTIONS=true: annotations) or sarif.",
            "fail_on": "Exit 1 for findings at or above this severity: error (default), warning or info.",
            "json": "Same as --format json."}, iterable=["path"], auto_shortflags=False)
@_boundary
def lint(c, path=None, pipeline=None, format=None, fail_on=None, json=False):
    """Lint render.yaml files, migrations and pipelines: one finding per line (`lint -- PATH ...` or --path)."""
    from deploypipe.commands.lint import lint_command

    paths, options = _lint_remainder(getattr(c, "remainder", ""))
    fmt = options.get("format") or format or ("json" if json else None)
    inv = _invocation(pipeline=options.get("pipeline") or pipeline, json_output=fmt in ("json", "sarif"))
    return lint_command(inv, list(path or []) + paths, fmt=fmt, fail_on=options.get("fail_on") or fail_on)


@task(help={"all": "Also remove run records and backups (.deploypipe/runs, .deploypipe/backups)."})
@_boundary
def clean(c, all=False):
    """Stop and remove the embedded local default (.deploypipe/local/)."""
    from deploypipe.commands.clean import clean as clean_local

    return clean_local(_invocation(), everything=all)


@task(help={"name": "Replay to run, or `list` to list them (invoke has no optional positional arguments, so "
                    "`invoke replay list` is the listing).", "json": "Print the run reports as JSON.",
            "keep_running": "Keep the local default running afterwards."}, positional=["name"])
@_boundary
def replay(c, name, json=False, keep_running=False):
    """Replay a seed incident against the local default (`replay list` lists them)."""
    from deploypipe.commands.replay import list_replays
    from deploypipe.commands.replay import replay as run_replay

    if name in ("list", "--list"):
        return list_replays(_invocation())
    inv = _invocation(pipeline="pipelines/local.yaml", json_output=json, keep_running=keep_running)
    return run_replay(inv, name, as_json=json)


@task(help={"pipeline": _PIPELINE_HELP, "database": "Database target key (needed when the pipeline has several).",
            "list": "List backups instead of taking one.", "no_verify": "Skip the verification (restore and compare).",
            "dir": f"Backups directory (default {_BACKUPS_DIR}).", "json": "Print JSON."})
@_boundary
def backup(c, pipeline=None, database=None, list=False, no_verify=False, dir=_BACKUPS_DIR, json=False):
    """Take a verified backup of a database now (pg_dump, 0600, sha256; restored and compared as it is written)."""
    from deploypipe.commands.backup import backup as take_backup
    from deploypipe.commands.backup import list_backups

    inv = _invocation(pipeline=pipeline)
    if list:
        return list_backups(inv, directory=dir, as_json=json)
    return take_backup(inv, database=database, directory=dir, verify=not no_verify, as_json=json)


@task(help={"backup": "Backup id (see `backup --list`).", "target": "Database target key or URL to restore into.",
            "yes_i_mean_production": "Required to restore into a production database.",
            "reason": "Why (required for production; recorded with who and when).", "pipeline": _PIPELINE_HELP,
            "dir": f"Backups directory (default {_BACKUPS_DIR}).", "json": "Print JSON."})
@_boundary
def restore(c, backup, target, yes_i_mean_production=False, reason=None, pipeline=None, dir=_BACKUPS_DIR,
            json=False):
    """Restore a backup into a database; production targets need --yes-i-mean-production and --reason."""
    from deploypipe.commands.backup import restore as do_restore

    return do_restore(_invocation(pipeline=pipeline), backup_id=backup, target=target,
                      yes_i_mean_production=yes_i_mean_production, reason=reason, directory=dir, as_json=json)


@task(help={"port": "Port on 127.0.0.1 (default 10000).", "blueprint": "Blueprint file (default render.yaml).",
            "faults": "YAML/JSON file of fault rules.", "repo": "Git repository services build from (default .).",
            "data_dir": "Where builds, logs and state go (default .deploypipe/emulator)."})
def emulator(c, port=10000, blueprint="render.yaml", faults=None, repo=".", data_dir=".deploypipe/emulator"):
    """Run the local Render (Render's API on 127.0.0.1) until Ctrl-C; the API key is $RENDER_API_KEY."""
    from deploypipe.emulator.server import main as serve

    args = ["--port", str(port), "--blueprint", blueprint, "--repo", repo, "--data-dir", data_dir]
    if faults:
        args += ["--faults", faults]
    code = serve(args)
    if code:
        raise Exit(code=code)


def _browser_for_tests(c: Any) -> None:
    import shutil

    if os.environ.get("DEPLOYPIPE_CHROMIUM") or shutil.which("chromium") or os.geteuid() != 0:
        return
    sys.stderr.write("deploypipe: installing Debian's chromium for the report's browser test\n")
    c.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium", warn=True)


ns = Collection(deploy, plan, rollback, history, status, schema, lint, backup, restore, replay, emulator, clean,
                test)


def main() -> None:
    from deploypipe import __version__

    argv = list(sys.argv)  # `deploypipe lint render.yaml db/`: invoke has no variadic positional arguments
    if len(argv) > 2 and argv[1] == "lint" and "--" not in argv and not argv[2].startswith("-"):
        argv.insert(2, "--")
    Program(namespace=ns, version=__version__, name="deploypipe", binary="deploypipe").run(argv)
