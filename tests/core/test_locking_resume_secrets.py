"""Locks between concurrent runs, resume after a SIGKILL, and a canary secret that never leaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from deploypipe.engine.locking import FileLock
from deploypipe.stages.report import Report

PIPELINE = """\
version: 1
name: demo
stages:
  - id: slow
    type: shell.run
    with: {command: "while [ ! -e release ]; do sleep 0.05; done"}
"""


def _wait_for(check, what: str) -> None:
    """Wait for an event of another thread (a generous bound: only a hung run reaches it)."""
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_second_run_against_the_same_target_is_blocked_naming_the_holder(project):
    project.pipeline(PIPELINE)
    holder = FileLock(project.root / ".deploypipe", "demo", "run-holding-it")
    holder.acquire()
    try:
        report, _ = project.run()
    finally:
        holder.release()
    assert report.exit_code == 1 and report.outcome == "blocked"
    assert "another deploy holds the lock 'demo': run run-holding-it" in report.message
    assert all(s.status == "not_run" for s in report.stages)
    assert (Path(report.run_dir) / "report.json").exists()


def test_two_concurrent_runs_one_waits_with_wait_lock_and_both_finish(project):
    """The first run holds the lock until the test creates ``release``: after a second run was refused and a third
    was seen waiting (``lock_waiting``), whatever the machine's speed."""
    import io

    from deploypipe.commands.invocation import Invocation
    from deploypipe.commands.run import run_pipeline

    project.pipeline(PIPELINE)
    results = {}
    first = threading.Thread(target=lambda: results.update(first=project.run()[0]))
    first.start()
    lock_file = project.root / ".deploypipe" / "locks" / "demo.lock"
    _wait_for(lambda: lock_file.exists() and lock_file.read_text(), "the first run to hold the lock")
    blocked, _ = project.run()
    assert blocked.exit_code == 1
    inv = Invocation(pipeline="pipelines/p.yaml", project_dir=project.root, env=project.env, json_output=True,
                     wait_lock_s=60, stdout=io.StringIO(), stderr=io.StringIO(), interactive=False)
    waiting = threading.Thread(target=lambda: results.update(waited=run_pipeline(inv)))
    waiting.start()
    _wait_for(lambda: "lock_waiting" in inv.stderr.getvalue(), "the third run to wait for the lock")
    assert "first" not in results and "waited" not in results
    (project.root / "release").touch()
    first.join()
    waiting.join()
    assert results["first"].exit_code == 0 and results["waited"].exit_code == 0
    assert results["waited"].started_at >= results["first"].started_at


def test_stale_lock_of_a_dead_holder_is_taken_over_with_a_log_line(project):
    project.pipeline(PIPELINE.replace("while [ ! -e release ]; do sleep 0.05; done", "true"))
    lock_file = project.root / ".deploypipe" / "locks" / "demo.lock"
    lock_file.parent.mkdir(parents=True)
    lock_file.write_text(json.dumps({"run_id": "dead-run", "pid": "999999", "host": "gone", "since": "earlier"}))
    report, inv = project.run()
    assert report.exit_code == 0
    assert "lock_stale_taken_over" in inv.stderr.getvalue() and "dead-run" in inv.stderr.getvalue()


def _deploypipe(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from deploypipe.cli import main; main()", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)


def test_resume_after_sigkill_continues_without_repeating_finished_stages(project):
    counter = project.root / "first-ran"
    killed = project.root / "killed-once"
    project.pipeline(f"""\
        version: 1
        name: demo
        stages:
          - id: first
            type: shell.run
            with: {{command: "echo x >> {counter}"}}
          - id: second
            type: shell.run
            with: {{command: "if [ ! -f {killed} ]; then touch {killed}; kill -9 $PPID; fi; echo done"}}
          - id: third
            type: shell.run
            with: {{command: "echo third"}}
        """)
    env = {**os.environ, "CI": "true"}
    crashed = _deploypipe(project.root, "deploy", "--pipeline", "pipelines/p.yaml", env=env)
    assert crashed.returncode == -9
    run_id = next((project.root / ".deploypipe" / "runs").iterdir()).name
    assert not (project.root / ".deploypipe" / "runs" / run_id / "report.json").exists()
    history = _deploypipe(project.root, "history", "--json", env=env)
    assert json.loads(history.stdout)[0]["outcome"] == "interrupted"

    resumed = _deploypipe(project.root, "deploy", "--pipeline", "pipelines/p.yaml", "--resume", run_id, "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    report = Report.model_validate_json(resumed.stdout)  # stdout is exactly one run report
    assert report.resumed_from == run_id
    assert [s.status for s in report.stages] == ["succeeded", "succeeded", "succeeded"]
    assert counter.read_text().count("x") == 1  # the finished stage was not repeated


def test_canary_secret_never_appears_in_any_output_journal_or_report(project):
    canary = "canary-7f3a9c1e5b"
    password = "pw-canary-42af"
    project.env.update({"CANARY_TOKEN": canary, "APP_DATABASE_URL": f"postgresql://app:{password}@db.internal/app"})
    project.pipeline("""\
        version: 1
        name: demo
        variables:
          CANARY_TOKEN: {secret: true}
        stages:
          - id: leak
            type: shell.run
            with: {command: "echo token=${CANARY_TOKEN} url=${APP_DATABASE_URL}; env | grep CANARY; false",
                   env: {EXTRA: "${CANARY_TOKEN}"}}
        """)
    report, inv = project.run()
    assert report.exit_code == 1
    texts = [inv.stdout.getvalue(), inv.stderr.getvalue()]
    for path in Path(report.run_dir).rglob("*"):
        if path.is_file():
            texts.append(path.read_text())
    for text in texts:
        assert canary not in text and password not in text
    assert any("***" in text for text in texts)
    env = {**os.environ, "CANARY_TOKEN": canary, "CI": "1"}
    plan = _deploypipe(project.root, "plan", "--pipeline", "pipelines/p.yaml", env=env)
    assert canary not in plan.stdout + plan.stderr


def test_error_lines_mask_secrets_from_the_environment(project):
    project.pipeline("version: 1\nname: demo\ndefaults: {timeout_s: '${APP_DATABASE_URL}'}\nstages:\n"
                     "  - id: a\n    type: shell.run\n    with: {command: 'true'}\n")
    env = {**os.environ, "APP_DATABASE_URL": "postgresql://app:pw-canary-77@db/app"}
    result = _deploypipe(project.root, "plan", "--pipeline", "pipelines/p.yaml", env=env)
    assert result.returncode == 2 and "pw-canary-77" not in result.stderr and "***" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
