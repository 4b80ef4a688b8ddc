"""The Blueprint's Render Postgres databases: provisioned in an embedded PostgreSQL or attached to an existing URL.

``provision`` creates each ``databases`` entry of the Blueprint (database,
owner role and a generated password) in an embedded PostgreSQL started on
demand in ``<data_dir>/pg``, unless a URL is given for it, in which case the
emulator attaches to that database as is (the local default passes its own
"production" database). ``connection_info`` answers Render's connection-info
shape; ``export`` really ``pg_dump``s the database into ``<data_dir>/exports``
in the background (Render answers 202 and lists the export when it is done).
Provisioned databases are the local Render's own (``owned``: deleting the
instance drops them); attached ones are only forgotten. Point-in-time
recovery (snapshots, clones) is in ``recovery.py``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qs, urlsplit

import structlog

from deploypipe.emulator.ids import iso
from deploypipe.emulator.records import PostgresRec

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.emulator.blueprint import DatabaseDef
    from deploypipe.emulator.state import Emulator

__all__ = ["connection_info", "database_property", "export", "provision", "stable_id"]

log = structlog.get_logger("deploypipe.emulator")


def stable_id(prefix: str, name: str) -> str:
    """A Render-shaped id derived from a name, so ids survive restarts of the local Render."""
    return f"{prefix}-" + hashlib.sha1(name.encode()).hexdigest()[:20]


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def provision(emulator: Emulator, databases: list[DatabaseDef], *, attached: Mapping[str, str] | None = None,
              data_dir: Path | None = None) -> None:
    """Add a PostgresRec per Blueprint database: attached to ``attached[name]`` or created in an embedded server."""
    embedded = None
    for db in databases:
        url = (attached or {}).get(db.name)
        if url is not None:
            parts = urlsplit(url)
            password = parts.password or ""
            user = db.user or parts.username or db.name
            database = (parts.path or "/").lstrip("/") or db.databaseName or db.name
        else:
            if data_dir is None:
                raise ValueError(f"database {db.name}: pass its URL or a data_dir for an embedded PostgreSQL")
            if embedded is None:
                from deploypipe.core.embedded_pg import start_embedded

                embedded = start_embedded(data_dir / "pg")
                emulator.on_close.append(embedded.stop)
            secret_file = data_dir / "pg-passwords" / db.name
            password = secret_file.read_text() if secret_file.exists() else secrets.token_urlsafe(16)
            user, database = db.user or db.name, db.databaseName or db.name
            url = embedded.create_database(database, owner=user, password=password)
            embedded.psql(f"alter role \"{user}\" password '{password}'")
            if not secret_file.exists():
                secret_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(password)
        emulator.add_postgres(PostgresRec(id=stable_id("dpg", db.name), name=db.name, database=database, user=user,
                                          password=password, url=url, version=str(db.postgresMajorVersion or "16"),
                                          created_at=emulator.clock(), owned=db.name not in (attached or {})))
        log.info("emulator_database_ready", name=db.name, url=_mask(url), attached=db.name in (attached or {}))


def database_property(db: PostgresRec, prop: str) -> str:
    """A Blueprint ``fromDatabase.property``: connectionString, host, port, user, password or database."""
    parts = urlsplit(db.url)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    values = {"connectionString": db.url, "host": parts.hostname or socket_dir, "port": str(parts.port or 5432),
              "user": db.user, "password": db.password, "database": db.database}
    if prop not in values:
        raise ValueError(f"fromDatabase.property {prop!r} is not one of {', '.join(values)}")
    return values[prop]


def connection_info(db: PostgresRec) -> dict[str, Any]:
    """Render's connection-info answer (it holds the password: never log it)."""
    return {"password": db.password, "internalConnectionString": db.url, "externalConnectionString": db.url,
            "psqlCommand": f"psql {db.url}"}


def export(emulator: Emulator, db: PostgresRec) -> None:
    """Start an export: ``pg_dump -Fc`` into the data dir, listed once done (no data dir: listed at once, no file)."""
    export_id = f"exp-{secrets.token_hex(10)}"
    if emulator.data_dir is None:
        with emulator.lock:
            db.exports.append({"id": export_id, "createdAt": iso(emulator.clock())})
        return
    created = emulator.clock()
    target = emulator.data_dir / "exports" / f"{db.id}-{export_id}.dump"

    def work() -> None:
        from deploypipe.core.embedded_pg import pg_bin

        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            done = subprocess.run([pg_bin("pg_dump"), "-Fc", "--no-owner", "-d", db.url], stdout=out,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            target.unlink(missing_ok=True)
            log.error("emulator_export_failed", postgres_id=db.id, exit_code=done.returncode,
                      stderr=done.stderr.decode(errors="replace").replace(db.password, "***")[-500:] if db.password
                      else done.stderr.decode(errors="replace")[-500:])
            return
        with emulator.lock:
            db.exports.append({"id": export_id, "createdAt": iso(created), "url": target.resolve().as_uri()})
        log.info("emulator_export_done", postgres_id=db.id, export_id=export_id, bytes=target.stat().st_size)

    thread = threading.Thread(target=work, name=f"export-{db.id}", daemon=True)
    thread.start()
    emulator.on_close.append(lambda: thread.join(30))
