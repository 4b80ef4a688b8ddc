"""The local Render: Render's public API on 127.0.0.1, running a Blueprint's services as real processes.

Same paths, JSON shapes, status codes, pagination wrappers, error bodies and
rate-limit headers as Render's OpenAPI spec, including HTTP metrics and logs
recorded from the services' real traffic and output (a copy ships as
``render-openapi.json``; a test validates the emulator's answers against it).
Deploy statuses move created -> build_in_progress -> pre_deploy_in_progress ->
update_in_progress -> live | build_failed | pre_deploy_failed | update_failed |
canceled; one deploy in progress per service, later ones ``queued`` (202).
Cron jobs run on their schedule or through ``POST /cron-jobs/{id}/runs``
(``cron.py``), recording ``cron_job_run_started`` / ``cron_job_run_ended``.
Faults (429, 5xx, latency, dropped connections, "accepted then timed out",
202 Queued, failing deploys) come from ``faults.py``.

Public API (import from ``deploypipe.emulator``)::

    Emulator(*, runtime=None, clock=time.time, api_keys=("rnd_test_key",), owner_id=..., state_file=None,
             data_dir=None, telemetry=None)       # thread-safe state; .add_service(ServiceDef, service_id=None),
                                                  # .add_postgres(PostgresRec), .trigger(service, commit_id=) ->
                                                  # (DeployRec, queued), .service(id), .faults.add(...), .close(),
                                                  # .telemetry (requests and logs, see telemetry.py),
                                                  # .recovery (point-in-time recovery knobs, see recovery.py)
    Telemetry(clock, *, max_requests=50_000, max_logs=50_000, retention_s=21600, ingest_delay_s=0, store=None)
                                                  # .request(RequestRec), .log(resource, line, type=, instance=)
    SimulatedRuntime(build_s=0, pre_deploy_s=0, update_s=0, failures={commit: phase}, job_s=0, job_exit=0,
                     output={commit: [lines its new instance prints]})
    ProcessRuntime(repo=Path, data_dir=Path, health_interval_s=0.25, health_grace_s=30.0, keep_builds=10,
                   worker_settle_s=1.0, drain_s=5.0)
    build_emulator(*, blueprint=None, repo=None, data_dir=None, api_keys=("rnd_test_key",), databases=None,
                   clock=time.time, runtime=None, faults=None, health_grace_s=30.0, health_interval_s=0.25,
                   auto_deploy_poll_s=1.0, ingest_delay_s=0.0, recovery_min_age_s=600.0,
                   recovery_window_days=7.0, recovery_creating_s=2.0)   # recovery_*: point-in-time recovery knobs
    create_app(emulator) -> starlette.applications.Starlette   # /v1/... and /_emulator/faults
    in_process_client(emulator, api_key="rnd_test_key") -> httpx.Client   # base_url http://render.local/v1
    EmulatorServer(emulator, *, host="127.0.0.1", port=0)  # .start() / .stop() / context manager; .url, .started
    serve(*, port=10000, blueprint, repo, data_dir, api_key, faults=None, databases=None, health_grace_s=30.0,
          health_interval_s=0.25, auto_deploy_poll_s=1.0, ingest_delay_s=0.0, recovery_min_age_s=600.0,
          recovery_window_days=7.0, recovery_creating_s=2.0, stop=None) -> int
                                                  #   --data-dir DIR [--faults F] [--database NAME=URL]
                                                  #   [--api-key KEY] [--health-grace-s S]
                                                  #   [--health-interval-s S] [--auto-deploy-poll-s S]
                                                  #   [--ingest-delay-s S] [--recovery-min-age-s S]
                                                  #   [--recovery-window-days D] [--recovery-creating-s S]
    apply_fault(emulator, rule_mapping)           # status, latency, drop, accept_then_timeout, accept_then_status,
                                                  # accept_then_drop, queued; also fail_deploy {service, phase},
                                                  # fail_recovery {postgres}
    push(emulator, service, commit_id, message)   # deploypipe.emulator.autodeploy: a git push (auto-deploy)
    load_blueprint(path) -> Blueprint;  ServiceDef, PostgresRec (records)

Modules, lowest first (each imports only modules before it)::

    ids, blueprint        Render-shaped ids and timestamps; the Blueprint subset the local Render runs
    cronexpr              cron expressions (UTC) and when one is next due
    records               services, deploys, jobs, cron runs, Postgres as records with their JSON shapes
    telemetry             recorded requests and log lines, bounded by count and age
    faults, connfaults    fault rules; dropped and stalled connections
    lifecycle             the Runtime protocol and the Lifecycle protocol runtimes report to
    runtime               the simulated runtime (phases on the clock)
    state                 Emulator: the deploy lifecycle rules, events, jobs, persistence
    databases, procs      Blueprint databases; checkouts and a service's environment
    health, forward, proxy  health checks of new instances; one request forwarded over h11; the stable URL
    proclogs              child processes whose output lines become logs
    process_runtime       real deploys as local processes
    autodeploy            new commits deploy while ``autoDeploy`` is on
    cron                  cron job runs: triggered (API) or due (schedule), as processes or simulated
    shapes, ratelimit     Render's JSON shapes and pages; rate limits
    snapshots, recovery   Postgres point-in-time recovery: snapshots at restore points; clones, recovery info, DELETE
    queries, observability  metrics buckets, quantiles and log pages; their route handlers
    routes, app           the HTTP API (one handler per Render operation), faults applied
    transport, server     the in-process httpx transport; uvicorn on loopback, the command line
"""

from deploypipe.emulator.app import apply_fault, create_app
from deploypipe.emulator.blueprint import ServiceDef, load_blueprint
from deploypipe.emulator.process_runtime import ProcessRuntime
from deploypipe.emulator.records import PostgresRec
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.emulator.server import EmulatorServer, build_emulator, in_process_client, serve
from deploypipe.emulator.state import Emulator
from deploypipe.emulator.telemetry import RequestRec, Telemetry

__all__ = ["Emulator", "EmulatorServer", "PostgresRec", "ProcessRuntime", "RequestRec", "ServiceDef",
           "SimulatedRuntime", "Telemetry", "apply_fault", "build_emulator", "create_app", "in_process_client",
           "load_blueprint", "serve"]
