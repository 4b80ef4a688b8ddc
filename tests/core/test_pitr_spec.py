"""A database target's safety path (mode: dump | pitr | auto) is validated like every other key: one exact line
naming the file, line, key path, what was expected and what was found, and exit 2."""

from __future__ import annotations

import pytest

from deploypipe.engine.loader import load_pipeline
from deploypipe.errors import SpecError

STAGES = "stages:\n  - id: backup\n    type: db.backup\n    with: {database: main}\n"


def pipeline(database: str) -> str:
    return f"version: 1\nname: demo\ntargets:\n  databases:\n    main:\n      url: postgresql://app@db/app\n{database}{STAGES}"


CASES = {
    "pitr-without-render-postgres": (
        "      mode: pitr\n",
        "p.yaml:7: targets.databases.main.mode: expected 'dump' unless render_postgres names the Render Postgres "
        "whose point-in-time recovery to use; got 'pitr'"),
    "auto-without-render-postgres": (
        "      mode: auto\n      pitr_above_gb: 100\n",
        "p.yaml:7: targets.databases.main.mode: expected 'dump' unless render_postgres names the Render Postgres "
        "whose point-in-time recovery to use; got 'auto'"),
    "auto-without-threshold": (
        "      render_postgres: main-db\n      mode: auto\n",
        "p.yaml:5: targets.databases.main.pitr_above_gb: expected a size in GB with mode auto (above it, Render's "
        "point-in-time recovery replaces pg_dump); got None"),
    "threshold-without-auto": (
        "      render_postgres: main-db\n      mode: pitr\n      pitr_above_gb: 100\n",
        "p.yaml:9: targets.databases.main.pitr_above_gb: expected no value unless mode is auto; got 100"),
    "unknown-mode": (
        "      render_postgres: main-db\n      mode: snapshot\n",
        "p.yaml:8: targets.databases.main.mode: expected 'dump', 'pitr' or 'auto'; got 'snapshot'"),
    "negative-threshold": (
        "      render_postgres: main-db\n      mode: auto\n      pitr_above_gb: -1\n",
        "p.yaml:9: targets.databases.main.pitr_above_gb: expected greater than 0; got -1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_database_target_that_cannot_take_its_path_gives_one_exact_line(tmp_path, case):
    database, expected = CASES[case]
    path = tmp_path / "p.yaml"
    path.write_text(pipeline(database))
    with pytest.raises(SpecError) as info:
        load_pipeline(path, {})
    assert info.value.render().replace(str(tmp_path) + "/", "") == expected


@pytest.mark.parametrize("database, mode, threshold", [
    ("", "dump", None),
    ("      render_postgres: main-db\n      mode: pitr\n      pitr_min_age_s: 0\n", "pitr", None),
    ("      render_postgres: dpg-abc123\n      mode: auto\n      pitr_above_gb: 0.5\n", "auto", 0.5),
])
def test_valid_database_paths_load(tmp_path, database, mode, threshold):
    path = tmp_path / "p.yaml"
    path.write_text(pipeline(database))
    target = load_pipeline(path, {}).spec.targets.databases["main"]
    assert (target.mode, target.pitr_above_gb) == (mode, threshold)


def test_the_cli_refuses_a_pitr_target_without_render_postgres_with_exit_2(tmp_path):
    import subprocess
    import sys

    (tmp_path / "p.yaml").write_text(pipeline("      mode: pitr\n"))
    result = subprocess.run([sys.executable, "-c", "from deploypipe.cli import main; main()", "plan", "--pipeline",
                             "p.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.replace(str(tmp_path) + "/", "").strip().splitlines() == [
        "deploypipe: p.yaml:7: targets.databases.main.mode: expected 'dump' unless render_postgres names the Render "
        "Postgres whose point-in-time recovery to use; got 'pitr'"]
