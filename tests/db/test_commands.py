"""``invoke backup`` / ``invoke restore`` functions: verified manual backups, guarded restores into production."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from dbfixtures import sql

from deploypipe.db.commands import backup_command, production_match, restore_command
from deploypipe.errors import UsageError
from deploypipe.spec.targets import DatabaseTarget, Targets


def _targets(prod: str, staging: str) -> Targets:
    return Targets(databases={"main": DatabaseTarget(url=prod), "staging": DatabaseTarget(url=staging, production=False)})


@pytest.fixture
def world(new_db, tmp_path):
    prod, staging = new_db("cmd_prod"), new_db("cmd_staging")
    sql(prod, "create table t (id int primary key); insert into t select generate_series(1, 50)")
    result = backup_command(url=prod, backups_dir=tmp_path / "b", run_id="manual-1", keep=5)
    yield prod, staging, _targets(prod, staging), result


def test_manual_backup_is_verified_on_a_throwaway_staging_server(world):
    _, _, _, result = world
    assert result["verified"] and result["verification"]["ok"] and result["row_counts"] == {"public.t": 50}
    assert [c["check"] for c in result["verification"]["checks"]] == [
        "restore", "sha256", "pg_restore_list", "post_data", "row_counts", "table_hashes"]


def test_restore_into_a_non_production_target_needs_no_flag(world, tmp_path):
    _, staging, targets, result = world
    restored = restore_command(backups_dir=tmp_path / "b", backup_id=result["backup_id"], target="staging",
                               targets=targets)
    assert restored["ok"] and restored["production_target"] is None
    assert sql(staging, "select count(*) from t") == [(50,)]


def test_restore_into_production_is_refused_without_the_flag_and_a_reason(world, tmp_path):
    prod, _, targets, result = world
    sql(prod, "delete from t where id > 10")
    with pytest.raises(UsageError, match="is the production database 'main'.*--yes-i-mean-production"):
        restore_command(backups_dir=tmp_path / "b", backup_id=result["backup_id"], target=prod, targets=targets)
    with pytest.raises(UsageError, match="needs --reason"):
        restore_command(backups_dir=tmp_path / "b", backup_id=result["backup_id"], target="main", targets=targets,
                        yes_i_mean_production=True)
    assert sql(prod, "select count(*) from t") == [(10,)]


def test_restore_into_production_with_flag_and_reason_records_who_when_and_why(world, tmp_path):
    prod, _, targets, result = world
    sql(prod, "delete from t")
    when = datetime(2025, 10, 20, 17, 25, tzinfo=UTC)
    restored = restore_command(backups_dir=tmp_path / "b", backup_id=result["backup_id"], target=prod,
                               targets=targets, yes_i_mean_production=True, reason="INC-4 bad migration",
                               user="alice", host="laptop", now=lambda: when)
    assert restored["ok"] and sql(prod, "select count(*) from t") == [(50,)]
    audit = [json.loads(line) for line in (tmp_path / "b" / "restore-audit.jsonl").read_text().splitlines()]
    assert audit[-1]["who"] == "alice@laptop" and audit[-1]["why"] == "INC-4 bad migration"
    assert audit[-1]["when"] == "2025-10-20T17:25:00+00:00" and audit[-1]["production_target"] == "main"


def test_a_url_with_the_production_database_name_on_another_host_counts_as_production(world):
    prod, _, targets, _ = world
    name = prod.split("/")[3].split("?")[0]
    assert production_match(f"postgresql://someone:pw@elsewhere.example:5432/{name}", targets) == "main"
    assert production_match("postgresql://someone:pw@elsewhere.example:5432/other_db", targets) is None
