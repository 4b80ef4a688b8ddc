"""The embedded local default: when a pipeline has a ``local:`` section, provide its production.

Starts (or reuses) an embedded PostgreSQL in ``.deploypipe/local/`` as
production and the local Render on loopback running the repository's
Blueprint, and points the run at them through the environment
(``RENDER_API_URL``, ``RENDER_API_KEY``, ``DATABASE_URL``) — the pipeline
itself is the same code that talks to Render.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from deploypipe.core.yamlio import load_yaml
from deploypipe.errors import SpecError, UsageError

__all__ = ["maybe_local"]


@contextlib.contextmanager
def maybe_local(inv: Any, *, start: bool = True) -> Iterator[None]:
    """Run the block inside the local default when the invocation's pipeline has a ``local:`` section.

    With ``start=False`` (``plan``) nothing starts: the variables the local default would set are descriptions.
    """
    path = inv.pipeline_path()
    try:
        raw = load_yaml(path).data
    except SpecError:  # the real load reports the problem with its exit code
        raw = None
    if not (isinstance(raw, dict) and raw.get("local")):
        yield
        return
    try:
        from deploypipe.local.environment import LocalEnvironment
    except ModuleNotFoundError as exc:
        raise UsageError(f"the pipeline's local: section needs {exc.name}, which the plain install leaves out",
                         where=str(path), hint="pip install 'deploypipe[local]'") from exc
    env = LocalEnvironment.for_invocation(inv, raw.get("local") or {})
    if not start:
        inv.env = {**inv.env, **env.planned()}
        yield
        return
    with env.running() as overrides:
        inv.env = {**inv.env, **overrides}
        yield

