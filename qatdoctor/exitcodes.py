"""Every exit code qatdoctor uses, in one place (documented in docs/guide.md "Exit codes")."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes. Tool failures never share a code with findings."""

    OK = 0
    PROBLEMS = 1
    USAGE = 2
    UNKNOWN = 3
    MATRIX_INVALID = 4
    TARGET_UNUSABLE = 5
    BAD_INPUT = 6
    ENV_BUILD_FAILED = 7
    INTERNAL = 70
