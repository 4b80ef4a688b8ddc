"""Each migration's phase (deploypipe.db.phases): which statements the live release survives, and the chain's order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploypipe.db.phases import MigrationPhase, OverrideError, classify, order_problem, split_alembic_sql

SAMPLEAPP = Path(__file__).resolve().parents[2] / "examples" / "sampleapp"


@pytest.mark.parametrize(("sql", "rule", "reason"), [
    ("ALTER TABLE notes DROP COLUMN author", "drop-column", "notes.author"),
    ("ALTER TABLE notes RENAME COLUMN author TO writer", "rename", "notes.author -> writer"),
    ("ALTER TABLE notes RENAME TO posts", "rename", "notes -> posts"),
    ("ALTER TABLE notes ALTER COLUMN body TYPE varchar(80)", "change-type", "notes.body"),
    ("ALTER TABLE notes ALTER COLUMN author SET NOT NULL", "set-not-null", "notes.author"),
    ("ALTER TABLE notes ALTER COLUMN author DROP DEFAULT", "drop-default", "notes.author"),
    ("ALTER TABLE notes DROP CONSTRAINT notes_body_key", "drop-constraint", "notes_body_key on notes"),
    ("ALTER TABLE notes ADD COLUMN rank int NOT NULL", "add-not-null-column", "notes.rank"),
    ("ALTER TABLE notes ADD CONSTRAINT body_short CHECK (length(body) < 80)", "add-constraint", "body_short on notes"),
    ("DROP TABLE notes", "drop-table", "notes"),
    ("DROP VIEW public.recent", "drop-view", "public.recent"),
    ("DROP FUNCTION note_count(int)", "drop-function", "note_count"),
    ("DROP TYPE mood", "drop-type", "mood"),
    ("TRUNCATE notes", "truncate", "notes"),
    ("DELETE FROM notes WHERE author IS NULL", "delete", "notes"),
])
def test_a_statement_the_live_release_may_not_survive_is_contract_and_named(sql: str, rule: str, reason: str) -> None:
    migration = classify("0003", sql)
    assert migration.phase == "contract"
    assert [(s.rule, s.reason, s.lock_only) for s in migration.contract] == [(rule, reason, False)]
    assert migration.summary() == f"contract: {rule} {reason} (line 1)"


@pytest.mark.parametrize("sql", [
    "CREATE TABLE tags (id serial PRIMARY KEY, name text NOT NULL)",
    "ALTER TABLE notes ADD COLUMN author text",
    "ALTER TABLE notes ADD COLUMN rank int NOT NULL DEFAULT 0",
    "ALTER TABLE notes ALTER COLUMN author SET DEFAULT 'anonymous'",
    "ALTER TABLE notes ADD CONSTRAINT body_short CHECK (length(body) < 80) NOT VALID",
    "CREATE INDEX CONCURRENTLY notes_author ON notes (author)",
    "CREATE INDEX notes_author ON notes (author)",
    "UPDATE notes SET author = 'anonymous' WHERE author IS NULL",
    "INSERT INTO alembic_version (version_num) VALUES ('0003')",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "DROP INDEX notes_author",
    "SET lock_timeout = '2s'",
])
def test_a_statement_the_live_release_keeps_working_on_is_expand(sql: str) -> None:
    migration = classify("0003", sql)
    assert migration.phase == "expand" and migration.contract == ()
    assert migration.summary() == "expand"


def test_a_non_concurrent_index_on_a_big_table_is_named_as_a_lock() -> None:
    migration = classify("0003", "CREATE INDEX notes_author ON notes (author)", big_tables={"notes"})
    assert migration.phase == "contract"
    assert [(s.rule, s.lock_only) for s in migration.contract] == [("index-lock", True)]
    assert "CREATE INDEX CONCURRENTLY" in migration.contract[0].reason
    assert classify("0003", "CREATE INDEX CONCURRENTLY a ON notes (author)", big_tables={"notes"}).phase == "expand"


def test_statements_on_a_table_the_migration_creates_are_expand() -> None:
    sql = ("CREATE TABLE tags (id int);\nALTER TABLE tags ADD COLUMN name text NOT NULL;\n"
           "ALTER TABLE tags ALTER COLUMN id SET NOT NULL;\nALTER TABLE tags RENAME COLUMN name TO label;\n"
           "CREATE INDEX tags_label ON tags (label);")
    assert classify("0003", sql, big_tables={"tags"}).phase == "expand"


def test_each_contract_statement_is_named_with_its_line() -> None:
    sql = "ALTER TABLE notes ADD COLUMN writer text;\n\nUPDATE notes SET writer = author;\nALTER TABLE notes DROP COLUMN author;\n"
    migration = classify("0003", sql)
    assert [s.phase for s in migration.statements] == ["expand", "expand", "contract"]
    assert migration.summary() == "contract: drop-column notes.author (line 4)"


def test_an_override_with_a_reason_makes_a_contract_migration_expand() -> None:
    source = "-- deploypipe: expand (reason: no release since 41 reads notes.author)\nALTER TABLE notes DROP COLUMN author;"
    migration = classify("0003", source)
    assert migration.phase == "expand" and migration.override == "no release since 41 reads notes.author"
    assert migration.summary() == "expand (override: no release since 41 reads notes.author)"
    python_source = '"""drop author"""\n# deploypipe: expand (reason: unused column)\ndef upgrade(): ...\n'
    assert classify("0003", "ALTER TABLE notes DROP COLUMN author", source=python_source).phase == "expand"


@pytest.mark.parametrize("marker", ["-- deploypipe: expand", "-- deploypipe: expand (reason: )",
                                    "# deploypipe: expand because I say so"])
def test_an_override_without_a_reason_is_refused_naming_its_line(marker: str) -> None:
    with pytest.raises(OverrideError, match=r"^line 2: 'deploypipe: expand' needs a reason"):
        classify("0003", "ALTER TABLE notes DROP COLUMN author", source=f"'''doc'''\n{marker}\n")


def _chain(*phases: str) -> list[MigrationPhase]:
    sql = {"expand": "ALTER TABLE notes ADD COLUMN c text", "contract": "ALTER TABLE notes DROP COLUMN author"}
    return [classify(f"000{i + 1}", sql[phase]) for i, phase in enumerate(phases)]


def test_a_chain_with_expand_before_contract_runs_in_two_phases() -> None:
    assert order_problem(_chain("expand", "expand", "contract", "contract")) is None
    assert order_problem(_chain("expand")) is None
    assert order_problem([]) is None


def test_a_contract_migration_before_an_expand_one_is_refused_with_how_to_split() -> None:
    problem = order_problem(_chain("expand", "contract", "expand"))
    assert problem == (
        "migration 0002 is contract (drop-column notes.author (line 1)) but comes before expand migration 0003; "
        "contract migrations run only after the new release is verified, so split the release: ship 0003 (and every "
        "expand migration) first, then 0002 in a later release, or move the contract statements into a migration "
        "after the last expand one")


def test_alembic_offline_sql_is_cut_per_migration_as_alembic_prints_it() -> None:
    result = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "heads", "--sql"], cwd=SAMPLEAPP,
                            capture_output=True, text=True, check=True,
                            env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    steps = split_alembic_sql(result.stdout)
    assert [revision for revision, _ in steps] == ["0001", "0002"]
    assert "CREATE TABLE notes" in steps[0][1] and "ADD COLUMN author" not in steps[0][1]
    assert [classify(revision, sql).phase for revision, sql in steps] == ["expand", "expand"]


def test_offline_sql_without_a_migration_step_has_no_migrations() -> None:
    assert split_alembic_sql("") == []
    assert split_alembic_sql("BEGIN;\nCOMMIT;\n") == []
