"""Fixtures of the fault-injection suite (helpers live in faultkit.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faultkit import kill_survivors, new_token


@pytest.fixture
def token() -> Iterator[str]:
    """A unique `sleep` argument; whatever still runs with it after the test is killed (and the test fails)."""
    value = new_token()
    yield value
    kill_survivors(value)
