"""Helpers of the real runtime: git checkouts, expiring builds, commit lookups, generated values, a service's env."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import structlog

from deploypipe.emulator.blueprint import from_service
from deploypipe.emulator.databases import database_property
from deploypipe.emulator.lifecycle import Lifecycle
from deploypipe.emulator.records import ServiceRec

__all__ = ["GeneratedValues", "checkout", "prune_builds", "resolve_commit", "service_env"]

log = structlog.get_logger("deploypipe.emulator")

_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV", "PYTHONPATH", "TMPDIR", "XDG_RUNTIME_DIR")


def checkout(repo: Path, commit: str, target: Path, log_path: Path) -> bool:
    """``git archive <commit> | tar -x`` into ``target``; False (reason in the log) if the commit is unknown."""
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit], capture_output=True)
    if archive.returncode != 0:
        with open(log_path, "ab") as out:
            out.write(b"git archive failed: " + archive.stderr)
        return False
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return True


def prune_builds(builds: Path, service: ServiceRec, keep: int) -> None:
    """Keep the newest ``keep`` builds of the service under ``builds`` (and the live one), as Render retains a few."""
    newest = list(dict.fromkeys(d.build_id for d in reversed(service.deploys) if d.build_id))
    live = service.live()
    kept = set(newest[:keep]) | {live.build_id if live else None}
    for build_id in newest[keep:]:
        if build_id not in kept and (builds / build_id).exists():
            shutil.rmtree(builds / build_id, ignore_errors=True)
            log.info("emulator_build_expired", service=service.name, build_id=build_id)


def resolve_commit(repo: Path, commit: str | None, branch: str | None) -> tuple[str, str] | None:
    """(sha, subject) of ``commit``, else of ``branch``'s head (else HEAD) in ``repo``; None if unknown."""
    def log_one(ref: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%H%n%s", f"{ref}^{{commit}}", "--"],
                              capture_output=True, text=True)

    result = log_one(commit or branch or "HEAD")
    if result.returncode != 0 and commit is None:
        result = log_one("HEAD")
    if result.returncode != 0:
        return None
    sha, _, subject = result.stdout.strip().partition("\n")
    return sha, subject


class GeneratedValues:
    """``generateValue: true`` env vars: generated once per service and key, kept in ``path`` (mode 0600)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._values: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, service: str, key: str) -> str:
        with self._lock:
            name = f"{service}:{key}"
            if name not in self._values:
                self._values[name] = secrets.token_urlsafe(32)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    json.dump(self._values, out)
            return self._values[name]


def service_env(emulator: Lifecycle, service: ServiceRec, commit: str | None, port: int,
                generated: GeneratedValues) -> dict[str, str]:
    """What Render puts in a service's environment, plus ``HOST=127.0.0.1`` and this interpreter first on PATH."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED}
    # the runtime's interpreter first on PATH, as Render's python runtime has its own on PATH
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env.update({"PORT": str(port), "HOST": "127.0.0.1", "RENDER": "true", "RENDER_GIT_COMMIT": commit or "",
                "RENDER_SERVICE_NAME": service.name, "RENDER_SERVICE_ID": service.id,
                "RENDER_EXTERNAL_URL": service.url, "IS_PULL_REQUEST": "false", "PYTHONUNBUFFERED": "1"})
    databases = {p.name: p for p in emulator.postgres.values()}
    services = {s.name: (s.spec, s.url) for s in emulator.services.values()}
    for var in service.spec.envVars:
        owner, declared = service.name, var  # fromService envVarKey: the other service's own env var
        if var.fromService:
            try:
                found = from_service(var.fromService, services)
            except ValueError as exc:
                log.warning("emulator_env_service_unresolved", service=service.name, key=var.key, problem=str(exc))
                continue
            if isinstance(found, str):
                env[var.key] = found
                continue
            owner, declared = found[0].name, found[1]
        if declared.fromDatabase:
            db = databases.get(declared.fromDatabase.get("name", ""))
            if db is None:
                log.warning("emulator_env_database_unknown", service=service.name, key=var.key,
                            database=declared.fromDatabase.get("name"))
                continue
            env[var.key] = database_property(db, declared.fromDatabase.get("property", "connectionString"))
        elif declared.generateValue:
            env[var.key] = generated.get(owner, declared.key)
        elif declared.value is not None:
            env[var.key] = str(declared.value)
    return env
