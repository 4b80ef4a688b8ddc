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

__all__ = ["maybe_local"]


@contextlib.contextmanager
def maybe_local(inv: Any) -> Iterator[None]:
    from deploypipe.core.yamlio import load_yaml

    path = inv.pipeline_path()
    try:
        raw = load_yaml(path).data
    except Exception:  # the real load reports the problem with its exit code
        raw = None
    if not (isinstance(raw, dict) and raw.get("local")):
        yield
        return
    from deploypipe.local.environment import LocalEnvironment

    env = LocalEnvironment.for_invocation(inv, raw.get("local") or {})
    with env.running() as overrides:
        inv.env = {**inv.env, **overrides}
        yield


def clean(inv: Any, *, everything: bool = False) -> int:
    """Stop what the local default started and remove ``.deploypipe/local`` (and runs/backups with ``everything``)."""
    import shutil

    from deploypipe.local.environment import stop_local

    stop_local(inv.state_dir / "local")
    removed = []
    targets = [inv.state_dir / "local"] + ([inv.state_dir / "runs", inv.state_dir / "backups"] if everything else [])
    for path in targets:
        if path.exists():
            shutil.rmtree(path)
            removed.append(str(path))
    print("removed " + ", ".join(removed) if removed else "nothing to remove")
    return 0
