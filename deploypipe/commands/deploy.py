"""``deploy``: run the pipeline (inside the embedded local default when the pipeline asks for it) and report."""

from __future__ import annotations

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.local import maybe_local
from deploypipe.commands.run import emit_report, run_pipeline

__all__ = ["deploy"]


def deploy(inv: Invocation, *, resume: str | None = None) -> int:
    """Run (or resume) the pipeline; print the report; return its exit code."""
    with maybe_local(inv):
        report = run_pipeline(inv, resume=resume)
        if inv.keep_running and inv.env.get("DEPLOYPIPE_LOCAL_DIR"):
            _print_local_urls(inv)
    return emit_report(inv, report)


def _print_local_urls(inv: Invocation) -> None:
    """Where the local default's services answer (it keeps running until `invoke clean`)."""
    from deploypipe.render.client import RenderClient

    with RenderClient.from_env(inv.env) as client:
        for service in client.list_services():
            inv.err.write(f"{service.name}: {service.url} (kept running; stop with `invoke clean`)\n")
