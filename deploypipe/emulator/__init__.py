"""The local Render: Render's public API on 127.0.0.1, running a Blueprint's services as real processes.

Same paths, JSON shapes, status codes, pagination wrappers, error bodies and
rate-limit headers as Render's OpenAPI spec (a copy ships as
``render-openapi.json``; a test validates the emulator's answers against it).
Deploy statuses move created -> build_in_progress -> pre_deploy_in_progress ->
update_in_progress -> live | build_failed | pre_deploy_failed | update_failed |
canceled. Faults (429, 5xx, latency, dropped connections, "accepted then timed
out", failing deploys) come from ``faults.py``.

Entry points: ``build_emulator``, ``EmulatorServer`` (loopback), ``in_process_client`` (in-process httpx client),
``main`` (``python -m deploypipe.emulator``).
"""

from deploypipe.emulator.server import EmulatorServer, build_emulator, in_process_client, main
from deploypipe.emulator.state import Emulator

__all__ = ["Emulator", "EmulatorServer", "build_emulator", "in_process_client", "main"]
