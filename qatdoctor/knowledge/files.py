"""Where qatdoctor's data files are: in the wheel, or at the repo root when running from a checkout."""

from __future__ import annotations

from pathlib import Path


def packaged_file(name: str) -> Path:
    """A data file shipped in the wheel, or the repo-root copy when running from a checkout."""
    package = Path(__file__).resolve().parents[1]  # no importlib.resources: it costs ~15 ms of imports
    shipped = package / "data" / name
    return shipped if shipped.is_file() else package.parent / name
