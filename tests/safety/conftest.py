"""Fixtures of the safety tests: the local Render on loopback, an embedded PostgreSQL, a project directory."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest
from harness import LocalRender

from deploypipe.core.embedded_pg import EmbeddedPostgres, start_embedded
from deploypipe.testing import FakeClock

_names = itertools.count()


@pytest.fixture
def render() -> Iterator[LocalRender]:
    """A local Render whose deploys go live at once; service ``api`` serves commit GOOD."""
    local = LocalRender()
    local.add_service("api")
    try:
        yield local
    finally:
        local.close()


@pytest.fixture
def slow_render() -> Iterator[LocalRender]:
    """A local Render whose deploys take 3 s to go live (rollbacks 1 s); ``api`` serves GOOD."""
    local = LocalRender(update_s=3.0, rollback_update_s=1.0)
    local.add_service("api")
    try:
        yield local
    finally:
        local.close()


@pytest.fixture(scope="session")
def pg() -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL for the session, outside pytest's basetemp (pgserver runs as its own user when we are
    root, and pytest makes basetemp 0700)."""
    data = Path(tempfile.mkdtemp(prefix="deploypipe-safety-pg-"))
    server = start_embedded(data)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def new_db(pg: EmbeddedPostgres) -> Callable[[str], str]:
    """Creates a fresh database per call; returns its URL."""

    def make(prefix: str = "safety") -> str:
        return pg.create_database(f"{prefix}_{next(_names)}")

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
