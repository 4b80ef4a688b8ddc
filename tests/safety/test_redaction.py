"""A secret never reaches any output of a run, checked one output at a time: the journal, the report, each stage's
command log, stdout and stderr (JSON lines and the console view), including error messages and a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import cli_env, deploypipe, run_dirs, write_pipeline

CANARY = "canary-5e1f0c2d9a"
PASSWORD = "pw-canary-83b1"

PIPELINE = """\
version: 1
name: secrets
variables:
  CANARY_VALUE: {secret: true}
stages:
  - id: echo
    type: shell.run
    with: {command: "echo value=${CANARY_VALUE} url=${APP_DATABASE_URL}", env: {COPY: "${CANARY_VALUE}"}}
  - id: fail
    type: shell.run
    with: {command: "echo the token ${CANARY_VALUE} was rejected; exit 3"}
"""


def _outputs(root: Path, result) -> dict[str, str]:
    (run_dir,) = run_dirs(root)
    outputs = {"stdout": result.stdout, "stderr": result.stderr,
               "journal": (run_dir / "events.jsonl").read_text(), "report": (run_dir / "report.json").read_text()}
    for log in sorted(run_dir.glob("*.log")):
        outputs[log.name] = log.read_text()
    return outputs


@pytest.mark.parametrize("mode", ["json", "console"])
def test_a_secret_reaches_no_output_of_a_failing_run(tmp_path, mode):
    write_pipeline(tmp_path, PIPELINE)
    env = cli_env(CANARY_VALUE=CANARY, APP_DATABASE_URL=f"postgresql://app:{PASSWORD}@db.internal/app")
    args = ["--json"] if mode == "json" else []
    if mode == "console":
        env.pop("CI")
    result = deploypipe(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", *args, env=env)
    assert result.returncode == 1, result.stderr[-2000:]
    outputs = _outputs(tmp_path, result)
    assert {"journal", "report", "echo.run.log", "fail.run.log"} <= set(outputs)
    leaks = [name for name, text in outputs.items() if CANARY in text or PASSWORD in text]
    assert leaks == [], f"the secret leaked into: {', '.join(leaks)}"
    assert "***" in outputs["journal"] and "***" in outputs["report"] and "***" in outputs["echo.run.log"]
    failed = [json.loads(line) for line in outputs["journal"].splitlines() if '"stage_failed"' in line]
    assert failed and "rejected" in failed[0]["error"]["message"]  # the message is kept, only the secret masked


UNDECLARED = """\
version: 1
name: undeclared
stages:
  - id: echo
    type: shell.run
    with: {command: "echo stripe=$STRIPE_SECRET_KEY base=$SECRET_KEY_BASE gh=$GITHUB_TOKEN_READONLY; exit 3"}
"""


def test_an_undeclared_variable_with_a_secret_looking_name_is_masked_in_every_output(tmp_path):
    write_pipeline(tmp_path, UNDECLARED)
    values = {"STRIPE_SECRET_KEY": "sk-live-4c9e1b7d2f", "SECRET_KEY_BASE": "kb-77e2a9c1d0",
              "GITHUB_TOKEN_READONLY": "ghp-3f0b8e2a61"}
    result = deploypipe(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--json", env=cli_env(**values))
    assert result.returncode == 1, result.stderr[-2000:]
    outputs = _outputs(tmp_path, result)
    assert {"journal", "report", "echo.run.log"} <= set(outputs)
    leaks = sorted(f"{name} in {where}" for where, text in outputs.items() for name, value in values.items()
                   if value in text)
    assert leaks == []
    assert "stripe=*** base=*** gh=***" in outputs["echo.run.log"]
