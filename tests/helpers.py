"""Helpers shared by the test folders: the seed Blueprint, a tiny loopback HTTP app, and an Invocation builder.

Importable as ``helpers`` from any test (pyproject's pytest ``pythonpath``), like the folder helpers it lists there.

    SEED_000                    seed 000's render.yaml (BMAD-DEPLOY-004) "BEFORE": the startCommand chain it ran
    LoopbackApp(respond)        a ThreadingHTTPServer on 127.0.0.1:0 in a thread; ``respond(request)`` answers each
                                GET and POST with (status, body): bytes as they are, anything else as JSON; None
                                answers nothing. ``.base``, ``.close()``, a context manager.
    service_app(answer, prelude) the source of a tiny web service the local Render runs as a process: every GET
                                is answered with ``answer``, an expression over ``self`` giving (status, JSON body)
    invocation(project, ...)    an in-process Invocation: output captured in StringIO, nobody at a terminal
    change_then_check(check)    a pipeline that changes "production" (state.txt; its compensation writes "undone")
                                and then runs the shell command ``check``
    blueprint_render(root, commits, key=...)  the local Render with real processes on 127.0.0.1, its services from
                                the render.yaml of a fresh git repo whose commits are ``commits``; a RenderOf
    wait_until(check, what)     ``check()``'s first truthy value, polled; AssertionError naming ``what`` on timeout
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx

from deploypipe.commands.invocation import Invocation

__all__ = ["SEED_000", "LoopbackApp", "RenderOf", "blueprint_render", "change_then_check", "invocation", "service_app",
           "wait_until"]

SEED_000 = """\
services:
  - type: web
    name: sentia-backend-prod
    runtime: node
    healthCheckPath: /api/health
    autoDeploy: false
    startCommand: |
      corepack enable &&
      pnpm exec prisma migrate resolve --rolled-back 20251017171256_init || true &&
      pnpm exec prisma migrate deploy &&
      pnpm run start:render
"""

Answer = tuple[int, Any] | None

_SERVICE = """\
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer
{prelude}

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status, answer = {answer}
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler).serve_forever()
"""


def service_app(answer: str, prelude: str = "") -> str:
    """A web service's source for the local Render: listens on $HOST:$PORT, answers each GET with ``answer``."""
    return _SERVICE.replace("{prelude}", prelude).replace("{answer}", answer)


class LoopbackApp:
    """A tiny HTTP app on loopback whose answers come from ``respond`` (called with the request handler)."""

    def __init__(self, respond: Callable[[BaseHTTPRequestHandler], Answer], *, headers: Mapping[str, str] = {}):
        self.respond = respond
        self.headers = dict(headers)
        app = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                answer = app.respond(self)
                if answer is None:
                    return
                status, body = answer
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                if not isinstance(body, bytes):
                    self.send_header("Content-Type", "application/json")
                for key, value in app.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = answer

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="loopback-app", daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> LoopbackApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def invocation(project: Path, *, env: Mapping[str, str] | None = None, pipeline: str | None = None,
               **options: Any) -> Invocation:
    """An Invocation of ``project`` for in-process command tests: stdout/stderr captured, not interactive."""
    options.setdefault("interactive", False)
    return Invocation(pipeline=pipeline, project_dir=project, env=dict(env or {}), stdout=io.StringIO(),
                      stderr=io.StringIO(), **options)


def change_then_check(check: str, *, name: str = "change-then-check") -> str:
    """A two-stage pipeline: a compensable change to production (state.txt), then the shell command ``check``."""
    return (f"version: 1\nname: {name}\nstages:\n"
            "  - id: change\n    type: shell.run\n"
            '    with: {command: "echo changed > state.txt", changes_production: true, '
            'compensate_command: "echo undone > state.txt"}\n'
            f"  - id: check\n    type: shell.run\n    with: {{command: {json.dumps(check)}}}\n")


def wait_until(check: Callable[[], Any], what: str = "", *, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """``check()``'s first truthy value, asked every ``interval`` s; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


@dataclass(frozen=True)
class RenderOf:
    """A running local Render (``blueprint_render``): its repository, commits by label, the emulator, an API client,
    and the environment a deploypipe process needs to reach it."""

    repo: Any
    commits: dict[str, str]
    emulator: Any
    http: httpx.Client
    env: dict[str, str]

    def service(self, name: str) -> dict[str, Any]:
        """The service called ``name`` as the API lists it."""
        return self.http.get("/services", params={"name": name}).json()[0]["service"]


@contextmanager
def blueprint_render(root: Path, commits: Mapping[str, Mapping[str, str]], *, key: str,
                     **options: Any) -> Iterator[RenderOf]:
    """The local Render with real processes over 127.0.0.1, its services from the ``render.yaml`` of a fresh git
    repository under ``root`` whose commits are ``commits`` (label -> files, committed in order); ``options`` go to
    ``build_emulator`` (e.g. ``health_interval_s``). Stopped on exit."""
    from deploypipe.emulator import EmulatorServer, build_emulator
    from deploypipe.local.repo import LocalRepo

    repo = LocalRepo(root / "repo")
    repo.ensure()
    made = {label: repo.commit_change(dict(files), label) for label, files in commits.items()}
    emulator = build_emulator(blueprint=repo.path / "render.yaml", repo=repo.path, data_dir=root / "render",
                              api_keys=(key,), **options)
    with EmulatorServer(emulator) as server, httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
        env = {"PATH": os.environ["PATH"], "HOME": str(root), "CI": "true", "RENDER_API_URL": server.url,
               "RENDER_API_KEY": key}
        yield RenderOf(repo=repo, commits=made, emulator=emulator, http=http, env=env)
