"""`deploypipe lint` output, line for line, in each format: text, GitHub annotations, JSON and SARIF 2.1.0."""

from __future__ import annotations

import json

import pytest
from lint_fixtures import LONG, MIGRATE, OR_TRUE, RESOLVE, SEED_000, lint, write

from deploypipe.core.findings import Finding
from deploypipe.lint.blueprint import RULES
from deploypipe.output.lint_formats import count_line, github_line


@pytest.fixture
def seed(tmp_path):
    return write(tmp_path, {"render.yaml": SEED_000})


def test_the_seed_chain_in_render_yaml_prints_one_line_per_finding_with_its_line_then_the_count(seed):
    code, out = lint(seed, "render.yaml")
    assert out.splitlines() == [
        "render.yaml:7:5: warning [long-start-chain] " + LONG,
        "render.yaml:9:7: error [migrate-resolve] " + RESOLVE,
        "render.yaml:9:7: error [or-true] " + OR_TRUE,
        "render.yaml:10:7: error [migration-in-start-command] " + MIGRATE,
        "3 errors, 1 warning in 1 file",
    ]
    assert code == 1


def test_github_actions_gets_annotations_by_default(seed):
    code, out = lint(seed, "render.yaml", env={"GITHUB_ACTIONS": "true"})
    assert out.splitlines() == [
        "::warning file=render.yaml,line=7,col=5,title=[long-start-chain]::" + LONG,
        "::error file=render.yaml,line=9,col=7,title=[migrate-resolve]::" + RESOLVE,
        "::error file=render.yaml,line=9,col=7,title=[or-true]::" + OR_TRUE,
        "::error file=render.yaml,line=10,col=7,title=[migration-in-start-command]::" + MIGRATE,
        "3 errors, 1 warning in 1 file",
    ]
    assert code == 1
    assert lint(seed, "render.yaml", env={"GITHUB_ACTIONS": "true"}, fmt="text")[1].startswith("render.yaml:7:5: ")


def test_github_annotations_escape_what_the_workflow_command_syntax_reserves():
    finding = Finding("squawk:x", "info", "50% done\nnext line", path="db/a,b:c.sql", line=3)
    assert github_line(finding) == ("::notice file=db/a%2Cb%3Ac.sql,line=3,title=[squawk%3Ax]::50%25 done%0Anext "
                                    "line")
    assert github_line(Finding("r", "warning", "m")) == "::warning title=[r]::m"


def test_json_is_a_list_of_findings_with_relative_paths(seed):
    code, out = lint(seed, "render.yaml", fmt="json")
    findings = json.loads(out)
    assert code == 1 and [f["rule"] for f in findings] == ["long-start-chain", "migrate-resolve", "or-true",
                                                            "migration-in-start-command"]
    assert findings[2] == {
        "rule": "or-true", "severity": "error", "path": "render.yaml", "line": 9, "col": 7,
        "subject": "service sentia-backend-prod", "field": "startCommand", "remedy": RULES["or-true"][1],
        "message": "`pnpm exec prisma migrate resolve --rolled-back 20251017171256_init || true` hides a failure and "
                   "the next step runs anyway"}


def test_sarif_is_version_2_1_0_with_one_rule_per_rule_id_and_one_located_result_per_finding(seed):
    seed.joinpath("render.yaml").write_text(SEED_000.replace(
        "    startCommand: |", "    startCommand: |  # deploypipe: ignore[or-true] resolved by hand, see INC-4"))
    code, out = lint(seed, "render.yaml", fmt="sarif")
    log = json.loads(out)
    assert (log["version"], log["$schema"]) == ("2.1.0", "https://json.schemastore.org/sarif-2.1.0.json")
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "deploypipe" and driver["version"]
    assert [r["id"] for r in driver["rules"]] == ["long-start-chain", "migrate-resolve", "or-true",
                                                  "migration-in-start-command"]
    assert driver["rules"][2]["help"] == {"text": RULES["or-true"][1]}
    assert [(r["ruleId"], r["ruleIndex"], r["level"]) for r in run["results"]] == [
        ("long-start-chain", 0, "warning"), ("migrate-resolve", 1, "error"), ("or-true", 2, "note"),
        ("migration-in-start-command", 3, "error")]
    ignored = run["results"][2]
    assert ignored["locations"] == [{"physicalLocation": {
        "artifactLocation": {"uri": "render.yaml", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 9, "startColumn": 7}}}]
    assert ignored["message"]["text"] == OR_TRUE
    assert ignored["suppressions"] == [{"kind": "inSource", "justification": "resolved by hand, see INC-4"}]
    assert "suppressions" not in run["results"][1] and code == 1


@pytest.mark.parametrize("severities, files, line", [
    ((), 2, "no findings in 2 files"),
    (("error",), 1, "1 error in 1 file"),
    (("error", "error", "warning", "info", "info"), 3, "2 errors, 1 warning, 2 info in 3 files"),
    (("warning", "warning"), 1, "2 warnings in 1 file"),
])
def test_the_count_line(severities, files, line):
    assert count_line([Finding("r", s, "m") for s in severities], files) == line
