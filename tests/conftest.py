"""Each pytest session keeps its temporary files in a directory of its own.

pytest's default base (``/tmp/pytest-of-<user>``) is shared by every session on the machine, and each session
resets it to mode 0700 when it starts. The embedded PostgreSQL runs as its own user (pgserver's ``pgserver``
when the tests run as root), so a second session starting while this one runs would lock this one's servers out
of their data directories. A session-private base (``--basetemp`` still wins) keeps concurrent sessions apart; it
is removed when every test passed and kept for a look otherwise.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="deploypipe-pytest-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own is not None and exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)


_OWN_BASETEMP = pytest.StashKey[str]()
