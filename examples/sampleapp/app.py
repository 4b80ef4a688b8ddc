"""The bundled sample app: a tiny notes service whose /health reports database, migration revision and commit."""

from __future__ import annotations

import os

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

VERSION = "1.0.0"


def _connect() -> psycopg.Connection:
    return psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=2, autocommit=True)


def _revision(conn: psycopg.Connection) -> str | None:
    try:
        row = conn.execute("select version_num from alembic_version").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


async def health(request: Request) -> JSONResponse:
    body = {"status": "healthy", "database": "ok", "revision": None,
            "commit": os.environ.get("RENDER_GIT_COMMIT") or "unknown", "version": VERSION}
    try:
        with _connect() as conn:
            body["revision"] = _revision(conn)
    except (psycopg.Error, KeyError):
        body.update(status="unhealthy", database="error")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


async def index(request: Request) -> JSONResponse:
    with _connect() as conn:
        count = conn.execute("select count(*) from notes").fetchone()[0]
    return JSONResponse({"app": "sampleapp", "version": VERSION, "notes": count})


async def notes(request: Request) -> JSONResponse:
    with _connect() as conn:
        if request.method == "POST":
            payload = await request.json()
            body = payload.get("body") if isinstance(payload, dict) else None
            if not isinstance(body, str) or not body.strip():
                return JSONResponse({"error": "body must be a non-empty string"}, status_code=400)
            row = conn.execute("insert into notes (body) values (%s) returning id", (body,)).fetchone()
            return JSONResponse({"id": row[0], "body": body}, status_code=201)
        rows = conn.execute("select id, body from notes order by id desc limit 50").fetchall()
    return JSONResponse([{"id": r[0], "body": r[1]} for r in rows])


app = Starlette(routes=[Route("/health", health), Route("/", index), Route("/notes", notes, methods=["GET", "POST"])])
