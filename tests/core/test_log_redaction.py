"""Secrets never reach a log line, a logged exception's traceback included, in console and JSON mode alike."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from deploypipe.core.redact import Redactor
from deploypipe.output.logsetup import configure_logging

SECRET = "rnd_CanaryKey0123456789abcdef"


def _log_a_failure(json_lines: bool) -> str:
    stream = io.StringIO()
    redactor = Redactor()
    redactor.add(SECRET)
    configure_logging(json_lines=json_lines, redactor=redactor, stream=stream)
    log = structlog.get_logger("canary")
    try:
        raise RuntimeError(f"Render refused key {SECRET}")
    except RuntimeError:
        log.exception("render_call_failed", url=f"https://api.render.com/v1?key={SECRET}")
    return stream.getvalue()


@pytest.mark.parametrize("json_lines", [False, True], ids=["console", "json"])
def test_a_logged_exception_with_a_secret_in_its_message_is_redacted(json_lines):
    output = _log_a_failure(json_lines)
    assert "RuntimeError" in output and "Traceback" in output  # the traceback is still shown
    assert SECRET not in output
    assert "***" in output


def test_json_mode_keeps_the_traceback_as_one_redacted_field():
    record = json.loads(_log_a_failure(True).strip().splitlines()[-1])
    assert record["event"] == "render_call_failed"
    assert "RuntimeError: Render refused key ***" in record["exception"]
