"""Fixtures for the ops tests: a running local default (embedded PostgreSQL + local Render), a local Render running
a cron job, and a webhook receiver."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helpers import blueprint_render, invocation, wait_until
from notify_fixtures import receiver  # noqa: F401

from deploypipe.commands.invocation import Invocation
from deploypipe.render.client import RenderClient
from deploypipe.render.models import Deploy, ServiceEvent

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


CRON_BLUEPRINT = textwrap.dedent("""\
    services:
      - type: cron
        name: nightly
        runtime: python
        branch: main
        schedule: "0 3 30 2 *"
        startCommand: python report.py
        autoDeploy: false
""")
# mode.txt says how a run of the commit ends; a run of any commit waits for ever while the file `hold` exists
CRON_REPORT = textwrap.dedent("""\
    import pathlib, sys, time
    print("loading yesterday's orders", flush=True)
    while pathlib.Path({hold!r}).exists():
        time.sleep(0.05)
    if pathlib.Path("mode.txt").read_text().strip() == "fail":
        print("Traceback (most recent call last):", file=sys.stderr, flush=True)
        print("RuntimeError: the nightly report could not reach the database", file=sys.stderr, flush=True)
        print("CRITICAL the nightly report was not sent", file=sys.stderr, flush=True)
        print("upload failed, giving up", flush=True)
        sys.exit(1)
    if pathlib.Path("mode.txt").read_text().strip() == "bare":
        print("the orders export is empty", flush=True)
        sys.exit(3)
    print("report sent", flush=True)
""")
CRON_PIPELINE = """\
version: 1
name: cron-status
variables:
  RENDER_API_KEY: {{secret: true}}
targets:
  services:
    nightly: {{name: nightly, kind: cron, repo_dir: "{repo}"}}
stages:
  - id: preflight
    type: render.preflight
"""


@dataclass
class LocalCron:
    """A local Render over loopback running the cron job ``nightly`` as real processes: commits ``fail`` (its runs
    exit 1 after a traceback), ``bare`` (exit 3 after a line no error pattern matches) and ``ok`` (exit 0); ``hold``
    keeps a run going while the file exists."""

    project: Path
    repo: Path
    commits: dict[str, str]
    env: dict[str, str]
    hold: Path

    def client(self) -> RenderClient:
        return RenderClient.from_env(self.env)

    def deploy(self, mode: str) -> Deploy:
        """Deploy the ``mode`` commit and wait until it is live."""
        with self.client() as client:
            service = client.find_service("nightly")
            started = client.trigger_deploy(service.id, self.commits[mode])
            done = client.wait_for_deploy(service.id, started.id, timeout_s=90, poll_s=0.2, max_poll_s=0.5)
        assert done.status == "live", done
        return done

    def ended(self, run_id: str) -> ServiceEvent:
        """The run's ``cron_job_run_ended`` event, waited for."""
        with self.client() as client:
            service = client.find_service("nightly")
            return wait_until(lambda: next((e for e in client.list_events(service.id, types=["cron_job_run_ended"])
                                            if e.details.get("cronJobRunId") == run_id), None),
                              f"cron_job_run_ended of {run_id}", timeout=60)

    def run(self) -> ServiceEvent:
        """Trigger a run through the API (``POST /cron-jobs/{id}/runs``) and wait until it ended."""
        with self.client() as client:
            run = client.trigger_cron_run(client.find_service("nightly").id)
        return self.ended(run.id)

    def invocation(self) -> Invocation:
        (self.project / "cron.yaml").write_text(CRON_PIPELINE.format(repo=self.repo))
        return invocation(self.project, env=self.env, pipeline="cron.yaml")


@pytest.fixture(scope="module")
def local_cron(tmp_path_factory):
    """The local Render with the cron job ``nightly`` deployed from a git repository, serving on 127.0.0.1."""
    root = tmp_path_factory.mktemp("cron-status")
    hold = root / "hold"
    report = CRON_REPORT.format(hold=str(hold))
    commits = {mode: {"render.yaml": CRON_BLUEPRINT, "report.py": report, "mode.txt": mode}
               for mode in ("bare", "ok", "fail")}
    with blueprint_render(root, commits, key="rnd_cron_status_e2e", auto_deploy_poll_s=0) as render:
        yield LocalCron(project=root, repo=render.repo.path, commits=render.commits, env=render.env, hold=hold)
