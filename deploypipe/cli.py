"""The command line: invoke tasks (``invoke deploy`` here, ``deploypipe deploy`` anywhere).

Tasks are thin: parse options, call deploypipe.app, map errors to exit codes.
Heavy imports happen inside the tasks so ``--help`` and ``--list`` stay fast.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

from invoke import Collection, Exit, Program, task

__all__ = ["main", "ns"]

_PIPELINE_HELP = "Pipeline file (default: $DEPLOYPIPE_PIPELINE or pipelines/local.yaml)."
_JSON_HELP = "Print the report as JSON on stdout; logs go to stderr as JSON lines."


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
            from deploypipe.app import fail_line

            code = fail_line(exc)
        except KeyboardInterrupt:
            sys.stderr.write("deploypipe: interrupted before any stage ran\n")
            code = 1
        except Exception as exc:  # a bug or an unexpected environment: one line, the traceback on request
            import os

            if os.environ.get("DEPLOYPIPE_DEBUG"):
                raise
            from deploypipe.redact import Redactor

            redactor = Redactor()
            redactor.add_from_env(os.environ)
            sys.stderr.write(redactor.text(f"deploypipe: unexpected error: {type(exc).__name__}: {exc}; hint: this is "
                                           "likely a bug; DEPLOYPIPE_DEBUG=1 shows the traceback. Any run record "
                                           "in .deploypipe/runs/ says what the run did\n"))
            code = 1
        if code:
            raise Exit(code=code)

    return wrapper


def _invocation(**kwargs: Any):
    """Options -> Invocation; logging goes to stderr from here on (stdout is for reports)."""
    from deploypipe.app import Invocation, _redactor, setup_logging

    inv = Invocation(**{k: v for k, v in kwargs.items() if v is not None})
    setup_logging(inv, _redactor(inv))
    return inv


@task(help={"pipeline": _PIPELINE_HELP, "json": _JSON_HELP,
            "wait_lock": "Seconds to wait when another deploy of the same target holds the lock (default: fail at once).",
            "resume": "Continue the interrupted run RUN_ID from its journal (finished stages are not repeated).",
            "dry_run": "Only show what would run (same as `plan`).",
            "keep_running": "Local default only: keep the embedded database and local Render running afterwards."})
@_boundary
def deploy(c, pipeline=None, json=False, wait_lock=None, resume=None, dry_run=False, keep_running=False):
    """Run the pipeline: checks, backup, dry run, migrate, deploy, verify; roll back on failure."""
    if dry_run:
        return _plan(pipeline, json)
    from deploypipe.app import emit_report, run_pipeline
    from deploypipe.localenv import maybe_local

    inv = _invocation(pipeline=pipeline, json_output=json, wait_lock_s=None if wait_lock is None else float(wait_lock),
                      keep_running=keep_running)
    with maybe_local(inv):
        report = run_pipeline(inv, resume=resume)
        if keep_running and inv.env.get("DEPLOYPIPE_LOCAL_DIR"):
            _print_local_urls(inv)
    return emit_report(inv, report)


def _print_local_urls(inv: Any) -> None:
    """Where the local default's services answer (it keeps running until `invoke clean`)."""
    from deploypipe.render.client import RenderClient

    with RenderClient.from_env(inv.env) as client:
        for service in client.list_services():
            sys.stderr.write(f"{service.name}: {service.url} (kept running; stop with `invoke clean`)\n")


def _plan(pipeline: str | None, as_json: bool) -> int:
    from deploypipe.app import plan as make_plan

    inv = _invocation(pipeline=pipeline)
    steps = make_plan(inv)
    if as_json:
        print(json.dumps(steps, indent=2))
        return 0
    print(f"pipeline {inv.pipeline_path()}: {len(steps)} stages (nothing is run)")
    for number, step in enumerate(steps, 1):
        marker = " [touches production]" if step["touches_production"] else ""
        when = "" if step["when"] == "on_success" else f" (when: {step['when']})"
        print(f"{number:>2}. {step['id']} ({step['type']}){marker}{when}: {step['would']}")
        for key, value in step["params"].items():
            print(f"      {key}: {json.dumps(value)}")
    return 0


@task(help={"pipeline": _PIPELINE_HELP, "json": "Print the plan as JSON."})
@_boundary
def plan(c, pipeline=None, json=False):
    """Show what each stage would do, with resolved parameters (secrets masked). Runs nothing."""
    return _plan(pipeline, json)


@task(help={"pipeline": _PIPELINE_HELP, "run": "Show one run in full.", "limit": "How many runs to list (default 20).",
            "json": "Print JSON."})
@_boundary
def history(c, pipeline=None, run=None, limit=20, json=False):
    """List recent runs (newest first), or show one run's report with --run."""
    from deploypipe.history import show_history

    return show_history(_invocation(pipeline=pipeline), run=run, limit=int(limit), as_json=json)


@task(help={"output": "Write the schema to this file instead of stdout."})
@_boundary
def schema(c, output=None):
    """Print the JSON Schema of the pipeline format (for editors)."""
    from deploypipe.spec.schema import pipeline_schema

    text = json.dumps(pipeline_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


@task(help={"args": "Extra arguments for pytest, e.g. '-k lint -x'."})
def test(c, args=""):
    """Run the test suite (pytest); pytest's 'no tests collected' counts as a failure."""
    result = c.run(f"{sys.executable} -m pytest {args}", warn=True, pty=False)
    code = result.exited if result else 1
    if code == 5:
        sys.stderr.write("deploypipe: pytest collected no tests\n")
    if code:
        raise Exit(code=code)


@task(help={"pipeline": _PIPELINE_HELP, "service": "Service to roll back (target key or Render name); needed when "
            "the pipeline has several.", "to": "Deploy id to roll back to (default: the previous successful deploy).",
            "run": "Undo what run RUN_ID changed (from its journal), in reverse order.",
            "yes": "Do not ask for confirmation (required when not on a terminal).", "json": _JSON_HELP})
@_boundary
def rollback(c, pipeline=None, service=None, to=None, run=None, yes=False, json=False):
    """Roll a service back to an earlier deploy, or undo a run; verify health; write a run record."""
    from deploypipe.app import emit_report
    from deploypipe.localenv import maybe_local
    from deploypipe.manual_rollback import rollback as do_rollback

    inv = _invocation(pipeline=pipeline, json_output=json)
    with maybe_local(inv):
        report = do_rollback(inv, service=service, to=to, run=run, yes=yes)
    return emit_report(inv, report)


@task(help={"pipeline": _PIPELINE_HELP, "json": _JSON_HELP})
@_boundary
def lint(c, pipeline=None, json=False):
    """Validate the pipeline and run its static checks (lint.* and db.lint stages) without deploying."""
    from deploypipe.app import emit_report, load, run_pipeline
    from deploypipe.spec.loader import LoadedPipeline

    inv = _invocation(pipeline=pipeline, json_output=json)
    loaded = load(inv)
    checks = [s for s in loaded.spec.stages if s.type.startswith("lint.") or s.type == "db.lint"]
    if not checks:
        print(f"{loaded.path}: valid; it has no lint stages")
        return 0
    spec = loaded.spec.model_copy(update={"stages": [s.model_copy(update={"when": "on_success"}) for s in checks],
                                          "name": loaded.spec.name + "-lint", "lock": loaded.spec.lock.model_copy(
                                              update={"key": f"{loaded.spec.lock.key or loaded.spec.name}-lint"})})
    subset = LoadedPipeline(loaded.path, spec, {s.id: loaded.params[s.id] for s in checks}, loaded.secrets, loaded.source)
    return emit_report(inv, run_pipeline(inv, loaded=subset))


@task(help={"all": "Also remove run records and backups (.deploypipe/runs, .deploypipe/backups)."})
@_boundary
def clean(c, all=False):
    """Stop and remove the embedded local default (.deploypipe/local/)."""
    from deploypipe.localenv import clean as clean_local

    return clean_local(_invocation(), everything=all)


@task(help={"name": "Replay to run, or `list` to list them (invoke has no optional positional arguments, so "
                    "`invoke replay list` is the listing).", "json": "Print the run reports as JSON.",
            "keep_running": "Keep the local default running afterwards."}, positional=["name"])
@_boundary
def replay(c, name, json=False, keep_running=False):
    """Replay a seed incident against the local default (`replay list` lists them)."""
    from deploypipe.replays.catalogue import REPLAYS

    if name in ("list", "--list"):
        for item in REPLAYS.values():
            print(f"{item.name:<26} exit {item.expected_exit}  {item.title}  (seed {item.seed})")
        return 0
    import json as jsonlib

    from deploypipe.app import run_pipeline
    from deploypipe.localenv import maybe_local
    from deploypipe.replays.engine import production_state, run_replay

    inv = _invocation(pipeline="pipelines/local.yaml", json_output=json, keep_running=keep_running)
    with maybe_local(inv):
        if production_state(dict(inv.env))["commit"] is None:
            sys.stderr.write("replay: nothing is live yet; deploying the good release first\n")
            baseline = run_pipeline(inv)
            if baseline["exit_code"] != 0:
                sys.stderr.write(f"replay: the baseline deploy failed: {baseline['message']}\n")
                return baseline["exit_code"]
        result = run_replay(inv, name, env=dict(inv.env))
    if json:
        print(jsonlib.dumps({"replay": name, "exit_code": result.exit_code, "unharmed": result.unharmed,
                             "seconds": result.seconds, "before": result.before, "after": result.after,
                             "runs": result.runs}, indent=2, default=str))
    else:
        print(result.summary())
    return result.exit_code


def _database(loaded, key: str | None) -> str:
    from deploypipe.errors import UsageError

    databases = loaded.spec.targets.databases
    if key is None and len(databases) == 1:
        key = next(iter(databases))
    if key not in databases:
        raise UsageError(f"--database {key}: not a database of pipeline {loaded.spec.name}",
                         hint=f"one of: {', '.join(sorted(databases)) or 'none declared (targets.databases)'}")
    return key


@task(help={"pipeline": _PIPELINE_HELP, "database": "Database target key (needed when the pipeline has several).",
            "list": "List backups instead of taking one.", "no_verify": "Skip the restore-and-count verification.",
            "dir": "Backups directory (default .deploypipe/backups).", "json": "Print JSON."})
@_boundary
def backup(c, pipeline=None, database=None, list=False, no_verify=False, dir=".deploypipe/backups", json=False):
    """Take a verified backup of a pipeline database now (pg_dump, 0600, sha256, restore-and-count check)."""
    import json as jsonlib
    from pathlib import Path as P

    from deploypipe.app import load
    from deploypipe.localenv import maybe_local

    inv = _invocation(pipeline=pipeline)
    backups_dir = P(dir) if P(dir).is_absolute() else inv.project_dir / dir
    if list:
        from deploypipe.db.backup import list_backups

        rows = [{"id": b.id, "size_bytes": b.size_bytes, "verified": b.verified, "created_at": b.created_at,
                 "run_id": b.run_id} for b in list_backups(backups_dir)]
        print(jsonlib.dumps(rows, indent=2) if json else "\n".join(
            f"{r['id']}  {r['size_bytes']:>12} bytes  verified={r['verified']}  run {r['run_id']}" for r in rows)
            or f"no backups in {backups_dir}")
        return 0
    from deploypipe.db.commands import backup_command
    from deploypipe.db.scratch import ScratchServer
    from deploypipe.journal import new_run_id

    with maybe_local(inv):
        loaded = load(inv)
        key = _database(loaded, database)
        result = backup_command(url=loaded.spec.targets.databases[key].url, backups_dir=backups_dir, run_id=new_run_id(),
                                scratch=None if no_verify else ScratchServer(inv.state_dir / "scratch-pg"))
    print(jsonlib.dumps(result, indent=2, default=str) if json else
          f"backup {result['backup_id']}: {result['size_bytes']} bytes, verified={result['verified']} -> {result['path']}")
    return 0


@task(help={"backup": "Backup id (see `backup --list`).", "target": "Database target key or URL to restore into.",
            "yes_i_mean_production": "Required to restore into a production database.",
            "reason": "Why (required for production; recorded with who and when).", "pipeline": _PIPELINE_HELP,
            "dir": "Backups directory (default .deploypipe/backups).", "json": "Print JSON."})
@_boundary
def restore(c, backup, target, yes_i_mean_production=False, reason=None, pipeline=None, dir=".deploypipe/backups",
            json=False):
    """Restore a backup into a database; production targets need --yes-i-mean-production and --reason."""
    import json as jsonlib
    from pathlib import Path as P

    from deploypipe.app import load
    from deploypipe.db.commands import restore_command
    from deploypipe.localenv import maybe_local

    inv = _invocation(pipeline=pipeline)
    backups_dir = P(dir) if P(dir).is_absolute() else inv.project_dir / dir
    with maybe_local(inv):
        loaded = load(inv)
        result = restore_command(backups_dir=backups_dir, backup_id=backup, target=target, targets=loaded.spec.targets,
                                 yes_i_mean_production=yes_i_mean_production, reason=reason)
    print(jsonlib.dumps(result, indent=2, default=str) if json else
          f"restored {result['backup_id']} into {result['target']} ({result['duration_s']}s)")
    return 0


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


ns = Collection(deploy, plan, rollback, history, schema, lint, backup, restore, replay, emulator, clean, test)


def main() -> None:
    from deploypipe import __version__

    Program(namespace=ns, version=__version__, name="deploypipe", binary="deploypipe").run()
