"""Fixtures for the ops tests: a running local default (embedded PostgreSQL + local Render) and a webhook receiver."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helpers import invocation
from notify_fixtures import receiver  # noqa: F401

from deploypipe.commands.invocation import Invocation
from deploypipe.render.client import RenderClient
from deploypipe.render.models import Deploy

ROOT = Path(__file__).resolve().parents[2]

WATCHED = """\
version: 1
name: watched
variables:
  RENDER_API_KEY: {{secret: true}}
  DATABASE_URL: {{secret: true}}
targets:
  services:
    web: {{name: sampleapp, repo_dir: "{repo}"}}
  databases:
    main: {{url: "${{DATABASE_URL}}"}}
stages:
  - id: preflight
    type: render.preflight
"""


@dataclass
class LocalRender:
    """The local default, running: its project, the invocation inside it, and ways to make deploys happen."""

    project: Path
    inv: Invocation

    @property
    def repo(self) -> Path:
        return Path(self.inv.env["DEPLOYPIPE_LOCAL_REPO"])

    @property
    def env(self) -> dict[str, str]:
        """What a `deploypipe status` process needs to reach the local Render (and nothing else)."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL",
                                                                             "GITHUB_", "NOTIFY_"))}
        return {**keep, "RENDER_API_URL": self.inv.env["RENDER_API_URL"],
                "RENDER_API_KEY": self.inv.env["RENDER_API_KEY"], "CI": "true"}

    def git(self, *args: str, hours_ago: float = 0) -> str:
        stamp = f"@{int(time.time() - hours_ago * 3600)} +0000"
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t.invalid", "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        return subprocess.run(["git", "-C", str(self.repo), *args], env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(self, name: str, hours_ago: float) -> str:
        (self.repo / "examples" / name).write_text(f"{name}\n")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"add {name}", hours_ago=hours_ago)
        return self.git("rev-parse", "HEAD")

    def deploy(self, fail: str | None = None, commit: str | None = None) -> Deploy:
        """Deploy ``commit`` (default HEAD) and wait; ``fail`` (build, update) makes it fail that way."""
        with RenderClient.from_env(self.inv.env) as client:
            service = client.find_service("sampleapp")
            if fail:
                base = self.inv.env["RENDER_API_URL"].removesuffix("/v1")
                httpx.post(f"{base}/_emulator/faults", json={"action": "fail_deploy", "service": "sampleapp",
                                                             "phase": fail}, trust_env=False).raise_for_status()
            started = client.trigger_deploy(service.id, commit or self.git("rev-parse", "HEAD"))
            done = client.wait_for_deploy(service.id, started.id, timeout_s=90, poll_s=0.2, max_poll_s=0.5)
        assert done.status == ("live" if not fail else f"{fail}_failed"), done
        return done

    def pipeline(self, name: str = "watch.yaml") -> Path:
        path = self.project / name
        path.write_text(WATCHED.format(repo=self.repo))
        return path

    def invocation(self, pipeline: str = "watch.yaml") -> Invocation:
        self.pipeline(pipeline)
        return invocation(self.project, env=self.env, pipeline=pipeline)


@pytest.fixture(scope="package")
def local_render():
    """The local default of a copy of this repository, started once for the ops tests and stopped at the end."""
    from deploypipe.commands.local import maybe_local

    project = Path(tempfile.mkdtemp(prefix="deploypipe-ops-"))  # outside pytest's basetemp (pgserver's own user)
    for name in ("render.yaml", "examples", "pipelines"):
        source = ROOT / name
        (shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
         if source.is_dir() else shutil.copy2(source, project / name))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL"))}
    inv = invocation(project, env={**env, "CI": "true"}, pipeline="pipelines/local.yaml", json_output=True)
    try:
        with maybe_local(inv):
            yield LocalRender(project, inv)
    finally:
        shutil.rmtree(project, ignore_errors=True)
