"""``replay``: replay a seed incident against the local default, or list the replays."""

from __future__ import annotations

import json

from deploypipe.commands.invocation import Invocation, load
from deploypipe.commands.local import maybe_local
from deploypipe.commands.run import run_pipeline
from deploypipe.replays.catalogue import REPLAYS
from deploypipe.replays.engine import production_state, run_replay, served_service

__all__ = ["list_replays", "replay"]


def list_replays(inv: Invocation) -> int:
    for item in REPLAYS.values():
        inv.out.write(f"{item.name:<26} exit {item.expected_exit}  {item.title}  (seed {item.seed})\n")
    return 0


def replay(inv: Invocation, name: str, *, as_json: bool) -> int:
    """Deploy the good release first when nothing is live, then make the seed's bad change and run the pipeline."""
    if name in REPLAYS and not REPLAYS[name].traffic:  # row counts must stay exactly as they were
        inv.env = {**inv.env, "DEPLOYPIPE_LOCAL_TRAFFIC": "off", "DEPLOYPIPE_TRAFFIC_WINDOW_S": "2"}
    with maybe_local(inv):
        env = dict(inv.env)
        if production_state(env, *served_service(load(inv)))["commit"] is None:
            inv.err.write("replay: nothing is live yet; deploying the good release first\n")
            baseline = run_pipeline(inv)
            if baseline.exit_code != 0:
                inv.err.write(f"replay: the baseline deploy failed: {baseline.message}\n")
                return baseline.exit_code
        result = run_replay(name, env=env, load=lambda: load(inv), run=lambda loaded: run_pipeline(inv, loaded=loaded))
    if as_json:
        inv.out.write(json.dumps({"replay": name, "exit_code": result.exit_code, "unharmed": result.unharmed,
                                  "seconds": result.seconds, "before": result.before, "after": result.after,
                                  "runs": [r.to_json() for r in result.runs]}, indent=2, default=str) + "\n")
    else:
        inv.out.write(result.summary() + "\n")
    return result.exit_code
