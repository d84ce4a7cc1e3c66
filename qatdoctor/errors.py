"""The root of qatdoctor's error hierarchy; each layer subclasses it once.

The CLI turns these into a one-line message and an exit code (see `console.exit_code_for`).
"""

from __future__ import annotations


class QatdoctorError(Exception):
    """Base for every error qatdoctor raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(QatdoctorError):
    """Bad user input: unparseable version, unknown --assume name, unreadable file."""


class CollectError(QatdoctorError):
    """The collector ran but its output could not be understood."""


class TargetError(CollectError):
    """The target interpreter is missing, not executable, not Python, or died or hung."""
