"""Every incident replay gives its stated exit code and leaves production's data and serving commit as they were.

The replays judged on traffic (partial-outage) run in test_traffic.py, where the local default sends traffic.
"""

from __future__ import annotations

import pytest

from deploypipe.commands.invocation import load
from deploypipe.commands.run import run_pipeline
from deploypipe.replays.catalogue import REPLAYS
from deploypipe.replays.engine import production_state, run_replay

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def baseline(local):
    project, inv = local
    if production_state(dict(inv.env), "sampleapp")["commit"] is None:
        report = run_pipeline(inv)
        assert report.exit_code == 0, report.message
    return inv


@pytest.mark.parametrize("name", [name for name, replay in REPLAYS.items() if not replay.traffic])
def test_replay_is_stopped_or_undone_and_production_is_unharmed(baseline, name):
    inv = baseline
    result = run_replay(name, env=dict(inv.env), load=lambda: load(inv), run=lambda loaded: run_pipeline(inv, loaded=loaded))
    replay = REPLAYS[name]
    assert result.exit_code == replay.expected_exit, result.summary()
    assert result.unharmed, result.summary()
    first = result.runs[0]
    stopped = [s for s in first.stages if s.status in ("failed", "errored")]
    assert stopped and stopped[0].type == replay.expected_stage, result.summary()
    summary = result.summary()
    assert replay.seed in summary and "unharmed" in summary
    if name == "transaction-cascade":
        assert "current transaction is aborted" in result.runs[1].message
    if name == "failed-migration-state":
        assert result.resolved is True and result.runs[1].exit_code == 0
    if name == "broken-release":
        assert first.rollback.verified is True
