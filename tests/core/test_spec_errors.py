"""Malformed pipelines give one clear line (file:line: path: what; expected) and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploypipe.engine.loader import load_pipeline
from deploypipe.errors import SpecError

GOOD_STAGE = "  - id: one\n    type: shell.run\n    with: {command: 'echo hi'}\n"

CASES = {
    "bad-yaml-syntax": ("version: 1\nname: [demo\n", "p.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    "empty-file": ("", "p.yaml: empty file; expected a mapping with version, name, targets and stages"),
    "list-instead-of-mapping": ("- version: 1\n", "p.yaml:1: expected a mapping with version, name, targets and stages at the top level; got list"),
    "wrong-type": ("version: 1\nname: demo\ndefaults: {timeout_s: soon}\nstages:\n" + GOOD_STAGE,
                   "p.yaml:3: defaults.timeout_s: expected a valid number, unable to parse string as a number; got 'soon'"),
    "unknown-top-level-key": ("version: 1\nname: demo\nstagez: []\nstages:\n" + GOOD_STAGE,
                              "p.yaml:3: stagez: unknown key 'stagez'; expected one of: defaults, description, local, lock, name, stages, targets, variables, version"),
    "unknown-stage-key": ("version: 1\nname: demo\nstages:\n  - id: one\n    type: shell.run\n    retries: 3\n    with: {command: x}\n",
                          "p.yaml:6: stages[0].retries: unknown key 'retries'; expected one of: description, id, on_failure, retry, timeout_s, type, when, with"),
    "unknown-param": ("version: 1\nname: demo\nstages:\n  - id: one\n    type: shell.run\n    with:\n      command: x\n      comand: y\n",
                      "p.yaml:8: stages[0].with.comand: unknown key 'comand'; expected one of: changes_production, command, compensate_command, cwd, env, retry_on_exit_codes"),
    "unknown-stage-type": ("version: 1\nname: demo\nstages:\n  - id: one\n    type: shell.runn\n",
                           "p.yaml:5: stages[0].type: unknown stage type 'shell.runn'; expected one of: "),
    "duplicate-ids": ("version: 1\nname: demo\nstages:\n" + GOOD_STAGE + GOOD_STAGE,
                      "p.yaml:7: stages[1].id: duplicate stage id 'one'; expected ids to be unique"),
    "missing-required-param": ("version: 1\nname: demo\nstages:\n  - id: one\n    type: shell.run\n    with: {}\n",
                               "p.yaml:6: stages[0].with.command: required key is missing"),
    "missing-variable": ("version: 1\nname: demo\nstages:\n  - id: one\n    type: shell.run\n    with: {command: 'echo ${NOPE_NOT_SET}'}\n",
                         "p.yaml:6: stages[0].with.command: variable ${NOPE_NOT_SET} is not set; expected it in the environment, an inline default ${NOPE_NOT_SET:-value} or variables.NOPE_NOT_SET.default"),
    "missing-version": ("name: demo\nstages:\n" + GOOD_STAGE, "p.yaml:1: version: required key is missing"),
    "unknown-service-target": ("version: 1\nname: demo\nstages:\n  - id: v\n    type: verify.health\n    with: {service: web}\n",
                               "p.yaml:6: stages[0].with.service: unknown service 'web'; expected one of: none (declare targets.services)"),
    "when-refers-to-later-stage": ("version: 1\nname: demo\nstages:\n  - id: a\n    type: shell.run\n    when: b.ok\n    with: {command: x}\n",
                                   "p.yaml:6: stages[0].when: cannot use 'b.ok': 'b' is not an earlier stage; expected on_success, on_failure, always, or '[not] <earlier stage id>.<output> [== != > < >= <= value]' (earlier stages: none)"),
    "when-names-an-output-the-stage-does-not-have": ("version: 1\nname: demo\nstages:\n  - id: a\n    type: shell.run\n    with: {command: x}\n  - id: b\n    type: shell.run\n    when: a.exitcode == 0\n    with: {command: y}\n",
                                  "p.yaml:9: stages[1].when: cannot use 'a.exitcode == 0': the stage has no output 'exitcode' (outputs: duration_s, exit_code, log, output_tail)"),
    "duplicate-yaml-key": ("version: 1\nname: demo\nname: again\nstages:\n" + GOOD_STAGE,
                           "p.yaml:3: duplicate key 'name'; hint: each key may appear once in a mapping"),
    "bad-on-failure": ("version: 1\nname: demo\nstages:\n  - id: a\n    type: shell.run\n    on_failure: ignore\n    with: {command: x}\n",
                       "p.yaml:6: stages[0].on_failure: expected 'rollback', 'stop' or 'continue'; got 'ignore'"),
    "python-tag-refused": ("version: 1\nname: !!python/object/apply:os.system ['true']\nstages: []\n",
                           "p.yaml:2: invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_pipeline_gives_one_exact_line(tmp_path, case):
    text, expected = CASES[case]
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_pipeline(path, {})
    message = info.value.render().replace(str(tmp_path) + "/", "")
    assert message.startswith(expected)
    assert "\n" not in message


def test_missing_file_names_the_file_and_the_option(tmp_path):
    with pytest.raises(SpecError, match=r"nope.yaml: file not found; hint: pass an existing file with --pipeline"):
        load_pipeline(tmp_path / "nope.yaml", {})


def test_cli_prints_one_line_and_exits_2_without_traceback(tmp_path):
    (tmp_path / "bad.yaml").write_text(CASES["unknown-stage-key"][0])
    result = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(_repo_root()), "plan", "--pipeline",
                             str(tmp_path / "bad.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deploypipe: ") and "unknown key 'retries'" in lines[0]


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def test_interpolation_uses_env_then_inline_default_then_declared_default(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        name: demo
        variables:
          FROM_DECLARED: {default: declared}
        stages:
          - id: a
            type: shell.run
            with: {command: "${FROM_ENV} ${INLINE:-inline} ${FROM_DECLARED} $${LITERAL}"}
        """))
    loaded = load_pipeline(path, {"FROM_ENV": "env"})
    assert loaded.params["a"].command == "env inline declared ${LITERAL}"


def test_secret_variables_are_collected_for_redaction(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nname: demo\nvariables:\n  TOKENISH: {secret: true}\nstages:\n"
                    "  - id: a\n    type: shell.run\n    with: {command: 'echo ${TOKENISH} ${RENDER_API_KEY}'}\n")
    loaded = load_pipeline(path, {"TOKENISH": "value-one", "RENDER_API_KEY": "rnd_value_two"})
    assert {"value-one", "rnd_value_two"} <= set(loaded.secrets)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["version", "name", "stages", "id", "type", "with",
                                                                "targets", "services", "retry", "when", "x"]),
                                               children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=yaml_values)
def test_random_yaml_documents_never_raise_anything_but_spec_error(tmp_path, document):
    import yaml

    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_pipeline(path, {})
    except SpecError as exc:
        assert "\n" not in exc.render()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("ab:- \n[]{}'\"#&*!|>%@`,?1.")), max_size=60))
def test_random_yaml_text_never_raises_anything_but_spec_error(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_pipeline(path, {})
    except SpecError:
        pass
