"""The root of qatdoctor's error hierarchy; each layer subclasses it once.

The CLI turns these into a one-line message and an exit code (see `cli._exit_code_for`).
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
