"""The local default for tests/local: a copy of this repository's render.yaml, examples/ and pipelines/, an
invocation of it, started (``running_local``) or started with its good release live (``released_local``).

A module of its own name: test modules import it as ``local_default`` (``from conftest import`` would take whichever
folder's conftest was imported first)."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.local import maybe_local
from deploypipe.commands.run import run_pipeline
from deploypipe.stages.report import Report

ROOT = Path(__file__).resolve().parents[2]


def make_project(tmp: Path) -> Path:
    for name in ("render.yaml", "examples", "pipelines"):
        source = ROOT / name
        (shutil.copytree(source, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
         if source.is_dir() else shutil.copy2(source, tmp / name))
    return tmp


def invocation(project: Path, *, traffic: bool = False, **kwargs) -> Invocation:
    """An invocation of the project's local default; without ``traffic`` no traffic runs and the traffic window
    is 2 s (the analysis then warns: inconclusive), so tests that are not about traffic stay quick and exact."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL"))}
    env.update({"DEPLOYPIPE_OBSERVE_S": "2", "CI": "true"})
    if not traffic:
        env.update({"DEPLOYPIPE_LOCAL_TRAFFIC": "off", "DEPLOYPIPE_TRAFFIC_WINDOW_S": "2"})
    kwargs.setdefault("json_output", True)
    return Invocation(pipeline="pipelines/local.yaml", project_dir=project, env=env, stdout=io.StringIO(),
                      stderr=io.StringIO(), interactive=False, **kwargs)


def _private_tmp(prefix: str) -> Path:
    """A temp dir outside pytest's basetemp: pytest resets /tmp/pytest-of-<user> to 0700 at every session start,
    which locks out the embedded PostgreSQL's own user (pgserver runs it as `pgserver` when we are root)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=prefix))


@contextmanager
def running_local(prefix: str, *, traffic: bool = False) -> Iterator[tuple[Path, Invocation]]:
    """A copy of the local default, started; stopped and removed on exit."""
    project = make_project(_private_tmp(prefix))
    inv = invocation(project, traffic=traffic)
    try:
        with maybe_local(inv):
            yield project, inv
    finally:
        shutil.rmtree(project, ignore_errors=True)


@contextmanager
def released_local(prefix: str, **env: str) -> Iterator[tuple[Path, Invocation, Report]]:
    """A running local default with its own traffic and ``env``, its good release live; (project, invocation, the
    first release's report)."""
    with running_local(prefix, traffic=True) as (project, inv):
        inv.env = {**inv.env, **env}
        first = run_pipeline(inv)
        assert first.exit_code == 0, first.message
        yield project, inv, first
