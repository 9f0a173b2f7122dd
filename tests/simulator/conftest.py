"""Fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.simulator import Simulator, SimulatorServer
from tests.simulator.helpers import START, Live, scenario


def _serve() -> Iterator[Live]:
    clock = VirtualClock(START)
    sim = Simulator(scenario(), clock)
    server = SimulatorServer(sim, "127.0.0.1", 0)
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            yield Live(sim, clock, client, url)
    finally:
        server.stop()


@pytest.fixture
def live() -> Iterator[Live]:
    """The real server on 127.0.0.1 (port 0) over a VirtualClock at the scenario start."""
    yield from _serve()


@pytest.fixture(scope="module")
def shared_live() -> Iterator[Live]:
    """One server for a module's tests that leave the gateway state unchanged (or only check
    their own effects): a server start/stop costs ~0.2 s."""
    yield from _serve()
