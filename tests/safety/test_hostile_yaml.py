"""Hostile pipeline files: an alias bomb or an oversized file is refused at once with one line and exit 2, and YAML
with anchors and aliases never crashes the loader (SpecError, or the same data PyYAML's safe loader gives)."""

from __future__ import annotations

import math
import resource
import time

import pytest
import yaml
from harness import cli_env, deploypipe, write_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploypipe.core.yamlio import MAX_BYTES, parse_yaml
from deploypipe.engine.loader import load_pipeline
from deploypipe.errors import SpecError


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """'Billion laughs': level n is a list of ``width`` aliases of level n-1 (9 levels of 9: 9**9 leaves)."""
    lines = ["version: 1", "name: bomb", f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    lines += ["stages:", "  - id: a", "    type: shell.run", f"    with: {{command: 'true', env: *a{levels - 1}}}"]
    return "\n".join(lines) + "\n"


def mapping_bomb(levels: int = 9, width: int = 9) -> str:
    """The same with mappings: level n maps a key to a list of ``width`` aliases of level n-1."""
    lines = ["m0: &m0 {k0: lol}"]
    for level in range(1, levels):
        lines.append(f"m{level}: &m{level} {{k{level}: [{', '.join([f'*m{level - 1}'] * width)}]}}")
    return "\n".join(lines) + "\n"


def merge_key_bomb(levels: int = 9, width: int = 9) -> str:
    """Merge keys: level n merges ``width`` aliases of level n-1 (``<<: [*m, *m, ...]``)."""
    lines = ["m0: &m0 {k0: lol, j0: lol}"]
    for level in range(1, levels):
        lines.append(f"m{level}: &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * width)}], k{level}: lol}}")
    return "\n".join(lines) + "\n"


# CPU time, not wall time: other processes on a shared 2-core machine must not make these tests flaky.
@pytest.mark.parametrize("bomb", [alias_bomb, mapping_bomb])
def test_a_nine_by_nine_alias_bomb_is_refused_in_under_a_second_by_the_loader(bomb):
    started = time.process_time()
    with pytest.raises(SpecError, match="expands to more than .* nodes"):
        parse_yaml(bomb(), "bomb.yaml")
    assert time.process_time() - started < 1.0


def test_a_merge_key_bomb_loads_or_is_refused_in_under_a_second_by_the_loader():
    started = time.process_time()
    try:
        loaded = parse_yaml(merge_key_bomb(), "bomb.yaml")
    except SpecError:
        pass
    else:
        assert len(loaded.data["m8"]) < 100
    assert time.process_time() - started < 1.0


def _cpu_of_child(root, *args: str) -> tuple[object, float]:
    """Run the CLI; (result, CPU seconds it used) -- CPU, not wall time, so a busy machine does not skew it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = deploypipe(root, *args, env=cli_env(), timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


@pytest.mark.e2e
def test_plan_on_an_alias_bomb_exits_2_with_one_line_in_under_a_second_past_startup(tmp_path):
    write_pipeline(tmp_path, "version: 1\nname: fine\nstages:\n  - id: a\n    type: shell.run\n"
                   "    with: {command: 'true'}\n", name="fine.yaml")
    fine, startup = _cpu_of_child(tmp_path, "plan", "--pipeline", "pipelines/fine.yaml")
    assert fine.returncode == 0, fine.stderr
    (tmp_path / "pipelines" / "p.yaml").write_text(alias_bomb())
    result, took = _cpu_of_child(tmp_path, "plan", "--pipeline", "pipelines/p.yaml")
    assert result.returncode == 2, result.stderr[-500:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pipelines/p.yaml" in lines[0] and "alias" in lines[0], lines
    assert took < startup + 1.0, f"plan used {took:.2f}s of CPU; the same command on a small file {startup:.2f}s"


def test_an_oversized_pipeline_file_is_refused_with_one_line_before_it_is_parsed(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text("version: 1\nname: big\n# " + "x" * MAX_BYTES + "\n")
    composed: list[str] = []
    compose = yaml.compose
    monkeypatch.setattr(yaml, "compose", lambda text, **kw: (composed.append(text), compose(text, **kw))[1])
    with pytest.raises(SpecError, match="expected at most") as caught:
        load_pipeline(path, {})
    assert composed == []  # refused on its size: not one byte of it went through the YAML parser
    assert len(caught.value.render().splitlines()) == 1


# -- generated YAML with anchors and aliases ---------------------------------------------------------------------
SCALARS = st.sampled_from(["lol", "1", "-2", "0.5", "null", "~", "true", "no", "''", '"x y"', "2026-11-30", "a b",
                           "'*a0'", "'&a1'", "!!str t", "[]", "{}"])
HOSTILE_SCALARS = st.one_of(SCALARS, st.just("<<"))  # a bare merge key as a value: PyYAML refuses it too


@st.composite
def anchored_documents(draw, strict: bool = False) -> str:
    """A flow-style YAML document whose nodes may carry anchors (&aN) and refer back to them (*aN), with merge keys
    (``<<: *aN``), and sometimes an alias to an anchor that does not exist (yet).

    ``strict``: only documents PyYAML must load and deploypipe too -- every mapping key unique in the document,
    aliases only to defined anchors, merges only of mappings that hold no merge themselves, each merged once.
    """
    anchors: dict[str, str] = {}  # name -> "plain" (a mapping without merges), "merged" or "other"
    keys = iter(range(10**6))

    def key() -> str:
        return f"k{next(keys)}" if strict else draw(st.sampled_from(["k", "id", "stages", "with", "1", "a b"]))

    def node(depth: int) -> tuple[str, str]:
        choice = draw(st.integers(0, 9 if depth < 4 else 3))
        kind = "other"
        if choice <= 2:
            text = draw(SCALARS if strict else HOSTILE_SCALARS)
        elif choice == 3:
            if anchors and (strict or draw(st.booleans())):
                return "*" + draw(st.sampled_from(sorted(anchors))), "alias"
            if strict:
                return draw(SCALARS), "other"
            return "*a" + str(draw(st.integers(0, 20))), "alias"  # maybe undefined
        elif choice <= 6:
            text = "[" + ", ".join(node(depth + 1)[0] for _ in range(draw(st.integers(0, 4)))) + "]"
        else:
            items = []
            mergeable = sorted(n for n, k in anchors.items() if k == "plain" or not strict)
            kind = "plain"
            if mergeable and draw(st.booleans()):
                merged = draw(st.lists(st.sampled_from(mergeable), min_size=1, max_size=3, unique=strict))
                items.append("<<: " + ("*" + merged[0] if len(merged) == 1 else
                                       "[" + ", ".join("*" + m for m in merged) + "]"))
                kind = "merged"
            for _ in range(draw(st.integers(0, 4))):
                value, value_kind = node(depth + 1)
                kind = "merged" if value_kind == "alias" and strict else kind  # keep it simple: no merge of those
                items.append(f"{key()}: {value}")
            text = "{" + ", ".join(items) + "}"
        if draw(st.integers(0, 3)) == 0:
            taken = sorted(anchors)
            fresh = strict or not taken or draw(st.booleans())
            name = f"a{len(anchors)}" if fresh else draw(st.sampled_from(taken))
            anchors[name] = kind  # redefining one is legal YAML 1.2; PyYAML refuses it (both must then refuse)
            return f"&{name} {text}", kind
        return text, kind

    top = draw(st.lists(st.sampled_from(["version", "name", "stages", "targets", "x", "y", "z"]), min_size=1,
                        max_size=6, unique=strict))
    return "\n".join(f"{name}: {node(0)[0]}" for name in top) + "\n"


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=anchored_documents())
def test_yaml_with_anchors_and_aliases_loads_as_pyyaml_does_or_is_a_spec_error(document):
    try:
        loaded = parse_yaml(document, "gen.yaml")
    except SpecError as exc:
        assert exc.render().startswith("gen.yaml"), exc.render()
        return
    try:
        expected = yaml.safe_load(document)
    except yaml.YAMLError:
        pytest.fail(f"deploypipe loaded a document PyYAML rejects:\n{document}")
    assert _same(loaded.data, expected), document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=anchored_documents(strict=True))
def test_yaml_with_anchors_aliases_and_non_overlapping_merges_loads_exactly_as_pyyaml_does(document):
    expected = yaml.safe_load(document)
    assert _same(parse_yaml(document, "gen.yaml").data, expected), document


def test_a_key_that_overrides_one_pulled_in_by_a_merge_key_wins_as_in_yaml():
    document = "defaults: &d {retry: 3, timeout: 10}\nstage:\n  <<: *d\n  timeout: 20\n"
    assert parse_yaml(document, "p.yaml").data["stage"] == {"retry": 3, "timeout": 20}


def test_a_key_written_twice_in_one_mapping_is_still_refused():
    with pytest.raises(SpecError, match="duplicate key 'timeout'"):
        parse_yaml("stage: {timeout: 10, timeout: 20}\n", "p.yaml")


@settings(max_examples=300, deadline=None)
@given(document=anchored_documents(), cut=st.integers(0, 400), junk=st.sampled_from(["&", "*", "<<: *a0", "&a0 ",
                                                                                        "*a1", ": ", "]", "}"]))
def test_damaged_yaml_with_anchors_and_aliases_never_raises_anything_but_spec_error(document, cut, junk):
    damaged = document[:cut] + junk + document[cut:]
    try:
        parse_yaml(damaged, "gen.yaml")
    except SpecError:
        pass
