"""The one place structlog is configured: JSON lines (CI / --json) or a readable console, always redacted.

Logs go to stderr. ``run_id``, ``stage`` and ``service`` are bound through
contextvars, and the redaction processor runs last before rendering so no
secret reaches a log line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from deploypipe.core.deferral import critical as held_signals
from deploypipe.core.redact import Redactor

__all__ = ["configure_logging", "redaction_processor"]


def redaction_processor(redactor: Redactor) -> Any:
    def redact(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return redactor(event_dict)

    return redact


class _StderrFile:
    """Looks up ``sys.stderr`` at write time, so progress displays and test capture both see log lines."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _WholeLineLogger(structlog.WriteLogger):
    """A WriteLogger whose line a signal cannot split: a rollback's signal handler logs too, under the same lock."""

    def msg(self, message: str) -> None:
        with held_signals():
            super().msg(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


#: events the console progress display already shows (a stage's end, its warnings): not logged again there
PROGRESS_EVENTS = frozenset({"stage_started", "stage_succeeded", "stage_failed", "stage_errored", "stage_warning",
                             "retrying", "db_progress",
                             "compensation_succeeded", "compensation_failed"})


def _drop_progress_events(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if event_dict.get("event") in PROGRESS_EVENTS:
        raise structlog.DropEvent
    return event_dict


def configure_logging(*, json_lines: bool, redactor: Redactor, level: str = "info",
                      stream: TextIO | None = None, shown_by_progress: bool = False) -> None:
    """Configure structlog; with ``shown_by_progress`` the events the progress display prints are not logged."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    processors: list[Any] = [
        *([_drop_progress_events] if shown_by_progress else []),
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.dev.set_exc_info,  # log.exception() outside an except block still finds the exception
        structlog.processors.format_exc_info,  # the traceback becomes text here, BEFORE redaction, in every mode
        redaction_processor(redactor),
    ]
    if json_lines:
        processors.append(structlog.processors.JSONRenderer(sort_keys=False))
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty(), pad_event_to=24))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_args: _WholeLineLogger(stream or _StderrFile()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
