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


def _one_migrate(tmp_path, with_: str):
    path = tmp_path / "one.yaml"
    path.write_text("version: 1\nname: one\ntargets:\n  databases: {main: {url: \"postgresql://u@127.0.0.1/db\"}}\n"
                    f"stages:\n  - {{id: migrate, type: db.migrate, with: {{database: main, {with_}}}}}\n")
    return path


@pytest.mark.parametrize("with_, message", [
    ("tool: prisma, phase: all", "stages[0].with.command: tool prisma with phase all needs command (e.g. npx prisma "
                                 "migrate deploy); deploypipe applies only the expand phase of Prisma migrations "
                                 "itself"),
    ("phase: all", "stages[0].with.command: tool alembic needs command (e.g. alembic upgrade head)"),
    ("tool: sql, on_rollback: downgrade", "stages[0].with.on_rollback: on_rollback: downgrade needs a "
                                          "downgrade_command for tool sql"),
])
def test_a_db_migrate_without_the_command_its_tool_needs_is_refused_at_load_time(tmp_path, with_, message):
    with pytest.raises(SpecError) as error:
        load_pipeline(_one_migrate(tmp_path, with_), {})
    assert message in error.value.message and error.value.exit_code == 2
    assert error.value.where.startswith(str(tmp_path / "one.yaml"))


@pytest.mark.parametrize("with_", ["tool: sql", "tool: sql, phase: expand", "tool: prisma, phase: expand",
                                   "tool: prisma, command: npx prisma migrate deploy"])
def test_prisma_expand_and_sql_need_no_command(tmp_path, with_):
    assert load_pipeline(_one_migrate(tmp_path, with_), {}).params["migrate"].command in (None, "npx prisma migrate "
                                                                                                  "deploy")
