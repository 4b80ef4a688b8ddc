"""`deploypipe status` against the local Render: a frozen production names its failed deploys and exits 1; a
healthy one exits 0; the live commit's distance to the branch comes from the git checkout Render builds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

from deploypipe.commands.status import StatusReport, Thresholds, show_status

pytestmark = pytest.mark.e2e


DEPLOYPIPE = str(Path(sys.executable).parent / "deploypipe")
ROOT = Path(__file__).resolve().parents[2]


def _status(local_render, *args: str) -> subprocess.CompletedProcess[str]:
    local_render.pipeline()
    return subprocess.run([DEPLOYPIPE, "status", "--pipeline", "watch.yaml", *args], cwd=local_render.project,
                          env=local_render.env, capture_output=True, text=True, timeout=60)


def _since(deploy) -> str:
    return deploy.finished_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def test_status_of_a_service_whose_last_five_deploys_failed_exits_1_and_names_them(local_render):
    live = local_render.deploy()
    local_render.commit("behind-1.txt", hours_ago=5.2)
    local_render.commit("behind-2.txt", hours_ago=3)
    local_render.commit("behind-3.txt", hours_ago=1)
    failed = [local_render.deploy(fail=phase) for phase in ("build", "update", "build", "update", "build")]

    result = _status(local_render)

    assert result.returncode == 1, result.stderr
    named = ", ".join(f"{d.id} {d.status}" for d in reversed(failed))
    assert result.stdout.splitlines()[0] == (
        f"web: FROZEN — the last 5 deploys failed ({named}); live {live.id} at commit {live.commit_id[:7]} since "
        f"{_since(live)}, 3 commits / 5 h behind main")
    for deploy in failed:
        assert re.search(rf"^  {deploy.id}  {deploy.status} +{deploy.commit_id[:7]}  ", result.stdout, re.M)
    assert "auto-deploy off" in result.stdout
    assert not (local_render.project / ".deploypipe" / "runs").exists()  # read-only: no run directory


def test_status_json_is_the_typed_report_on_stdout_with_the_failure_streak(local_render):
    local_render.deploy()
    failed = [local_render.deploy(fail="build"), local_render.deploy(fail="update")]

    result = _status(local_render, "--json")

    assert result.returncode == 1
    report = StatusReport.model_validate_json(result.stdout)
    [web] = report.services
    assert (report.healthy, report.exit_code, web.problems) == (False, 1, ["failed_deploys"])
    assert [d.id for d in web.failed] == [d.id for d in reversed(failed)]
    assert web.behind.commits == 0 and web.behind.ref == "main" and web.in_progress is None
    assert report.fingerprint and json.loads(result.stdout)["notification"] == ""


def test_status_with_a_higher_failed_threshold_or_after_a_good_deploy_is_healthy_and_exits_0(local_render):
    local_render.deploy()
    local_render.deploy(fail="build")
    local_render.deploy(fail="build")
    assert _status(local_render, "--failed", "3").returncode == 0

    live = local_render.deploy()
    result = _status(local_render)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == (f"web: healthy — live {live.id} at commit {live.commit_id[:7]} since "
                                             f"{_since(live)}, up to date with main")


def test_status_is_frozen_when_the_live_commit_trails_the_branch_beyond_a_threshold(local_render):
    local_render.deploy()
    local_render.commit("late.txt", hours_ago=30)
    local_render.commit("later.txt", hours_ago=2)
    inv = local_render.invocation()

    assert show_status(inv, Thresholds(max_behind_commits=2)) == 0
    assert show_status(inv, Thresholds(max_behind_commits=1)) == 1
    assert show_status(inv, Thresholds(max_behind_hours=24)) == 1
    lines = inv.out.getvalue().splitlines()
    frozen = [line for line in lines if line.startswith("web: FROZEN")]
    assert frozen[0].startswith("web: FROZEN — the live commit trails main by more than 1 commit; live ")
    assert frozen[1].startswith("web: FROZEN — the live commit trails main by more than 24 h; live ")
    assert frozen[1].endswith(", 2 commits / 30 h behind main")
    local_render.deploy()


def test_the_status_task_starts_and_stops_the_local_default_for_pipelines_local_yaml():
    """`deploypipe status` on a fresh copy of the repository: maybe_local starts the local Render, nothing is live."""
    import os
    import shutil
    import tempfile

    project = Path(tempfile.mkdtemp(prefix="deploypipe-ops-status-"))
    try:
        for name in ("render.yaml", "examples", "pipelines"):
            (shutil.copytree(ROOT / name, project / name) if (ROOT / name).is_dir()
             else shutil.copy2(ROOT / name, project / name))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL"))}
        result = subprocess.run([DEPLOYPIPE, "status"], cwd=project, env={**env, "CI": "true"}, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == "web: healthy — nothing is live"
        assert not (project / ".deploypipe" / "local" / "render" / "server.json").exists()  # stopped again
        assert not (project / ".deploypipe" / "runs").exists()
    finally:
        from deploypipe.local.environment import stop_local

        stop_local(project / ".deploypipe" / "local")
        shutil.rmtree(project, ignore_errors=True)


def test_status_reuses_a_kept_running_local_default_and_leaves_it_serving():
    """`deploypipe status` after `--keep-running`: the local default it found running still answers afterwards."""
    import os
    import shutil
    import tempfile

    import httpx
    import psycopg

    from deploypipe.local.environment import stop_local

    project = Path(tempfile.mkdtemp(prefix="deploypipe-ops-kept-"))
    local = project / ".deploypipe" / "local"
    try:
        for name in ("render.yaml", "examples", "pipelines"):
            (shutil.copytree(ROOT / name, project / name) if (ROOT / name).is_dir()
             else shutil.copy2(ROOT / name, project / name))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL"))}
        keep = ("import json, sys\nfrom pathlib import Path\nsys.path.insert(0, 'tests')\n"
                "from helpers import invocation\nfrom deploypipe.commands.local import maybe_local\n"
                f"inv = invocation(Path({str(project)!r}), env={{'CI': 'true'}}, pipeline='pipelines/local.yaml', "
                "keep_running=True)\nwith maybe_local(inv):\n    print('env=' + json.dumps(inv.env))\n")
        kept = subprocess.run([sys.executable, "-c", keep], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)  # its own process, gone when status runs, as after `deploy --keep-running`
        assert kept.returncode == 0, kept.stderr
        api_url, api_key, database_url = (json.loads(kept.stdout.split('env=')[-1].splitlines()[0])[k]
                                          for k in ("RENDER_API_URL", "RENDER_API_KEY", "DATABASE_URL"))
        server = json.loads((local / "render" / "server.json").read_text())

        result = subprocess.run([DEPLOYPIPE, "status"], cwd=project, env={**env, "CI": "true"}, capture_output=True,
                                text=True, timeout=120)

        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == "web: healthy — nothing is live"
        assert json.loads((local / "render" / "server.json").read_text()) == server  # reused, not restarted
        answer = httpx.get(api_url + "/services", headers={"Authorization": f"Bearer {api_key}"}, timeout=5,
                           trust_env=False)
        assert answer.status_code == 200
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        stop_local(local)
        shutil.rmtree(project, ignore_errors=True)
