"""Exit codes of the API commands (``switchyard login``, ``workflows …``, ``runs …``).

    0    done (with --wait / watch: the run ended SUCCESS)
    1    the run ended FAILED (--wait, watch)
    2    usage: a bad flag or argument (argparse's own code)
    3    the run ended CANCELLED (--wait, watch)
    4    the API refused the request: invalid input, a conflict, a server error
    5    authentication or permission: no credentials, refused ones, a 401 or 403
    6    not found: the workflow or run does not exist or is not visible to the caller
    7    the API is unreachable (connection refused, DNS, a timeout)
    8    --timeout passed before the run ended
    130  interrupted (Ctrl-C)

Every error is one line on stderr, ``switchyard: <message>``, the API's message (which
names the field) when the API gave one.
"""

from __future__ import annotations

OK = 0
RUN_FAILED = 1
USAGE = 2
RUN_CANCELLED = 3
REFUSED = 4
NO_CREDENTIALS = 5
AUTH = 5
NOT_FOUND = 6
UNREACHABLE = 7
TIMED_OUT = 8
INTERRUPTED = 130

BY_RESULT = {"SUCCESS": OK, "FAILED": RUN_FAILED, "CANCELLED": RUN_CANCELLED}


def for_status(status_code: int) -> int:
    """The exit code of an API error answer."""
    if status_code in (401, 403):
        return AUTH
    if status_code == 404:
        return NOT_FOUND
    return REFUSED


class CliError(Exception):
    """A command failed: ``message`` (one line) and the process's ``exit_code``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
