"""The bundled sample app: a tiny notes service whose /health reports database, migration revision and commit.

Endpoints:
    GET  /health   200 {"status": "healthy", "database": "ok", "revision", "commit", "version"};
                   503 {"status": "unhealthy", "database": "error", ...} when PostgreSQL cannot be reached
    GET  /         the notes count (JSON; HTML when the client prefers text/html)
    GET  /notes    the 50 newest notes, newest first
    POST /notes    {"body": "...", "author": "..."?} -> 201 {"id", "body", "author"}
    GET  /flaky    a chronically flaky endpoint, in every release: its upstream connection is renewed every 20
                   calls and the first call on a new one times out, so 1 request in 20 (the 1st, 21st, 41st, ...
                   since the app started) answers 500 {"error": "upstream timed out"}; the others 200 {"upstream": "ok"}

Configuration comes from the environment only: DATABASE_URL (required), RENDER_GIT_COMMIT (set by Render).
Database work is blocking psycopg 3, run in the thread pool so a slow database cannot stall the event loop.
Migrations are NOT run here (nor in the start command): the deploy pipeline runs `alembic upgrade head`.
"""

from __future__ import annotations

import html
import itertools
import json
import os

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

VERSION = "1.0.0"
CONNECT_TIMEOUT_S = 2  # /health must answer well within Render's 5 s health-check timeout
UPSTREAM_CALLS_PER_CONNECTION = 20  # GET /flaky: the first call on each new upstream connection fails (5 %)
_upstream_calls = itertools.count()


class DatabaseUnavailable(Exception):
    """DATABASE_URL is missing or PostgreSQL could not be reached."""


def _connect() -> psycopg.Connection:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise DatabaseUnavailable("DATABASE_URL is not set")
    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(type(exc).__name__) from None


def _revision(conn: psycopg.Connection) -> str | None:
    try:
        row = conn.execute("select version_num from alembic_version").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


def _database_revision() -> str | None:
    with _connect() as conn:
        return _revision(conn)


def _unavailable() -> JSONResponse:
    return JSONResponse({"error": "database unavailable"}, status_code=503)


async def health(request: Request) -> JSONResponse:
    body = {"status": "healthy", "database": "ok", "revision": None,
            "commit": os.environ.get("RENDER_GIT_COMMIT") or "unknown", "version": VERSION}
    try:
        body["revision"] = await run_in_threadpool(_database_revision)
    except (DatabaseUnavailable, psycopg.Error):
        body.update(status="unhealthy", database="error")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


def _count_notes() -> int:
    with _connect() as conn:
        return conn.execute("select count(*) from notes").fetchone()[0]


def _list_notes() -> list[dict]:
    with _connect() as conn:
        rows = conn.execute("select id, body, author, created_at from notes order by id desc limit 50").fetchall()
    return [{"id": r[0], "body": r[1], "author": r[2], "created_at": r[3].isoformat()} for r in rows]


def _add_note(body: str, author: str | None) -> int:
    with _connect() as conn:
        row = conn.execute("insert into notes (body, author) values (%s, %s) returning id", (body, author)).fetchone()
        return row[0]


def _prefers_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


async def index(request: Request) -> JSONResponse:
    try:
        count = await run_in_threadpool(_count_notes)
    except (DatabaseUnavailable, psycopg.OperationalError):
        return _unavailable()
    if _prefers_html(request):
        return HTMLResponse(f"<!doctype html><title>sampleapp</title><h1>sampleapp {html.escape(VERSION)}</h1>"
                            f"<p>{count} note{'s' if count != 1 else ''}</p>")
    return JSONResponse({"app": "sampleapp", "version": VERSION, "notes": count})


async def notes(request: Request) -> JSONResponse:
    try:
        if request.method == "POST":
            try:
                payload = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return JSONResponse({"error": "the request body must be JSON"}, status_code=400)
            body = payload.get("body") if isinstance(payload, dict) else None
            author = payload.get("author") if isinstance(payload, dict) else None
            if not isinstance(body, str) or not body.strip():
                return JSONResponse({"error": "body must be a non-empty string"}, status_code=400)
            if author is not None and not isinstance(author, str):
                return JSONResponse({"error": "author must be a string when given"}, status_code=400)
            note_id = await run_in_threadpool(_add_note, body, author)
            return JSONResponse({"id": note_id, "body": body, "author": author}, status_code=201)
        return JSONResponse(await run_in_threadpool(_list_notes))
    except (DatabaseUnavailable, psycopg.OperationalError):
        return _unavailable()


async def flaky(request: Request) -> JSONResponse:
    if next(_upstream_calls) % UPSTREAM_CALLS_PER_CONNECTION == 0:
        return JSONResponse({"error": "upstream timed out"}, status_code=500)
    return JSONResponse({"upstream": "ok"})


app = Starlette(routes=[Route("/health", health), Route("/", index), Route("/notes", notes, methods=["GET", "POST"]),
                        Route("/flaky", flaky)])
