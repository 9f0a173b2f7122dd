"""Helpers for the simulator tests: short scenarios, record filters, a live-server handle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from gatewarden.clock import VirtualClock
from gatewarden.simulator import Scenario, Simulator
from gatewarden.simulator.scenario import DEFAULT_START

START = DEFAULT_START
MASTER = "sk-test-master"


def scenario(*faults: Any, seed: int = 11, duration_s: float = 3600.0, **kw: Any) -> Scenario:
    return Scenario.model_validate(
        {"seed": seed, "duration_s": duration_s, "master_key": MASTER, "faults": list(faults)} | kw
    )


def window(records: list[dict[str, Any]], t0: float, t1: float) -> list[dict[str, Any]]:
    return [r for r in records if t0 <= r["ts"] < t1]


def error_ratio(records: list[dict[str, Any]]) -> float:
    return sum(int(r["status"]) >= 400 for r in records) / max(1, len(records))


@dataclass
class Live:
    sim: Simulator
    clock: VirtualClock
    client: httpx.Client
    url: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {MASTER}"}

    def step(self, seconds: float) -> float:
        return self.clock.advance(seconds)

    def requests(self, since: float, until: float | None = None) -> list[dict[str, Any]]:
        params = {"since": since} | ({"until": until} if until is not None else {})
        resp = self.client.get("/gatewarden/requests", params=params)
        assert resp.status_code == 200, resp.text
        return [json.loads(line) for line in resp.text.splitlines() if line]
