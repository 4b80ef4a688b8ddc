"""The command line's one error boundary: a command's outcome -> its exit code, with at most one line on stderr.

SIGINT and SIGTERM raise :class:`~deploypipe.engine.signals.Interrupted` while a
command runs, so a cancelled CI job is recorded and rolled back like Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

__all__ = ["run_action"]


def run_action(action: Callable[..., int | None], /, **options: Any) -> int:
    """``action(**options)``'s exit code; a DeployPipeError is its one line and code, never a traceback."""
    from deploypipe.engine.signals import interruptible
    from deploypipe.errors import DeployPipeError

    with interruptible():
        try:
            return action(**options) or 0
        except DeployPipeError as exc:
            from deploypipe.commands.invocation import fail_line

            return fail_line(exc)
        except KeyboardInterrupt:
            sys.stderr.write("deploypipe: interrupted before any stage ran\n")
            return 1
        except Exception as exc:  # a bug or an unexpected environment: one line, the traceback on request
            if os.environ.get("DEPLOYPIPE_DEBUG"):
                raise
            from deploypipe.core.redact import Redactor

            redactor = Redactor()
            redactor.add_from_env(os.environ)
            sys.stderr.write(redactor.text(f"deploypipe: unexpected error: {type(exc).__name__}: {exc}; hint: this is "
                                           "likely a bug; DEPLOYPIPE_DEBUG=1 shows the traceback. Any run record "
                                           "in .deploypipe/runs/ says what the run did\n"))
            return 1
