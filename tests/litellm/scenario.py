"""What the real-proxy tests share: client traffic, a ticking loop, incident lookups."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from gatewarden.models import Incident, IncidentStatus
from gatewarden.pipeline import Pipeline
from gatewarden.projections import incidents_from_events
from gatewarden.protocols import Tick
from gatewarden.store import SQLiteStore
from tests.litellm.harness import MASTER_KEY

TICK_S = 2.0
SENTINEL = "PROMPT-SENTINEL-5c1e"
DETECTORS = Path(__file__).parent / "detectors"
PLAYBOOKS = Path(__file__).parent / "playbooks"


class Traffic:
    """Two client threads per model group: one streaming (TTFT is only measured on streams),
    one plain, so a slow stream does not starve the group of volume."""

    def __init__(self, url: str, groups: tuple[str, ...] = ("primary", "backup")) -> None:
        self.url = url
        self.stop = threading.Event()
        self.sent = 0
        self.failed = 0
        self._threads = [
            threading.Thread(target=self._run, args=(group, stream), daemon=True)
            for group in groups
            for stream in (True, False)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, group: str, stream: bool) -> None:
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=15.0) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                body = {
                    "model": group,
                    "messages": [{"role": "user", "content": f"{SENTINEL} call {n}"}],
                    "stream": stream,
                }
                try:
                    with client.stream("POST", "/v1/chat/completions", json=body) as response:
                        response.read()
                        self.sent += 1
                        self.failed += response.status_code >= 400
                except httpx.HTTPError:
                    self.failed += 1
                self.stop.wait(0.02)


class Loop:
    """Ticks the pipeline every TICK_S real seconds."""

    def __init__(self, pipeline: Pipeline, store: SQLiteStore) -> None:
        self.pipeline = pipeline
        self.store = store
        self.ticks: list[Tick] = []
        self._next = time.monotonic()

    def tick(self) -> Tick:
        # A late tick is not followed by a burst of catch-up ticks: windows stay ~TICK_S long.
        self._next = max(self._next + TICK_S, time.monotonic())
        time.sleep(max(0.0, self._next - time.monotonic()))
        tick = self.pipeline.tick()
        self.ticks.append(tick)
        return tick

    def incidents(self) -> list[Incident]:
        return incidents_from_events(self.store.events())

    def until(self, what: str, done: Callable[[list[Incident]], bool], max_ticks: int) -> int:
        for n in range(1, max_ticks + 1):
            self.tick()
            if done(self.incidents()):
                return n
        raise AssertionError(f"no {what} within {max_ticks} ticks:\n{self.describe()}")

    def describe(self) -> str:
        """What the detectors saw, tick by tick (for a failure message)."""
        lines = [
            f"incident {i.title}: {i.status.value} {i.opened_at:.1f}-{i.resolved_at}"
            for i in self.incidents()
        ]
        columns = ["requests", "errors", "error_rate", "ttft_p95"]
        for tick in self.ticks[-14:]:
            frame = tick.frames.get("model")
            rows = "" if frame is None else frame[columns].round(3).to_string(header=False)
            lines.append(
                f"t={tick.now:.1f} records={len(tick.records)} alerts="
                f"{[(a.kind, a.scope.get('model')) for a in tick.alerts]}\n{rows}"
            )
        return "\n".join(lines)


def find(incidents: list[Incident], kind: str, model: str) -> Incident | None:
    for incident in incidents:
        if kind in incident.kinds and incident.scope.get("model") == model:
            return incident
    return None


def opened(kind: str, model: str) -> Callable[[list[Incident]], bool]:
    return lambda incidents: find(incidents, kind, model) is not None


def resolved(kind: str, model: str) -> Callable[[list[Incident]], bool]:
    def check(incidents: list[Incident]) -> bool:
        incident = find(incidents, kind, model)
        return incident is not None and incident.status is IncidentStatus.RESOLVED

    return check
