"""from_env, typed values parsed leniently, secrets masked, jobs and Postgres operations on the local Render."""

from __future__ import annotations

import pytest

from deploypipe.emulator.records import PostgresRec
from deploypipe.errors import AuthenticationError, NotFoundError
from deploypipe.render import Deploy, PostgresConnectionInfo, RenderClient, Service

SRV = "srv-web0000000000000000"
DB_PASSWORD = "s3cr3t-pg-password"


def test_from_env_without_a_key_says_to_set_render_api_key():
    with pytest.raises(AuthenticationError, match="RENDER_API_KEY is not set; hint: set RENDER_API_KEY"):
        RenderClient.from_env({"RENDER_API_URL": "http://127.0.0.1:1/v1"})


def test_from_env_sets_base_url_auth_accept_user_agent_and_timeouts():
    from importlib.metadata import version

    key = "rnd_from_env_key"
    with RenderClient.from_env({"RENDER_API_KEY": key, "RENDER_API_URL": "http://127.0.0.1:9/v1/"}) as client:
        http = client.http
        assert str(http.base_url) == "http://127.0.0.1:9/v1/"
        assert http.headers["Authorization"] == f"Bearer {key}"
        assert http.headers["Accept"] == "application/json"
        assert http.headers["User-Agent"] == f"deploypipe/{version('deploypipe')}"
        assert (http.timeout.connect, http.timeout.read) == (5.0, 30.0)
        assert key not in repr(client)
    with RenderClient.from_env({"RENDER_API_KEY": key}) as client:
        assert str(client.http.base_url) == "https://api.render.com/v1/"


def test_values_parse_leniently_ignoring_unknown_fields_and_missing_optional_ones():
    service = Service.from_json({"id": "srv-1", "name": "api", "autoDeploy": "yes", "newField": {"x": 1}})
    assert (service.url, service.branch, service.auto_deploy, service.suspended) == (None, None, True, False)
    assert Service.from_json({"id": "srv-1", "autoDeploy": "yes", "autoDeployTrigger": "off"}).auto_deploy is False
    deploy = Deploy.from_json({"id": "dep-1", "status": "live", "commit": {"id": "abc"}, "image": {}})
    assert (deploy.commit_id, deploy.commit_message, deploy.finished_at, deploy.succeeded) == ("abc", None, None, True)


def test_connection_info_never_shows_its_secrets_in_repr_or_str(render):
    url = f"postgresql://app:{DB_PASSWORD}@127.0.0.1:5432/app"
    render.emulator.add_postgres(PostgresRec(id="dpg-main", name="main-db", database="app", user="app",
                                             password=DB_PASSWORD, url=url, version="16", created_at=render.clock.now))
    info = render.client.postgres_connection_info(render.client.find_postgres("main-db").id)
    assert info.password == DB_PASSWORD and info.external_connection_string == url
    assert DB_PASSWORD not in repr(info) and DB_PASSWORD not in str(info) and DB_PASSWORD not in repr([info])
    assert isinstance(info, PostgresConnectionInfo)


def test_postgres_lookup_exports_and_recovery_info(render):
    render.emulator.add_postgres(PostgresRec(id="dpg-main", name="main-db", database="app", user="app", password="p",
                                             url="postgresql://app:p@h/app", version="16", created_at=render.clock.now))
    assert [p.name for p in render.client.list_postgres()] == ["main-db"]
    db = render.client.find_postgres("dpg-main")
    assert (db.name, db.version, db.database_name, db.status) == ("main-db", "16", "app", "available")
    render.client.create_postgres_export(db.id)
    exports = render.client.list_postgres_exports(db.id)
    assert len(exports) == 1 and exports[0].created_at
    recovery = render.client.postgres_recovery_info(db.id)
    assert (recovery.status, recovery.available) == ("NOT_AVAILABLE", False)
    with pytest.raises(NotFoundError, match="no Render Postgres named 'other'"):
        render.client.find_postgres("other")


def test_jobs_are_created_listed_read_and_cancelled(render):
    job = render.client.create_job(SRV, "python manage.py check")
    assert job.service_id == SRV and job.start_command == "python manage.py check"
    assert render.client.get_job(SRV, job.id).status == "succeeded"
    assert [j.id for j in render.client.list_jobs(SRV, status=["succeeded"])] == [job.id]
    assert render.client.cancel_job(SRV, job.id).id == job.id


def test_a_job_post_that_may_have_been_processed_is_not_retried(render):
    render.emulator.faults.add(action="accept_then_timeout", match="POST /services/*/jobs")
    with pytest.raises(Exception, match="ReadTimeout: no answer after sending"):
        render.client.create_job(SRV, "echo once")
    assert len(render.service().jobs) == 1 and render.counter.count("POST") == 1


def test_update_service_turns_auto_deploy_off_and_on(render):
    assert render.client.update_service(SRV, auto_deploy=False).auto_deploy is False
    assert render.client.get_service(SRV).auto_deploy is False
    assert render.client.update_service(SRV, auto_deploy=True).auto_deploy is True
