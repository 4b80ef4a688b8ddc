"""``backup`` and ``restore``: a verified backup of a pipeline database now, or a restore with an audit record."""

from __future__ import annotations

import json
from pathlib import Path

from deploypipe.commands.invocation import Invocation, load
from deploypipe.commands.local import maybe_local
from deploypipe.engine.journal import new_run_id
from deploypipe.engine.loader import LoadedPipeline
from deploypipe.errors import UsageError

__all__ = ["backup", "list_backups", "restore"]


def _backups_dir(inv: Invocation, directory: str) -> Path:
    path = Path(directory)
    return path if path.is_absolute() else inv.project_dir / path


def _database(loaded: LoadedPipeline, key: str | None) -> str:
    databases = loaded.spec.targets.databases
    if key is None and len(databases) == 1:
        key = next(iter(databases))
    if key is None or key not in databases:
        raise UsageError(f"--database {key}: not a database of pipeline {loaded.spec.name}",
                         hint=f"one of: {', '.join(sorted(databases)) or 'none declared (targets.databases)'}")
    return key


def list_backups(inv: Invocation, *, directory: str, as_json: bool) -> int:
    from deploypipe.db.backup import list_backups as listed

    backups_dir = _backups_dir(inv, directory)
    rows = [{"id": b.id, "size_bytes": b.size_bytes, "verified": b.verified, "created_at": b.created_at,
             "run_id": b.run_id} for b in listed(backups_dir)]
    if as_json:
        inv.out.write(json.dumps(rows, indent=2) + "\n")
    elif not rows:
        inv.out.write(f"no backups in {backups_dir}\n")
    for row in [] if as_json else rows:
        inv.out.write(f"{row['id']}  {row['size_bytes']:>12} bytes  verified={row['verified']}  run {row['run_id']}\n")
    return 0


def backup(inv: Invocation, *, database: str | None, directory: str, verify: bool, as_json: bool) -> int:
    import structlog

    from deploypipe.db.commands import backup_command
    from deploypipe.output.progress import StepProgress

    with maybe_local(inv):
        loaded = load(inv)
        key = _database(loaded, database)
        progress = StepProgress(inv.err, live=inv.err.isatty() and not inv.ci, log=structlog.get_logger("backup"))
        try:
            result = backup_command(url=loaded.spec.targets.databases[key].url,
                                    backups_dir=_backups_dir(inv, directory), run_id=new_run_id(), verify=verify,
                                    report=lambda step: progress(step.fields()))
        finally:
            progress.close()
    inv.out.write(json.dumps(result, indent=2, default=str) + "\n" if as_json else
                  f"backup {result['backup_id']}: {result['size_bytes']} bytes, verified={result['verified']} -> "
                  f"{result['path']}\n")
    return 0


def restore(inv: Invocation, *, backup_id: str, target: str, yes_i_mean_production: bool, reason: str | None,
            directory: str, as_json: bool) -> int:
    from deploypipe.db.commands import restore_command

    with maybe_local(inv):
        loaded = load(inv)
        result = restore_command(backups_dir=_backups_dir(inv, directory), backup_id=backup_id, target=target,
                                 targets=loaded.spec.targets, yes_i_mean_production=yes_i_mean_production,
                                 reason=reason)
    inv.out.write(json.dumps(result, indent=2, default=str) + "\n" if as_json else
                  f"restored {result['backup_id']} into {result['target']} ({result['duration_s']}s)\n")
    return 0
