"""The local default started once per module (``local``), and a fresh copy of its files (``project_copy``)."""

from __future__ import annotations

import shutil

import pytest
from local_default import _private_tmp, make_project, running_local


@pytest.fixture(scope="module")
def local():
    """(project dir, invocation inside a running local default); stopped at the end of the module."""
    with running_local("deploypipe-local-") as started:
        yield started


@pytest.fixture
def project_copy():
    """A fresh copy of the local default's files (nothing started)."""
    project = make_project(_private_tmp("deploypipe-project-"))
    yield project
    from deploypipe.local.environment import stop_local

    stop_local(project / ".deploypipe" / "local")
    shutil.rmtree(project, ignore_errors=True)
