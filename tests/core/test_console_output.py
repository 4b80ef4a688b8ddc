"""What a person sees: on a terminal the stage lines and the summary only (info logs with -v); without a terminal
and outside CI one line per stage and no message said twice."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PIPELINE = """\
version: 1
name: console
stages:
  - id: first
    type: shell.run
    with: {command: "echo first"}
  - id: check
    type: shell.run
    with: {command: "echo 'the migration pins vector 0.5.1' >&2; exit 3"}
"""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _project(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    return tmp_path


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS", "DEPLOYPIPE_LOG_LEVEL")}
    return {**env, "HOME": str(tmp_path), "COLUMNS": "160", "TERM": "xterm"}


def _on_a_terminal(root: Path, *args: str) -> str:
    """Run the CLI with stdin/stdout/stderr on a pseudo-terminal; everything it printed, colours stripped."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", "from deploypipe.cli import main; main()", *args], cwd=root,
                            env=_env(root), stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    return _ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_a_terminal_shows_the_stage_lines_and_the_summary_but_no_info_log_lines(tmp_path):
    output = _on_a_terminal(_project(tmp_path), "deploy", "--pipeline", "pipelines/p.yaml")
    assert re.search(r"✓ first\s", output) and re.search(r"✗ check\s", output), output
    assert "blocked (exit 1)" in output  # the summary
    assert "[info" not in output and "stage_failed" not in output and "run_started" not in output, output


def test_verbose_adds_the_info_log_lines_on_a_terminal(tmp_path):
    output = _on_a_terminal(_project(tmp_path), "deploy", "--pipeline", "pipelines/p.yaml", "--verbose")
    assert re.search(r"\[info\s*\] run_started", output), output
    assert "stage_succeeded" not in output  # the stage line says it already


def test_without_a_terminal_or_ci_each_stage_is_one_line_and_the_failure_is_said_once_in_the_stages(tmp_path):
    root = _project(tmp_path)
    result = subprocess.run([sys.executable, "-c", "from deploypipe.cli import main; main()", "deploy", "--pipeline",
                             "pipelines/p.yaml"], cwd=root, env=_env(root), capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    stage_lines = [line for line in result.stderr.splitlines() if re.match(r"^[✓✗!] ", line)]
    assert [line.split()[1] for line in stage_lines] == ["first", "check"], result.stderr
    assert not any(line.startswith("▶") for line in result.stderr.splitlines())
    assert result.stderr.count("exited 3") == 1, result.stderr  # the stage line; not again as a log line
    assert "[info" not in result.stderr


@pytest.mark.parametrize("ci", ["true", "1"])
def test_ci_output_stays_json_lines_at_info(tmp_path, ci):
    root = _project(tmp_path)
    result = subprocess.run([sys.executable, "-c", "from deploypipe.cli import main; main()", "deploy", "--pipeline",
                             "pipelines/p.yaml"], cwd=root, env={**_env(root), "CI": ci}, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), result.stderr
    events = [json.loads(line) for line in lines]
    assert [(e["event"], e.get("stage")) for e in events if e["level"] == "info"][:3] == [
        ("run_started", None), ("stage_started", "first"), ("stage_succeeded", "first")]
    assert any(e["event"] == "stage_failed" and e["level"] == "error" for e in events)


def test_a_long_database_step_shows_its_phase_percentage_and_eta_in_the_stage_line():
    import io

    from deploypipe.output.progress import ConsoleProgress

    console = ConsoleProgress(io.StringIO(), live=True)
    console({"event": "stage_started", "stage": "backup", "type": "db.backup", "plan": "pg_dump main"})
    console({"event": "db_progress", "stage": "backup", "phase": "dump", "done": 420, "total": 1000,
             "unit": "bytes", "percent": 42.0, "elapsed_s": 8.7, "eta_s": 12.0})
    [task] = console._status.tasks
    assert task.description.endswith("pg_dump main  [cyan]dump 42% (ETA 12s)[/]")
    console({"event": "db_progress", "stage": "backup", "phase": "indexes", "done": 1, "total": 9, "unit": "items",
             "percent": 11.1, "elapsed_s": 0.4, "eta_s": None})
    assert console._status.tasks[0].description.endswith("[cyan]indexes 11%[/]")
    console.close()
