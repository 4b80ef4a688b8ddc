"""Staging servers: throwaway embedded PostgreSQL clusters that hold a copy of production for a while.

A staging server is a copy of a cached, already initialised cluster (an
``initdb`` is paid once per machine, in the user's cache directory) whose
settings are set before its first start: its data is deleted afterwards, so
no fsync, no full-page writes, minimal WAL, no autovacuum. Starting one takes
about a second and a half, and it is started in a thread while the dump runs.
:class:`Staging` is the place a copy lives: that server, or a database the
user named (``staging_url``) that is overwritten.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from deploypipe.core.embedded_pg import EmbeddedPostgres, start_embedded
from deploypipe.db.pg import connect, mask_url, same_database
from deploypipe.errors import StageErrored, StageFailed

__all__ = ["STAGING_DATABASE", "THROWAWAY_SETTINGS", "Staging", "template_dir"]

log = structlog.get_logger(__name__)

#: Settings of a staging cluster, written before its first start. Migration semantics are unchanged; durability,
#: WAL volume and background work are not needed for data that is deleted afterwards.
THROWAWAY_SETTINGS = ("fsync = off", "full_page_writes = off", "synchronous_commit = off", "max_wal_size = '8GB'",
                      "wal_level = minimal", "max_wal_senders = 0", "autovacuum = off",
                      "maintenance_work_mem = '256MB'")
STAGING_DATABASE = "staging"
_TEMPLATE_LOCK = threading.Lock()


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deploypipe"


def template_dir() -> Path:
    """The initialised, stopped template cluster (made on first use; keyed by PostgreSQL version and settings)."""
    import hashlib

    from deploypipe.core.embedded_pg import pg_bin

    version = subprocess.run([pg_bin("postgres"), "--version"], capture_output=True, text=True).stdout.split()[-1]
    key = hashlib.sha256(repr((version, THROWAWAY_SETTINGS, STAGING_DATABASE)).encode()).hexdigest()[:12]
    final = _cache_root() / f"staging-template-{version}-{key}"
    with _TEMPLATE_LOCK:
        if (final / "PG_VERSION").exists():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        building = final.parent / f".building-{uuid.uuid4().hex[:8]}"
        try:
            server = start_embedded(building)
            server.create_database(STAGING_DATABASE)
            with connect(server.url(), autocommit=True) as conn:
                for setting in THROWAWAY_SETTINGS:
                    conn.execute(f"alter system set {setting}")
            server.stop()
            for leftover in (".handle_pids.json", "log", "postmaster.pid"):
                (building / leftover).unlink(missing_ok=True)
            try:
                building.rename(final)
            except OSError:  # another process finished first: use theirs
                shutil.rmtree(building, ignore_errors=True)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        log.info("staging_template_created", path=str(final))
        return final


def _start_from_template(directory: Path) -> EmbeddedPostgres:
    subprocess.run(["cp", "-a", str(template_dir()), str(directory / "pg")], check=True)
    return start_embedded(directory / "pg")


@dataclass
class Staging:
    """Where a copy of production lives: a throwaway server started in the background, or ``url`` as given.

    ``ready()`` waits for the server and returns the staging database's URL; ``close()`` stops the server and
    deletes its files (always safe to call, also when the start failed or never finished).
    """

    url_given: str | None = None
    described: str = "ephemeral embedded PostgreSQL"
    _future: Future[EmbeddedPostgres] | None = field(default=None, repr=False)
    _directory: Path | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, staging_url: str | None, production_url: str) -> Staging:
        """The user's staging database (never production), or a new throwaway server starting in a thread."""
        if staging_url:
            if same_database(staging_url, production_url):
                raise StageFailed("staging_url points at the production database", where="db.dry_run",
                                  hint="give a separate staging database, or omit staging_url for an ephemeral one")
            return cls(url_given=staging_url, described=mask_url(staging_url))
        directory = Path(tempfile.mkdtemp(prefix="deploypipe-staging-"))
        future: Future[EmbeddedPostgres] = Future()

        def boot() -> None:
            try:
                future.set_result(_start_from_template(directory))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the server
                future.set_exception(exc)

        threading.Thread(target=boot, name="staging-server", daemon=True).start()
        return cls(_future=future, _directory=directory)

    @property
    def directory(self) -> Path | None:
        """Where a throwaway server keeps its files (removed by :meth:`close`); None for a database given by URL."""
        return self._directory

    @property
    def overwrites(self) -> bool:
        """Whether the copy goes into an existing database (objects are dropped first)."""
        return self.url_given is not None

    def ready(self) -> str:
        if self.url_given is not None:
            return self.url_given
        assert self._future is not None
        try:
            server = self._future.result()
        except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
            raise StageErrored(f"could not start the staging server: {type(exc).__name__}: {exc}",
                               where="db staging", hint="check free disk space in the temp directory") from None
        return server.url(STAGING_DATABASE)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._future is not None:
            try:
                server: Any = self._future.result()
            except BaseException:  # noqa: BLE001 - it never started: only its files are left
                server = None
            if server is not None:
                server.stop()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
