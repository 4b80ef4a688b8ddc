"""``clean``: stop and remove the embedded local default (and with ``--all`` the run records and backups)."""

from __future__ import annotations

import shutil

from deploypipe.commands.invocation import Invocation
from deploypipe.local.environment import stop_local

__all__ = ["clean"]


def clean(inv: Invocation, *, everything: bool = False) -> int:
    stop_local(inv.state_dir / "local")
    removed = []
    targets = [inv.state_dir / "local"] + ([inv.state_dir / "runs", inv.state_dir / "backups"] if everything else [])
    for path in targets:
        if path.exists():
            shutil.rmtree(path)
            removed.append(str(path))
    inv.out.write(("removed " + ", ".join(removed) if removed else "nothing to remove") + "\n")
    return 0
