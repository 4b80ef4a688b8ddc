"""The embedded local default: when a pipeline has a ``local:`` section, provide its production.

Starts (or reuses) an embedded PostgreSQL in ``.deploypipe/local/`` as
production and the local Render on loopback running the repository's
Blueprint, and points the run at them through the environment
(``RENDER_API_URL``, ``RENDER_API_KEY``, ``DATABASE_URL``) — the pipeline
itself is the same code that talks to Render.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

from deploypipe.local.environment import LocalEnvironment

__all__ = ["local_session"]


@contextlib.contextmanager
def local_session(inv: Any, section: Mapping[str, Any], *, start: bool = True) -> Iterator[None]:
    """Run the block inside the local default that the pipeline's ``local:`` ``section`` describes.

    With ``start=False`` (``plan``) nothing starts: the variables the local default would set are descriptions.
    """
    env = LocalEnvironment.for_invocation(inv, dict(section))
    if not start:
        inv.env = {**inv.env, **env.planned()}
        yield
        return
    with env.running() as overrides:
        inv.env = {**inv.env, **overrides}
        yield
