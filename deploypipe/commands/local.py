"""The local default and the local Render, imported only when a command needs them (they come with deploypipe[local]).

A CI runner installs plain ``deploypipe``: ``plan``, ``deploy``, ``rollback``,
``status`` and ``lint`` of a pipeline without a ``local:`` section never import
the local Render, the local default or the replays. When a command that needs
them runs without the extra, it exits 2 saying what to install.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from deploypipe.core.yamlio import load_yaml
from deploypipe.errors import SpecError, UsageError

__all__ = ["LOCAL_EXTRA_HINT", "local_extra", "maybe_local"]

LOCAL_EXTRA_HINT = ("install deploypipe[local] (pip install 'deploypipe[local]'): the local Render, local default "
                    "and replays")


@contextlib.contextmanager
def local_extra(where: str) -> Iterator[None]:
    """Around imports of the local pieces: a package of the extra that is missing is a UsageError (exit 2)."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "deploypipe":
            raise
        raise UsageError(f"needs {exc.name}, which is not installed", where=where, hint=LOCAL_EXTRA_HINT) from None


def _local_section(inv: Any) -> dict[str, Any] | None:
    try:
        raw = load_yaml(inv.pipeline_path()).data
    except SpecError:  # the real load reports the problem with its exit code
        return None
    section = raw.get("local") if isinstance(raw, dict) else None
    return section if isinstance(section, dict) and section else None


@contextlib.contextmanager
def maybe_local(inv: Any, *, start: bool = True) -> Iterator[None]:
    """Run the block inside the local default when the invocation's pipeline has a ``local:`` section.

    With ``start=False`` (``plan``) nothing starts: the variables the local default would set are descriptions.
    """
    section = _local_section(inv)
    if section is None:
        yield
        return
    with local_extra(str(inv.pipeline_path())):
        from deploypipe.local.session import local_session
    with local_session(inv, section, start=start):
        yield
