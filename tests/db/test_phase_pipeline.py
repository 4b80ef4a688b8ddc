"""A pipeline's contract phase is placed after its expand phase and the deploy, with on_failure: stop (exit 2)."""

from __future__ import annotations

import pytest

from deploypipe.engine.loader import load_pipeline
from deploypipe.errors import SpecError

PIPELINE = """version: 1
name: phases
targets:
  services: {{api: {{name: api}}}}
  databases: {{main: {{url: "postgresql://u@127.0.0.1/db"}}}}
stages:
  - {{id: migrate, type: db.migrate, with: {{database: main, command: "alembic upgrade head", phase: {first}}}}}
  - {{id: deploy, type: render.deploy, with: {{service: api}}}}
  - id: contract
    type: db.migrate
{on_failure}    with: {{database: main, command: "alembic upgrade head", phase: contract}}
"""


def write(tmp_path, first="expand", on_failure="    on_failure: stop\n"):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(first=first, on_failure=on_failure))
    return path


def test_a_contract_phase_after_expand_and_deploy_with_on_failure_stop_loads(tmp_path):
    loaded = load_pipeline(write(tmp_path), {})
    assert loaded.params["contract"].phase == "contract"


def test_a_contract_phase_that_would_roll_back_the_verified_release_is_refused(tmp_path):
    with pytest.raises(SpecError) as error:
        load_pipeline(write(tmp_path, on_failure=""), {})
    assert "stages[2].on_failure: a contract phase must say on_failure: stop" in error.value.message
    assert error.value.exit_code == 2


def test_a_contract_phase_without_an_expand_phase_before_it_is_refused(tmp_path):
    with pytest.raises(SpecError) as error:
        load_pipeline(write(tmp_path, first="all"), {})
    assert "stages[2].with.phase: a contract phase of database main must come after db.migrate with phase: " \
           "expand" in error.value.message
