"""`deploypipe rollback` by hand: to a chosen deploy that is not the one serving, verified (exit 0); a rollback that
fails is exit 4 naming what is live; on a terminal it asks (y rolls back, n changes nothing, exit 2); without a
terminal it refuses unless --yes; and it takes the same release lock as a deploy."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import time

import pytest
from harness import CLI, GOOD, NEW, OTHER, cli_env, deploy_pipeline, deploypipe, run_dirs, write_pipeline
from helpers import wait_until

from deploypipe.db.advisory import Holder, PgAdvisoryLock


@pytest.fixture
def three_releases(render):
    """api has served GOOD (A), then OTHER (B), and now serves NEW (C): the default rollback target is B."""
    first = render.deploys()[0]
    second = render.deploy_now("api", OTHER)
    render.deploy_now("api", NEW)
    assert render.live_commit() == NEW
    return render, first, second


def _rollback(tmp_path, render, *args: str, env: dict | None = None):
    result = deploypipe(tmp_path, "rollback", "--pipeline", "pipelines/p.yaml", *args,
                        env=env or cli_env(**render.env()))
    return result, (json.loads(result.stdout) if "--json" in args and result.stdout.strip() else {})


@pytest.mark.e2e
def test_rollback_to_a_deploy_that_is_not_serving_ends_serving_it_verified_with_exit_0(tmp_path, three_releases):
    render, first, second = three_releases
    write_pipeline(tmp_path, deploy_pipeline())
    result, report = _rollback(tmp_path, render, "--service", "api", "--to", first.id, "--yes", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert render.live_commit() == GOOD  # the chosen deploy, not the default previous one (OTHER)
    assert report["outcome"] == "rollback_verified" and report["exit_code"] == 0
    stages = {s["id"]: s["status"] for s in report["stages"]}
    assert stages == {"rollback": "succeeded", "verify": "succeeded"}  # the restored release was verified
    rollbacks = [d for d in render.deploys() if d.trigger == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0].rollback_of == first.id


@pytest.mark.e2e
def test_a_manual_rollback_to_an_expired_build_exits_4_and_says_what_is_live(tmp_path, three_releases):
    render, first, _ = three_releases
    render.runtime.expired.add(first.id)
    live = render.service("api").live()
    write_pipeline(tmp_path, deploy_pipeline())
    result, report = _rollback(tmp_path, render, "--to", first.id, "--yes", "--json")
    assert result.returncode == 4, result.stderr[-2000:]
    assert report["outcome"] == "rollback_failed" and report["exit_code"] == 4
    assert "no longer available" in report["message"]
    assert live.id in report["message"] and NEW[:12] in report["message"]  # what is live now
    assert render.live_commit() == NEW


@pytest.mark.e2e
def test_a_manual_rollback_whose_restored_release_is_unhealthy_exits_4(tmp_path, three_releases):
    render, first, _ = three_releases
    render.health.unhealthy = {GOOD}
    write_pipeline(tmp_path, deploy_pipeline())
    result, report = _rollback(tmp_path, render, "--to", first.id, "--yes", "--json")
    assert result.returncode == 4, result.stderr[-2000:]
    assert report["outcome"] == "rollback_failed"
    assert {s["id"]: s["status"] for s in report["stages"]}["verify"] == "failed"


def test_a_rollback_without_a_terminal_and_without_yes_is_refused_with_exit_2(tmp_path, three_releases):
    render, _, _ = three_releases
    write_pipeline(tmp_path, deploy_pipeline())
    result, _ = _rollback(tmp_path, render)
    assert result.returncode == 2, result.stderr
    assert "refusing to roll back without confirmation" in result.stderr and "--yes" in result.stderr
    assert render.live_commit() == NEW and not any(d.trigger == "rollback" for d in render.deploys())
    assert run_dirs(tmp_path) == []


def _on_a_terminal(tmp_path, render, answer: str) -> tuple[int, str]:
    """Run `rollback` with a pseudo-terminal as stdin (not CI), answer the question, return (status, stderr)."""
    env = cli_env(**render.env())
    env.pop("CI")
    master, slave = pty.openpty()
    err = tmp_path / ".rollback.stderr"
    with open(err, "w") as stderr, open(tmp_path / ".rollback.stdout", "w") as stdout:
        proc = subprocess.Popen([*CLI, "rollback", "--pipeline", "pipelines/p.yaml"], cwd=tmp_path, env=env,
                                stdin=slave, stdout=stdout, stderr=stderr, start_new_session=True)
    os.close(slave)
    try:
        wait_until(lambda: "[y/N]" in err.read_text() or proc.poll() is not None, timeout=60, what="the question")
        assert proc.poll() is None, err.read_text()[-2000:]
        time.sleep(0.1)
        os.write(master, answer.encode() + b"\n")
        return proc.wait(60), err.read_text()
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.e2e
def test_on_a_terminal_answering_y_shows_the_deploys_and_rolls_back_to_the_previous_one(tmp_path, three_releases):
    render, _, second = three_releases
    write_pipeline(tmp_path, deploy_pipeline())
    code, stderr = _on_a_terminal(tmp_path, render, "y")
    assert code == 0, stderr[-2000:]
    question = next(line for line in stderr.splitlines() if "[y/N]" in line)
    assert f"Roll api back to {second.id}?" in question
    listing = stderr.split("[y/N]")[0]
    assert render.deploys()[2].id in listing and second.id in listing and "live" in listing
    assert render.live_commit() == OTHER


@pytest.mark.e2e
def test_on_a_terminal_answering_n_changes_nothing_and_exits_2(tmp_path, three_releases):
    render, _, _ = three_releases
    write_pipeline(tmp_path, deploy_pipeline())
    code, stderr = _on_a_terminal(tmp_path, render, "n")
    assert code == 2, stderr[-2000:]
    assert "not confirmed" in stderr and "nothing was changed" in stderr
    assert render.live_commit() == NEW and not any(d.trigger == "rollback" for d in render.deploys())
    assert run_dirs(tmp_path) == []


@pytest.mark.e2e
def test_a_manual_rollback_while_another_run_holds_the_release_lock_exits_1_naming_it(tmp_path, three_releases,
                                                                                         new_db):
    render, first, _ = three_releases
    url = new_db("manual")
    write_pipeline(tmp_path, deploy_pipeline(database=True))
    holder = PgAdvisoryLock(url, "deploypipe-release:release", what="release lock",
                            holder=Holder(run_id="20261130T000000Z-c1c1c1", user="ci", host="runner-7", ci="gh:42"))
    holder.acquire()
    try:
        result, report = _rollback(tmp_path, render, "--to", first.id, "--yes", "--json",
                                   env=cli_env(DATABASE_URL=url, **render.env()))
    finally:
        holder.release()
    assert result.returncode == 1, result.stderr[-2000:]
    assert "20261130T000000Z-c1c1c1" in report["message"] and "ci@runner-7" in report["message"]
    assert "gh:42" in report["message"] and "since" in report["message"]
    assert render.live_commit() == NEW and not any(d.trigger == "rollback" for d in render.deploys())
