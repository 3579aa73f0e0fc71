"""Fixtures for the tool tests: the probe state reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tools.probe_state import PROBE, Probe


@pytest.fixture(autouse=True)
def probe() -> Iterator[Probe]:
    PROBE.reset()
    yield PROBE
    PROBE.reset()
