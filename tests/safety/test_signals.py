"""What SIGINT and SIGTERM do to a real `deploypipe deploy` in each phase. GitHub Actions cancels with SIGINT,
SIGTERM ~7.5 s later and SIGKILL ~2.5 s after that; what the tests check is that one signal is enough: the run
finishes its shutdown on it alone and journals it, while the stage's command would run for minutes (no time is
measured; how fast the shutdown is belongs to a bench):

- before any stage (waiting for the lock): exit 1, nothing changed;
- during a stage before production changed: the stage stops (its command too), exit 1, journalled as interrupted
  with nothing left undone;
- during a stage after production changed: rolled back, exit 3, the journal says what was left undone at the time;
- during the rollback: the signals are journalled, not obeyed; the rollback finishes (exit 3) -- or, when SIGKILL
  comes first, `rollback --run` finishes it, resuming the rollback already triggered on Render.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from harness import (
    GOOD,
    NEW,
    Cli,
    cli_env,
    deploy_pipeline,
    deploypipe,
    events_of,
    journal_has,
    named,
    report_of,
    run_dirs,
    write_pipeline,
)
from helpers import wait_until

from deploypipe.engine.locking import FileLock

SIGINT_TO_SIGTERM_S = 7.5
SIGTERM_TO_SIGKILL_S = 2.5
#: how long a test waits for the run to exit on one signal: far past GitHub's window (a loaded machine is slow),
#: far short of the stage commands' 300 s (a run that waited for its command instead of stopping it never exits)
EXIT_ON_ONE_SIGNAL_S = 90
LONG_COMMAND = "sleep 300"


def cancel_like_github_actions(cli: Cli) -> tuple[int, list[str]]:
    """SIGINT; SIGTERM 7.5 s later; SIGKILL 2.5 s after that -- each only if the process still runs.
    Returns (exit status, signals sent)."""
    sent = ["SIGINT"]
    cli.signal(signal.SIGINT)
    for delay, signum in ((SIGINT_TO_SIGTERM_S, signal.SIGTERM), (SIGTERM_TO_SIGKILL_S, signal.SIGKILL)):
        try:
            return cli.proc.wait(delay), sent
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: still running, next signal
            cli.signal(signum)
            sent.append(signal.Signals(signum).name)
    return cli.proc.wait(10), sent


def exit_on_one_signal(cli: Cli, signum: int) -> int:
    """Send one signal and no other; the run must finish its shutdown and exit on that signal alone."""
    cli.signal(signum)
    return cli.wait(EXIT_ON_ONE_SIGNAL_S)


def _finished(run_dir: Path) -> bool:
    return bool(named(events_of(run_dir), "run_finished"))


def _kill_recorded(pids: Path) -> None:
    """Stop any command a test's pipeline started (each records its pid; they run in their own sessions)."""
    if not pids.exists():
        return
    for line in pids.read_text().split():
        try:
            os.killpg(int(line), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie (exited, not reaped yet) is not running
        return handle.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def pids(tmp_path):
    path = tmp_path / "pids"
    yield path
    _kill_recorded(path)


def _stage(stage_id: str, command: str, **extra: str) -> str:
    fields = ", ".join([f'command: "{command}"', *(f"{k}: {v}" for k, v in extra.items())])
    return f"  - id: {stage_id}\n    type: shell.run\n    with: {{{fields}}}\n"


def _shell_pipeline(*stages: str) -> str:
    return "version: 1\nname: cancelled\nstages:\n" + "".join(stages)


def _interrupted(run_dir: Path) -> list[dict]:
    return named(events_of(run_dir), "interrupted")


# -- before any stage ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_before_any_stage_exits_1_and_changes_nothing(tmp_path, signum):
    write_pipeline(tmp_path, _shell_pipeline(_stage("change", f"touch {tmp_path}/changed",
                                                    changes_production="true")))
    holder = FileLock(tmp_path / ".deploypipe", "cancelled", "20261130T000000Z-held00")
    holder.acquire()
    cli = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--wait-lock", "60", env=cli_env())
    try:
        wait_until(lambda: "lock_waiting" in cli.stderr, what="the run to wait for the lock")
        code = exit_on_one_signal(cli, signum)
    finally:
        cli.cleanup()
        holder.release()
    assert code == 1, cli.stderr[-2000:]
    assert "interrupted before any stage ran" in cli.stderr
    assert not (tmp_path / "changed").exists()
    for run_dir in run_dirs(tmp_path):  # a run record, if any, must say nothing was left undone
        events = events_of(run_dir)
        assert not named(events, "stage_started")
        assert [e["left_undone"] for e in _interrupted(run_dir)] == [[]], events


# -- during a stage, before production changed -----------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_stage_before_production_changed_stops_it_and_exits_1(tmp_path, pids, signum):
    write_pipeline(tmp_path, _shell_pipeline(
        _stage("checks", f"echo $$ >> {pids}; {LONG_COMMAND}; touch {tmp_path}/checked"),
        _stage("change", f"touch {tmp_path}/changed", changes_production="true")))
    cli = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=cli_env())
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), what="the checks command to run")
        code = exit_on_one_signal(cli, signum)
    finally:
        cli.cleanup()
    assert code == 1, cli.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    assert _finished(run_dir)
    report = report_of(run_dir)
    assert report["outcome"] == "blocked" and "(interrupted)" in report["message"]
    (event,) = _interrupted(run_dir)
    assert event["signal"] == signal.Signals(signum).name and event["during"] == "checks"
    assert event["left_undone"] == [] and event["hint"] == ""
    assert not (tmp_path / "changed").exists()
    command = int(pids.read_text().split()[0])
    wait_until(lambda: not _alive(command), timeout=5,
               what="the stage's command to stop after deploypipe stopped and said it was blocked")


# -- during a stage, after production changed -----------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_stage_after_production_changed_rolls_back_and_exits_3(tmp_path, pids, signum):
    write_pipeline(tmp_path, _shell_pipeline(
        _stage("change", f"echo changed >> {tmp_path}/prod", changes_production="true",
               compensate_command=f"'echo undone >> {tmp_path}/prod'"),
        _stage("smoke", f"echo $$ >> {pids}; {LONG_COMMAND}")))
    cli = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=cli_env())
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), what="the smoke command to run")
        code = exit_on_one_signal(cli, signum)  # rolled back on this signal, before any next one
    finally:
        cli.cleanup()
    assert code == 3, cli.stderr[-2000:]
    assert (tmp_path / "prod").read_text() == "changed\nundone\n"
    (run_dir,) = run_dirs(tmp_path)
    (event,) = _interrupted(run_dir)
    assert event["signal"] == signal.Signals(signum).name and event["during"] == "smoke"
    assert event["left_undone"] == ["change"] and f"rollback --run {run_dir.name}" in event["hint"]
    assert report_of(run_dir)["outcome"] == "rolled_back" and _finished(run_dir)


# -- during the rollback -----------------------------------------------------------------------------------------
def test_signals_during_a_short_rollback_are_journalled_and_the_rollback_finishes_with_exit_3(tmp_path, pids):
    """The compensation runs until the test lets it go, after both signals were journalled."""
    go = tmp_path / "go"
    write_pipeline(tmp_path, _shell_pipeline(
        _stage("change", f"echo changed >> {tmp_path}/prod", changes_production="true",
               compensate_command=f"'echo $$ >> {pids}; while [ ! -e {go} ]; do sleep 0.05; done; "
                                  f"echo undone >> {tmp_path}/prod'"),
        _stage("smoke", "exit 1")))
    cli = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=cli_env())
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), what="the compensation to run")
        (run_dir,) = run_dirs(tmp_path)
        for count, signum in enumerate((signal.SIGINT, signal.SIGTERM), start=1):  # the second: an impatient one
            cli.signal(signum)
            wait_until(lambda count=count: len(_interrupted(run_dir)) == count,
                       what=f"{signal.Signals(signum).name} to be journalled")
        assert cli.proc.poll() is None, "the run stopped before its rollback finished"
        go.touch()
        code = cli.wait(EXIT_ON_ONE_SIGNAL_S)
    finally:
        cli.cleanup()
    assert code == 3, cli.stderr[-2000:]
    assert (tmp_path / "prod").read_text() == "changed\nundone\n"
    (run_dir,) = run_dirs(tmp_path)
    events = _interrupted(run_dir)
    assert [(e["signal"], e["during"], e["left_undone"]) for e in events] == [
        ("SIGINT", "rollback", ["change"]), ("SIGTERM", "rollback", ["change"])]
    assert report_of(run_dir)["outcome"] == "rolled_back"


@pytest.mark.e2e
def test_a_rollback_cut_short_by_sigkill_after_sigint_and_sigterm_is_finished_by_rollback_run(tmp_path):
    from harness import LocalRender

    render = LocalRender(rollback_update_s=14.0)  # Render takes longer to roll back than a CI runner waits
    try:
        render.add_service("api")
        render.health.unhealthy = {NEW}
        write_pipeline(tmp_path, deploy_pipeline())
        env = cli_env(**render.env())
        cli = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=env)
        try:
            run_dir = wait_until(lambda: journal_has(tmp_path, "rollback_triggered"), timeout=60,
                                 what="the automatic rollback to be triggered")
            code, sent = cancel_like_github_actions(cli)
        finally:
            cli.cleanup()
        assert sent == ["SIGINT", "SIGTERM", "SIGKILL"] and code == -signal.SIGKILL, cli.stderr[-2000:]
        events = events_of(run_dir)
        assert [(e["signal"], e["during"], e["left_undone"]) for e in named(events, "interrupted")] == [
            ("SIGINT", "rollback", ["deploy"]), ("SIGTERM", "rollback", ["deploy"])]
        assert all(f"rollback --run {run_dir.name}" in e["hint"] for e in named(events, "interrupted"))
        assert not named(events, "run_finished") and not (run_dir / "report.json").exists()
        (triggered,) = named(events, "rollback_triggered")
        assert render.live_commit() == NEW  # the rollback is still under way on Render

        finished = deploypipe(tmp_path, "rollback", "--pipeline", "pipelines/p.yaml", "--run", run_dir.name, "--yes",
                              "--json", env=env, timeout=60)
        assert finished.returncode == 0, finished.stderr[-2000:]
        assert render.live_commit() == GOOD
        rollbacks = [d for d in render.deploys() if d.trigger == "rollback"]
        assert [d.id for d in rollbacks] == [triggered["deploy_id"]]  # resumed, not a second rollback
        undo_run = next(d for d in run_dirs(tmp_path) if d != run_dir)
        assert [e["deploy_id"] for e in named(events_of(undo_run), "rollback_resumed")] == [triggered["deploy_id"]]
        assert report_of(undo_run)["outcome"] == "rollback_verified"
    finally:
        render.close()
