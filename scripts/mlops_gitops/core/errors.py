"""One error type for users, caught once at the top of the CLI and printed as one line."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the check ran and found problems (validation, policy, drift, ...)
    ERROR = 2  # bad usage or the command could not run
    NOT_ENOUGH_DATA = 3  # drift and feedback: too few rows to judge (neither pass nor fail)


class MlopsError(Exception):
    """A problem the user can fix; the message names the file, the field and what was expected."""

    exit_code: ExitCode = ExitCode.ERROR
