"""db.migrate in two phases on real PostgreSQL and Alembic: expand before the deploy, contract after; and the chain
order db.lint refuses."""

from __future__ import annotations

import sys

import pytest
from dbfixtures import sql
from test_seed_incidents import _runner, _users_at_0001

from deploypipe.errors import StageFailed
from deploypipe.stages.db import DbBackup, DbDryRun
from deploypipe.stages.db_checks import DbLint
from deploypipe.stages.db_migrate import DbMigrate

ADD_NICKNAME = 'op.add_column("users", sa.Column("nickname", sa.Text))'
DROP_NAME = 'op.drop_column("users", "name")'


def _migrate(project, phase: str) -> dict:
    return dict(database="main", command=project.upgrade, phase=phase,
                expand_command=f"{sys.executable} -m alembic upgrade {{revision}}")


def test_expand_runs_up_to_the_last_expand_migration_and_contract_runs_the_rest(alembic_project, new_db):
    url = new_db("phases")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002", "0001", ADD_NICKNAME, 'op.drop_column("users", "nickname")')
    alembic_project.revision("0003", "0002", DROP_NAME, 'op.add_column("users", sa.Column("name", sa.Text))')
    runner = _runner(alembic_project.root, url)
    lint = runner.run("lint", DbLint, database="main", tool="alembic", squawk=False)
    assert lint.outputs.phases == {"0002": "expand", "0003": "contract: drop-column users.name (line 2)"}
    runner.run("backup", DbBackup, database="main")
    runner.run("dry", DbDryRun, database="main", command=alembic_project.upgrade,
               later={"migrate": (DbMigrate, _migrate(alembic_project, "expand"))})
    expand = runner.run("migrate", DbMigrate, **_migrate(alembic_project, "expand"))
    assert expand.outputs.migrations == ["0002"] and expand.outputs.waiting == ["0003"]
    assert sql(url, "select version_num from alembic_version") == [("0002",)]  # name is still there for the live code
    assert expand.changed_production
    contract = runner.run("contract", DbMigrate, **_migrate(alembic_project, "contract"))
    assert contract.outputs.migrations == ["0003"] and contract.outputs.revision_after == "0003"
    assert contract.outputs.run.schema_changes == {"columns_removed": ["public.users.name text"]}


def test_a_contract_migration_before_an_expand_one_is_refused_by_lint_with_how_to_split_it(alembic_project, new_db):
    url = new_db("order")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002", "0001", DROP_NAME)
    alembic_project.revision("0003", "0002", ADD_NICKNAME)
    runner = _runner(alembic_project.root, url)
    one_phase = runner.run("lint", DbLint, database="main", tool="alembic", squawk=False)
    assert "phase-order" not in {f.rule for f in one_phase.outputs.findings}  # phase: all runs them all before
    with pytest.raises(StageFailed) as failed:
        runner.run("lint", DbLint, database="main", tool="alembic", squawk=False,
                   later={"migrate": (DbMigrate, _migrate(alembic_project, "expand"))})
    assert "[phase-order]" in str(failed.value)
    assert "migration 0002 is contract (drop-column users.name (line 2)) but comes before expand migration 0003" \
        in str(failed.value)


def test_a_failed_contract_phase_says_the_verified_release_keeps_serving_on_the_expanded_schema(
        alembic_project, new_db):
    url = new_db("contract_fails")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002", "0001", ADD_NICKNAME)
    alembic_project.revision("0003", "0002", 'op.create_unique_constraint("users_email_key", "users", ["email"])')
    runner = _runner(alembic_project.root, url)
    runner.run("lint", DbLint, database="main", tool="alembic", squawk=False)
    runner.run("backup", DbBackup, database="main")
    runner.run("dry", DbDryRun, database="main", command=alembic_project.upgrade,
               later={"migrate": (DbMigrate, _migrate(alembic_project, "expand"))})
    runner.run("migrate", DbMigrate, **_migrate(alembic_project, "expand"))
    sql(url, "insert into users (id, email) values (9999, 'u1')")  # written since the backup: a duplicate email
    with pytest.raises(StageFailed) as failed:
        runner.run("contract", DbMigrate, **_migrate(alembic_project, "contract"))
    message = str(failed.value)
    assert "the contract phase failed after the new release was verified: the production migration failed: " \
           'could not create unique index "users_email_key"' in message
    assert "the verified release keeps serving on the expanded schema (revision 0002); nothing was rolled back, " \
           "restored or downgraded" in message
    assert failed.value.production_changed is False
    assert sql(url, "select version_num from alembic_version") == [("0002",)]
