"""``plan`` refuses (exit 2) a release in two phases whose pending migrations put a contract one before an expand one,
without connecting: production's revision comes from the run history (a real run's report) or ``--from-revision``;
unknown, plan warns which revisions would be refused and exits 0 (db.lint still refuses at run time).

The real CLI as a subprocess, a real Alembic project, production in an embedded PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import cli_env, deploypipe, write_pipeline

#: 0001 creates notes; 0002 drops notes.author (contract); 0003 adds notes.tag (expand).
REVISIONS = [("0001", None, 'op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), '
                            'sa.Column("author", sa.Text), sa.Column("body", sa.Text))'),
             ("0002", "0001", 'op.drop_column("notes", "author")'),
             ("0003", "0002", 'op.add_column("notes", sa.Column("tag", sa.Text))')]

REFUSED = ("contract migration 0002 (migrations/versions/0002.py: drop-column notes.author (line 2)) comes before "
           "expand migration 0003 (migrations/versions/0003.py); hint: split the release: release 0003 (and every "
           "expand migration) first, then 0002 in a later release; or move 0002 after 0003 in the chain")


def phased_pipeline(root: Path) -> Path:
    """The pipeline of these tests: status, lint, migrate (phase: expand), deploy, contract, all on database main."""
    migrate = f"{sys.executable} -m alembic upgrade head"
    return write_pipeline(root, f"""\
        version: 1
        name: phased
        variables:
          DATABASE_URL: {{secret: true}}
        targets:
          services:
            api: {{name: api}}
          databases:
            main: {{url: "${{DATABASE_URL}}"}}
        stages:
          - {{id: status, type: db.migration_status, with: {{database: main}}}}
          - {{id: lint, type: db.lint, with: {{database: main, squawk: false}}}}
          - id: migrate
            type: db.migrate
            with: {{database: main, command: "{migrate}", phase: expand, require_backup: false,
                   require_dry_run: false}}
          - {{id: deploy, type: render.deploy, with: {{service: api, commit: "{'b' * 40}"}}}}
          - id: contract
            type: db.migrate
            on_failure: stop
            with: {{database: main, command: "{migrate}", phase: contract}}
        """)


@pytest.fixture
def phased(alembic_project, new_db):
    """(project root, env): production at 0001, a pipeline that migrates in two phases."""
    for rev, down, upgrade in REVISIONS:
        alembic_project.revision(rev, down, upgrade)
    url = new_db("phased")
    env = cli_env(DATABASE_URL=url)
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "0001"], cwd=alembic_project.root, env=env,
                   check=True, capture_output=True)
    phased_pipeline(alembic_project.root)
    return alembic_project.root, env


def plan(root, env, *args: str):
    return deploypipe(root, "plan", "--pipeline", "pipelines/p.yaml", *args, env=env)


def test_plan_refuses_with_exit_2_when_the_run_history_knows_production_is_before_the_contract_migration(phased):
    root, env = phased
    run = deploypipe(root, "deploy", "--pipeline", "pipelines/p.yaml", env=env)
    assert run.returncode == 1, run.stderr[-2000:]  # db.lint refused it at run time, after reading production
    assert "phase-order" in run.stderr and "migration 0002 is contract" in run.stderr, run.stderr[-2000:]
    (run_dir,) = (root / ".deploypipe" / "runs").iterdir()
    result = plan(root, env)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == (f"deploypipe: {root / 'pipelines/p.yaml'}: stage migrate (db.migrate, phase: expand): production "
                    f"main at 0001 (run {run_dir.name}, stage status: current): its pending migrations cannot run in "
                    "two phases: " + REFUSED), line


def test_without_history_plan_warns_which_revisions_would_be_refused_and_exits_0(phased):
    root, env = phased
    result = plan(root, env)
    assert result.returncode == 0, result.stderr
    warning = ("      warning: phase order: main's revision is not known (no run in .deploypipe/runs read or migrated "
               "main); if production is at 0001 or earlier, db.lint refuses this release at run time (exit 1): "
               "migration 0002 is contract (drop-column notes.author (line 2)) but comes before expand migration "
               "0003;")
    assert warning in result.stdout, result.stdout
    steps = json.loads(plan(root, env, "--json").stdout)
    order = next(step for step in steps if step["id"] == "migrate")["phase_order"]
    assert (order["verdict"], order["production"]) == ("warning", None)
    assert not (root / ".deploypipe" / "runs").exists()  # plan wrote no run


def test_from_revision_tells_plan_where_production_is(phased):
    root, env = phased
    refused = plan(root, env, "--from-revision", "main=0001")
    assert refused.returncode == 2 and "production main at 0001 (--from-revision):" in refused.stderr, \
        refused.stderr
    assert plan(root, env, "--from-revision", "base").returncode == 2  # nothing applied: 0001 to 0003 pending
    passed = plan(root, env, "--from-revision", "0002")
    assert passed.returncode == 0, passed.stderr
    assert ("      phase order: main at 0002 (--from-revision); pending: 0003 expand; no contract migration before "
            "an expand one") in passed.stdout, passed.stdout
    unknown = plan(root, env, "--from-revision", "other=0002")
    assert unknown.returncode == 2 and "no database target 'other' is migrated in two phases here" in unknown.stderr
