"""Health verification end to end with the real sample app on the local Render: a stale commit and a release that
degrades only after 20 s are both caught and rolled back (exit 3), and manual rollback to a chosen deploy."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from deploypipe.commands.invocation import load
from deploypipe.commands.rollback import rollback
from deploypipe.commands.run import run_pipeline
from deploypipe.engine.loader import LoadedPipeline
from deploypipe.errors import UsageError
from deploypipe.local.repo import LocalRepo

pytestmark = pytest.mark.e2e
APP = "examples/sampleapp/app.py"

STALE_COMMIT = '''
import os as _os
_os.environ["RENDER_GIT_COMMIT"] = "0123456789abcdef0123456789abcdef01234567"  # a stale build reports an old commit
'''
DEGRADES_AFTER_20_S = '''
import time as _time
_STARTED = _time.time()
_original_health = health


async def health(request):  # noqa: F811 - healthy for 20 s, then failing
    if _time.time() - _STARTED > 20:
        return JSONResponse({"status": "unhealthy", "database": "ok"}, status_code=500)
    return await _original_health(request)


app = Starlette(routes=[Route("/health", health), Route("/", index), Route("/notes", notes, methods=["GET", "POST"])])
'''


def _with_verify(loaded: LoadedPipeline, **changes) -> LoadedPipeline:
    params = dict(loaded.params)
    params["verify"] = params["verify"].model_copy(update=changes)
    return LoadedPipeline(loaded.path, loaded.spec, params, loaded.secrets, loaded.source)


@pytest.fixture(scope="module")
def live(local):
    project, inv = local
    first = run_pipeline(inv)
    assert first.exit_code == 0, first.message
    return inv, LocalRepo(Path(inv.env["DEPLOYPIPE_LOCAL_REPO"])), first


def _serving(inv) -> str:
    from deploypipe.render.client import RenderClient

    with RenderClient.from_env(inv.env) as client:
        return httpx.get(client.find_service("sampleapp").url + "/health", timeout=5).json()["commit"]


@pytest.mark.parametrize("name, addition, observe_s, expected", [
    ("stale-commit", STALE_COMMIT, 2, "expected {commit} (stale instance?)"),
    ("degrades-after-20s", DEGRADES_AFTER_20_S, 40, "became unhealthy during the observation window"),
])
def test_bad_release_is_caught_by_health_verification_and_rolled_back(live, name, addition, observe_s, expected):
    inv, repo, first = live
    good = repo.head()
    source = (repo.path / APP).read_text()
    bad = repo.commit_change({APP: source + addition}, f"test: {name}")
    try:
        report = run_pipeline(inv, loaded=_with_verify(load(inv), observe_s=observe_s, interval_s=1))
    finally:
        repo.reset_to(good)
    assert report.exit_code == 3 and report.rollback.verified is True, report.message
    assert expected.format(commit=bad[:12]) in report.message
    assert _serving(inv) == first.deploys[0].commit


def test_manual_rollback_to_a_chosen_deploy_and_refusal_without_yes(live):
    inv, repo, first = live
    target = first.deploys[0].deploy_id
    with pytest.raises(UsageError, match="refusing to roll back without confirmation; hint: pass --yes"):
        rollback(inv, service="web", to=target, run=None, yes=False)
    report = rollback(inv, service="sampleapp", to=target, run=None, yes=True)
    assert report.exit_code == 0 and report.stages[0].outputs["to_deploy"] == target, report.message
    assert _serving(inv) == first.deploys[0].commit
