"""The local Render resolves a Blueprint's fromService as Render does: host, port and hostport of another web or
private service (its stable address on 127.0.0.1), and envVarKey (a value of the other service's own env vars); a
reference it cannot resolve is left unset with a warning naming the problem."""

from __future__ import annotations

import textwrap

import httpx
import pytest
from helpers import blueprint_render, service_app, wait_until
from structlog.testing import capture_logs

pytestmark = pytest.mark.e2e

KEY = "rnd_from_service_tests"
APP = service_app(
    "200, ({k: os.environ.get(k) for k in SHOWN} if self.path != '/upstream' else "
    "json.load(urllib.request.urlopen('http://' + os.environ['API_HOSTPORT'] + '/', timeout=5)))",
    prelude="import urllib.request\n"
            'SHOWN = ["GREETING", "TOKEN", "API_HOST", "API_PORT", "API_HOSTPORT", "API_TOKEN", "API_GREETING",\n'
            '         "MISSING", "MAILER_HOST"]')
BLUEPRINT = textwrap.dedent('''\
    services:
      - type: web
        name: api
        startCommand: python server.py
        healthCheckPath: /health
        autoDeploy: false
        envVars:
          - {key: GREETING, value: hello from api}
          - {key: TOKEN, generateValue: true}
      - type: web
        name: web
        startCommand: python server.py
        healthCheckPath: /health
        autoDeploy: false
        envVars:
          - {key: API_HOST, fromService: {name: api, type: web, property: host}}
          - {key: API_PORT, fromService: {name: api, type: web, property: port}}
          - {key: API_HOSTPORT, fromService: {name: api, type: web, property: hostport}}
          - {key: API_TOKEN, fromService: {name: api, type: web, envVarKey: TOKEN}}
          - {key: API_GREETING, fromService: {name: api, type: web, envVarKey: GREETING}}
          - {key: MISSING, fromService: {name: api, type: web, envVarKey: NOPE}}
          - {key: MAILER_HOST, fromService: {name: mailer, type: worker, property: host}}
      - type: worker
        name: mailer
        startCommand: python -c "import time; time.sleep(600)"
        autoDeploy: false
''')


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    files = {"server.py": APP, "render.yaml": BLUEPRINT}
    with blueprint_render(tmp_path_factory.mktemp("emulator-from-service"), {"two services": files}, key=KEY,
                          health_grace_s=10, health_interval_s=0.1) as render:
        http, urls = render.http, {}
        with capture_logs() as logs:
            for name in ("api", "web"):  # api first: the order render.release takes from this Blueprint
                service = render.service(name)
                deploy = http.post(f"/services/{service['id']}/deploys",
                                   json={"commitId": render.commits["two services"]})
                path = f"/services/{service['id']}/deploys/{deploy.json()['id']}"
                wait_until(lambda path=path: http.get(path).json()["status"] == "live", f"{name} live", timeout=60)
                urls[name] = service["serviceDetails"]["url"]
        yield {"urls": urls, "logs": logs}


def test_host_port_and_hostport_are_the_other_service_s_stable_address_and_reach_it(shop):
    api, web = (httpx.get(shop["urls"][name] + "/", timeout=5).json() for name in ("api", "web"))
    port = shop["urls"]["api"].rsplit(":", 1)[1]
    assert (web["API_HOST"], web["API_PORT"], web["API_HOSTPORT"]) == ("127.0.0.1", port, f"127.0.0.1:{port}")
    assert api["API_HOST"] is None  # api reads nothing from web
    upstream = httpx.get(shop["urls"]["web"] + "/upstream", timeout=10).json()
    assert upstream == api  # web reached api through API_HOSTPORT


def test_env_var_key_copies_the_other_service_s_value_even_a_generated_one(shop):
    api, web = (httpx.get(shop["urls"][name] + "/", timeout=5).json() for name in ("api", "web"))
    assert web["API_GREETING"] == "hello from api" and web["GREETING"] is None
    assert len(api["TOKEN"]) >= 32 and web["API_TOKEN"] == api["TOKEN"]


def test_a_reference_the_local_render_cannot_resolve_is_unset_with_a_warning_naming_the_problem(shop):
    web = httpx.get(shop["urls"]["web"] + "/", timeout=5).json()
    assert web["MISSING"] is None and web["MAILER_HOST"] is None
    problems = {e["key"]: e["problem"] for e in shop["logs"] if e["event"] == "emulator_env_service_unresolved"}
    assert problems == {"MISSING": "service 'api' has no env var NOPE",
                        "MAILER_HOST": "service 'mailer' (worker) has no address on the private network"}
