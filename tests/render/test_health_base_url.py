"""Which URL verify.health probes: the target's url, else the release this run made live, else what preflight saw,
else the service's URL on Render; never another service's, never a release without a URL; no trailing slash."""

from __future__ import annotations

import pytest

from deploypipe.errors import StageErrored
from deploypipe.spec.targets import ServiceTarget, Targets
from deploypipe.stages.base import ServiceRelease
from deploypipe.stages.http import VerifyHealth
from deploypipe.stages.render_preflight import RenderPreflight, ServiceState


def _release(service: str, url: str | None) -> ServiceRelease:
    return ServiceRelease(service=service, service_id=f"srv-{service}", deploy_id="dep-1", commit="abc1234", url=url)


def _preflight(**urls: str | None) -> RenderPreflight.Outputs:
    return RenderPreflight.Outputs(services={key: ServiceState(service_id=f"srv-{key}", url=url)
                                             for key, url in urls.items()})


CASES = [
    ("the target's url wins over everything", "https://given.example.test/",
     {"deploy": _release("web", "https://released.example.test"), "preflight": _preflight(web="https://pre.test")},
     "https://given.example.test"),
    ("else the release this run made live", None,
     {"preflight": _preflight(web="https://pre.example.test"), "deploy": _release("web", "https://released.test/")},
     "https://released.test"),
    ("the newest release of the service", None,
     {"old": _release("web", "https://old.test"), "new": _release("web", "https://new.test")}, "https://new.test"),
    ("not another service's release", None,
     {"deploy": _release("api", "https://api.test"), "preflight": _preflight(web="https://pre.example.test/")},
     "https://pre.example.test"),
    ("not a release without a URL", None,
     {"deploy": _release("web", None), "preflight": _preflight(web="https://pre.example.test")},
     "https://pre.example.test"),
    ("not what preflight saw of another service, and not a service it saw without a URL", None,
     {"preflight": _preflight(api="https://api.test", web=None)}, "https://web.example.test"),
    ("else Render's URL of the service", None, {}, "https://web.example.test"),
]


@pytest.mark.parametrize("name, target_url, earlier, expected", CASES, ids=[case[0] for case in CASES])
def test_verify_health_probes_the_url_of_the_right_release(stages, name, target_url, earlier, expected):
    stages.targets = Targets(services={"web": ServiceTarget(name="web", url=target_url),
                                       "api": ServiceTarget(name="api", url="https://api.example.test")})
    stages.outputs.update(earlier)
    assert VerifyHealth()._base_url(stages.context("verify.health"), "web") == expected


def test_a_service_without_any_url_is_an_error_that_says_where_to_set_one(stages):
    stages.targets = Targets(services={"worker": ServiceTarget(id="srv-wrk0000000000000000")})
    with pytest.raises(StageErrored, match="service srv-wrk0000000000000000 has no URL") as caught:
        VerifyHealth()._base_url(stages.context("verify.health"), "worker")
    assert caught.value.hint == "set targets.services.worker.url"
