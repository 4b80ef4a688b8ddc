"""`deploypipe lint PATH ...`: what each kind of path gets, exit codes, ignore comments, and no run directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lint_fixtures import LONG, MIGRATE, OR_TRUE, RESOLVE, SEED_000, lint, write

from deploypipe.errors import UsageError

DEPLOYPIPE = str(Path(sys.executable).parent / "deploypipe")
ROOT = Path(__file__).resolve().parents[2]

ADD_REQUIRED = """\
-- embeddings for search
CREATE EXTENSION IF NOT EXISTS vector WITH VERSION "0.5.1";

ALTER TABLE users
  ADD COLUMN embedding_model text NOT NULL;
CREATE UNIQUE INDEX users_email ON users (email);
"""
NOT_NULL = ("migration 20251101000000_vector: ADD COLUMN users.embedding_model NOT NULL without a DEFAULT fails on a "
            "table that has rows; instead: add it nullable, backfill, then SET NOT NULL; or give it a DEFAULT")
UNIQUE = ("migration 20251101000000_vector: a unique index on existing table users fails if production already has "
          "duplicates; instead: the dry run on a copy of production data proves it; deduplicate first if it fails")
VECTOR = ('migration 20251101000000_vector: not checked offline: whether the production server offers vector "0.5.1" '
          "needs its pg_available_extension_versions; instead: the pipeline's db.lint stage checks it against the "
          "server before each deploy")
PIPELINE = """\
version: 1
name: backend
variables:
  RENDER_API_KEY: {secret: true}
  DATABASE_URL: {secret: true}
targets:
  services:
    api: {name: sentia-backend-prod}
  databases:
    main: {url: "${DATABASE_URL}"}
stages:
  - id: blueprint
    type: lint.blueprint
  - id: migration-lint
    type: db.lint
    with: {database: main, tool: prisma, squawk: false,
           ignore: [{rule: unique-index-on-existing-table, migration: "2025*", reason: "users has no duplicates"}]}
"""
MONKEYPATCH = """\
from alembic import op

op.execute = lambda *args: None


def upgrade():
    pass
"""


def test_a_pipeline_is_linted_offline_its_blueprint_and_its_migrations_without_a_database(tmp_path):
    migrations = "prisma/migrations/"
    write(tmp_path, {"p.yaml": PIPELINE, "render.yaml": SEED_000,
                     migrations + "20251017171256_init/migration.sql": "CREATE TABLE users (id int, email text);\n",
                     migrations + "20251101000000_vector/migration.sql": ADD_REQUIRED})
    code, out = lint(tmp_path, "p.yaml")  # no DATABASE_URL: nothing connects
    assert out.splitlines() == [
        "render.yaml:7:5: warning [long-start-chain] " + LONG,
        "render.yaml:9:7: error [migrate-resolve] " + RESOLVE,
        "render.yaml:9:7: error [or-true] " + OR_TRUE,
        "render.yaml:10:7: error [migration-in-start-command] " + MIGRATE,
        "prisma/migrations/20251017171256_init/migration.sql: info [migration-phase] migration 20251017171256_init: "
        "expand",
        "prisma/migrations/20251101000000_vector/migration.sql:2:1: info [extension-version-unavailable] " + VECTOR,
        "prisma/migrations/20251101000000_vector/migration.sql:4: info [migration-phase] migration "
        "20251101000000_vector: contract: add-not-null-column users.embedding_model (line 4)",
        "prisma/migrations/20251101000000_vector/migration.sql:4:1: error [not-null-without-default] " + NOT_NULL,
        "prisma/migrations/20251101000000_vector/migration.sql:6:1: info [unique-index-on-existing-table] " + UNIQUE
        + " (ignored: users has no duplicates)",
        "4 errors, 1 warning, 4 info in 4 files",
    ]
    assert code == 1


def test_a_pipeline_with_a_mistake_is_one_finding_at_its_file_and_line(tmp_path):
    write(tmp_path, {"p.yaml": "version: 1\nname: x\nstages:\n  - id: a\n    type: shell.run\n"
                               "    with: {command: x, comand: y}\n"})
    code, out = lint(tmp_path, "p.yaml")
    assert out.splitlines() == [
        "p.yaml:6: error [pipeline-invalid] stages[0].with.comand: unknown key 'comand'; expected one of: "
        "changes_production, command, compensate_command, cwd, env, retry_on_exit_codes",
        "1 error in 1 file"]
    assert code == 1


def test_the_default_is_the_pipeline_and_the_local_default_lints_clean_with_infos_only(tmp_path):
    for name in ("render.yaml", "pipelines", "examples"):
        source = ROOT / name
        (shutil.copytree(source, tmp_path / name) if source.is_dir() else shutil.copy2(source, tmp_path / name))
    code, out = lint(tmp_path)
    stage_line = (tmp_path / "pipelines" / "local.yaml").read_text().splitlines().index("  - id: migration-lint") + 1
    assert out.splitlines() == [
        f"pipelines/local.yaml:{stage_line}: info [alembic-sql-not-checked] stage migration-lint: offline, only the Alembic "
        "scripts are checked; the SQL rules, squawk and extension versions run on the pending revisions' SQL in the "
        "db.lint stage, against the production server",
        f"pipelines/local.yaml:{stage_line}: info [migration-phase] migration 0001: expand",
        f"pipelines/local.yaml:{stage_line}: info [migration-phase] migration 0002: expand",
        "3 info in 4 files"]
    assert code == 0
    assert lint(tmp_path, fail_on="info")[0] == 1


def test_a_migrations_directory_lints_every_sql_file_and_alembic_revision_in_it(tmp_path):
    write(tmp_path, {"db/prisma/migrations/20251101000000_vector/migration.sql": ADD_REQUIRED,
                     "db/alembic/versions/0004_patch.py": MONKEYPATCH, "db/alembic/env.py": "op = None\n",
                     "db/notes.txt": "not a migration\n"})
    code, out = lint(tmp_path, "db")
    lines = out.splitlines()
    sql = "db/prisma/migrations/20251101000000_vector/migration.sql"
    ours = [line for line in lines if "[squawk:" not in line]
    assert ours == [
        "db/alembic/versions/0004_patch.py:3:1: error [alembic-op-monkeypatch] migration 0004_patch: op.execute = ... "
        "replaces Alembic's operation for everything that runs after it; one failed statement then aborts the "
        "transaction and every later operation fails with 'current transaction is aborted'; instead: call the safe "
        "helper explicitly where needed instead of patching op",
        f"{sql}:2:1: info [extension-version-unavailable] " + VECTOR,
        f"{sql}:4: info [migration-phase] migration 20251101000000_vector: contract: add-not-null-column "
        "users.embedding_model (line 4)",
        f"{sql}:4:1: error [not-null-without-default] " + NOT_NULL,
        f"{sql}:6:1: warning [unique-index-on-existing-table] " + UNIQUE,
        lines[-1]]
    squawk = [line.split(" migration ")[0] for line in lines if "[squawk:" in line]
    assert squawk == [f"{sql}:5: warning [squawk:adding-required-field]",
                      f"{sql}:6: warning [squawk:require-concurrent-index-creation]"]
    assert lines[-1] == "2 errors, 3 warnings, 2 info in 2 files" and code == 1


def test_a_sql_syntax_error_is_a_finding_at_its_line(tmp_path):
    write(tmp_path, {"m.sql": "CREATE TABLE a (id int);\n\nSELEC 1;\n"})
    assert lint(tmp_path, "m.sql")[1].splitlines()[0] == (
        'm.sql:3:1: error [sql-syntax] migration m.sql: PostgreSQL cannot parse it: syntax error at or near "SELEC"')


def test_ignore_comments_silence_a_rule_on_their_line_the_next_line_or_a_yaml_key_and_keep_the_reason(tmp_path):
    blueprint = SEED_000.replace(
        "    startCommand: |", "    # deploypipe: ignore[or-true,migrate-resolve] one-off recovery, see INC-4\n"
                              "    startCommand: |")
    blueprint += "# deploypipe: ignore-file[long-start-chain] pnpm needs corepack first\n"
    sql = ADD_REQUIRED.replace("ALTER TABLE users", "-- deploypipe: ignore[not-null-without-default] users is empty\n"
                                                    "ALTER TABLE users")
    write(tmp_path, {"render.yaml": blueprint, "m/0001.sql": sql,
                     "a/versions/0004.py": MONKEYPATCH.replace(
                         "lambda *args: None", "lambda *args: None  # deploypipe: ignore[*] test double")})
    code, out = lint(tmp_path, "render.yaml", "m/0001.sql", "a/versions/0004.py")
    lines = [line for line in out.splitlines() if "[squawk:" not in line]
    assert lines[:4] == [
        "render.yaml:8:5: info [long-start-chain] " + LONG + " (ignored: pnpm needs corepack first)",
        "render.yaml:10:7: info [migrate-resolve] " + RESOLVE + " (ignored: one-off recovery, see INC-4)",
        "render.yaml:10:7: info [or-true] " + OR_TRUE + " (ignored: one-off recovery, see INC-4)",
        "render.yaml:11:7: error [migration-in-start-command] " + MIGRATE]
    assert lines[5] == "m/0001.sql:5: info [migration-phase] migration 0001.sql: contract: add-not-null-column " \
                       "users.embedding_model (line 5)"
    assert lines[6] == ("m/0001.sql:5:1: info [not-null-without-default] " + NOT_NULL.replace(
        "20251101000000_vector", "0001.sql") + " (ignored: users is empty)")
    assert lines[-2].startswith("a/versions/0004.py:3:1: info [alembic-op-monkeypatch] ")
    assert lines[-2].endswith(" (ignored: test double)")
    assert code == 1  # the migration in startCommand is not ignored
    assert lint(tmp_path, "m/0001.sql", "a/versions/0004.py", "render.yaml", fail_on="info")[0] == 1


def test_an_ignore_without_a_reason_silences_nothing_and_is_a_warning(tmp_path):
    write(tmp_path, {"m.sql": "-- deploypipe: ignore[not-null-without-default]\n"
                              "ALTER TABLE users ADD COLUMN a text NOT NULL;\n"})
    code, out = lint(tmp_path, "m.sql")
    lines = [line for line in out.splitlines() if "[squawk:" not in line]
    assert lines[0] == ("m.sql:1:1: warning [ignore-without-reason] this ignore comment silences nothing: it needs "
                        "rule ids and a reason; instead: write `deploypipe: ignore[rule-id] why it is safe here`")
    assert lines[1] == "m.sql:2: info [migration-phase] migration m.sql: contract: add-not-null-column users.a (line 2)"
    assert lines[2].startswith("m.sql:2:1: error [not-null-without-default] ")
    assert code == 1


def test_exit_codes_follow_fail_on_and_ignored_findings_never_fail(tmp_path):
    write(tmp_path, {"warn.yaml": "services:\n  - {type: web, name: a, runtime: python, autoDeploy: false}\n",
                     "clean.yaml": "services:\n  - {type: web, name: a, runtime: python, autoDeploy: false, "
                                   "healthCheckPath: /health}\n",
                     "quiet.yaml": "# deploypipe: ignore-file[missing-health-check] no HTTP health yet\n"
                                   "services:\n  - {type: web, name: a, runtime: python, autoDeploy: false}\n"})
    assert lint(tmp_path, "clean.yaml") == (0, "no findings in 1 file\n")
    assert lint(tmp_path, "warn.yaml")[0] == 0
    assert lint(tmp_path, "warn.yaml", fail_on="warning")[0] == 1
    assert lint(tmp_path, "quiet.yaml", fail_on="info")[0] == 0


@pytest.mark.parametrize("files, paths, options, message", [
    ({}, ["missing.yaml"], {}, "missing.yaml: no such file or directory"),
    ({"notes.txt": "x"}, ["notes.txt"], {}, "notes.txt: cannot tell what to lint; expected a render.yaml, a pipeline "
     "(YAML with version: and stages:), a .sql migration, an Alembic revision (.py) or a directory of migrations"),
    ({"empty/README": "x"}, ["empty"], {}, "empty: no migrations in this directory; expected *.sql, */migration.sql "
     "(Prisma) or versions/*.py (Alembic)"),
    ({"render.yaml": SEED_000}, ["render.yaml"], {"fmt": "xml"}, "lint: --format xml: expected one of text, json, "
     "github, sarif"),
    ({"render.yaml": SEED_000}, ["render.yaml"], {"fail_on": "fatal"}, "lint: --fail-on fatal: expected one of "
     "error, warning, info"),
])
def test_usage_errors_and_unreadable_input_are_exit_2(tmp_path, files, paths, options, message):
    write(tmp_path, files)
    with pytest.raises(UsageError) as caught:
        lint(tmp_path, *paths, **options)
    assert caught.value.render() == message and caught.value.exit_code == 2


def test_a_file_that_is_not_utf8_is_unreadable_input(tmp_path):
    (tmp_path / "m.sql").write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="^m.sql: cannot read it: 'utf-8' codec can't decode byte 0xff"):
        lint(tmp_path, "m.sql")


def _cli(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DEPLOYPIPE_", "CI", "DATABASE_"))}
    return subprocess.run([DEPLOYPIPE, "lint", *args], cwd=project, env={**clean, **env}, capture_output=True,
                          text=True, timeout=60)


def test_the_cli_lints_paths_given_before_or_after_options_with_annotations_under_github_actions_and_writes_nothing(
        tmp_path):
    write(tmp_path, {"render.yaml": SEED_000, "p.yaml": PIPELINE})
    plain = _cli(tmp_path, "render.yaml")
    assert plain.returncode == 1 and plain.stdout.splitlines()[-1] == "3 errors, 1 warning in 1 file"
    assert plain.stdout.splitlines()[2] == "render.yaml:9:7: error [or-true] " + OR_TRUE
    assert _cli(tmp_path, "--", "render.yaml").stdout == plain.stdout
    github = _cli(tmp_path, "render.yaml", GITHUB_ACTIONS="true")
    assert github.stdout.splitlines()[2] == "::error file=render.yaml,line=9,col=7,title=[or-true]::" + OR_TRUE
    assert _cli(tmp_path, "--fail-on", "info", "render.yaml", "--format=json").stdout.startswith("[\n")
    assert _cli(tmp_path, "render.yaml", "--formt", "json").stderr == (
        "deploypipe lint: unknown option '--formt'; did you mean '--format'? (`deploypipe lint --help` lists what "
        "it takes)\n")
    missing = _cli(tmp_path, "--", "nope.yaml")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        2, "", "deploypipe: nope.yaml: no such file or directory\n")
    pipeline = _cli(tmp_path, "--pipeline", "p.yaml")  # no PATH: the pipeline, linted offline
    lines = pipeline.stdout.splitlines()
    assert pipeline.returncode == 1 and (lines[0], lines[-1]) == (
        "p.yaml:14: error [migrations-missing] stage migration-lint: prisma/migrations is not a directory",
        "4 errors, 1 warning in 2 files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml", "render.yaml"]  # no .deploypipe, no journal
