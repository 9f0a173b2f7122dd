"""The simulator: traffic model + router + gateway state + metrics, advanced lazily in time.

Time only moves forward. ``advance_to(t)`` (1) generates arrivals for every traffic bucket
starting before ``t``, (2) executes every intent with ``ts < t`` in timestamp order
against the gateway state *as it is now*, and (3) releases every record with ``ts < t``.
Admin calls are applied between advances, so a change made at sim time ``T`` affects exactly
the calls with ``ts >= T``. Released records are final and sorted by ``ts``.
"""

from __future__ import annotations

import bisect
import heapq
import math
import threading
from typing import Any

from gatewarden.clock import VirtualClock
from gatewarden.protocols import Clock
from gatewarden.simulator.faults import FAULT_ADAPTER, ActiveFault, Fault, resolve
from gatewarden.simulator.gateway_state import GatewayState
from gatewarden.simulator.metrics import MetricsAccumulator
from gatewarden.simulator.router import Record, Router
from gatewarden.simulator.scenario import Scenario
from gatewarden.simulator.trace_shape import TraceShape
from gatewarden.simulator.traffic import BUCKET_S, Intent, TrafficModel


class Simulator:
    """A deterministic LiteLLM-like gateway. Thread-safe: every public method takes ``lock``.

    ``retain_s`` bounds how much released history is kept for ``records()``/``generate()``;
    ``store=False`` keeps none (the offline writer consumes ``advance_to``'s return value).
    """

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock | None = None,
        *,
        retain_s: float = 6 * 3600.0,
        store: bool = True,
        metrics: bool = True,
    ) -> None:
        self.scenario = scenario
        self.catalog = scenario.effective_catalog()
        self.clock: Clock = clock if clock is not None else VirtualClock(scenario.start)
        self.lock = threading.RLock()
        self.state = GatewayState(self.catalog)
        self.traffic = TrafficModel(
            self.catalog,
            seed=scenario.seed,
            base_rps=scenario.base_rps,
            diurnal_amplitude=scenario.diurnal_amplitude,
            peak_hour_utc=scenario.peak_hour_utc,
            burstiness=scenario.burstiness,
            shape=TraceShape.load(scenario.trace) if scenario.trace is not None else None,
            origin=scenario.start,
            trace_tokens=scenario.trace.tokens if scenario.trace is not None else True,
        )
        self.router = Router(self.catalog, self.state)
        self.metrics = MetricsAccumulator(self.catalog) if metrics else None
        self.retain_s = retain_s
        self.store = store
        self.faults: list[ActiveFault] = []
        self.horizon = scenario.start
        self._next_bucket = math.floor(scenario.start / BUCKET_S)
        self._intents: list[tuple[float, str, Intent]] = []
        self._pending: list[tuple[float, int, Record, bool, Record | None]] = []
        self._seq = 0
        self._ts: list[float] = []
        self._records: list[Record] = []
        self.released = 0
        for fault in scenario.faults:
            self.add_fault(fault)

    # -- faults -------------------------------------------------------------------------------

    def add_fault(self, fault: Fault | dict[str, Any]) -> ActiveFault:
        """Inject a fault (``start`` relative to the scenario start). Raises ValueError when it
        names something the catalog lacks or starts before already-simulated time."""
        with self.lock:
            if isinstance(fault, dict):
                fault = FAULT_ADAPTER.validate_python(fault)
            active = resolve(
                fault,
                uid=len(self.faults),
                origin=self.scenario.start,
                catalog=self.catalog,
                seed=self.scenario.seed,
            )
            if active.start < self.horizon:
                raise ValueError(
                    f"fault starts at {active.start:.3f}, before simulated time {self.horizon:.3f}"
                )
            self.faults.append(active)
            self.router.add_fault(active)
            self.traffic.add_fault(active)
            # Buckets already generated missed this fault's extra arrivals: add them now.
            for bucket in range(math.floor(active.start / BUCKET_S), self._next_bucket):
                for it in self.traffic.fault_arrivals(bucket, [active]):
                    heapq.heappush(self._intents, (it.ts, it.trace_id, it))
            return active

    def labels(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.label() for f in self.faults]

    # -- time ---------------------------------------------------------------------------------

    def sync(self) -> float:
        """Advance to the clock's now; returns it."""
        with self.lock:
            now = self.clock.now()
            self.advance_to(now)
            return max(now, self.horizon)

    def advance_to(self, t: float) -> list[Record]:
        """Simulate up to (not including) ``t``; returns the records released by this call."""
        with self.lock:
            if t <= self.horizon:
                return []
            intents, pending = self._intents, self._pending
            while self._next_bucket * BUCKET_S < t:
                for it in self.traffic.arrivals(self._next_bucket):
                    heapq.heappush(intents, (it.ts, it.trace_id, it))
                self._next_bucket += 1
            released: list[Record] = []
            release = self._release
            while intents and intents[0][0] < t:
                it = heapq.heappop(intents)[2]
                # Fallback calls of earlier intents that started before this one go out first.
                while pending and pending[0][0] <= it.ts:
                    release(released, *heapq.heappop(pending)[2:])
                records = self.router.execute(it)
                last = len(records) - 1
                # The first call starts at the intent's ts, so it is next in order; later calls
                # (fallbacks) wait in ``pending`` until time reaches them.
                release(released, records[0], last == 0, None)
                for i in range(1, last + 1):
                    entry = (records[i]["ts"], self._seq, records[i], i == last, records[i - 1])
                    heapq.heappush(pending, entry)
                    self._seq += 1
            while pending and pending[0][0] < t:
                release(released, *heapq.heappop(pending)[2:])
            self.horizon = t
            self.released += len(released)
            if self.store and released:
                self._ts.extend(r["ts"] for r in released)
                self._records.extend(released)
                self._prune()
            return released

    def submit(self, records: list[Record]) -> None:
        """Queue the records of one call made from outside (the OpenAI-compatible route):
        released to the request log and the metrics once time passes their ``ts``, in order
        among the generated records, exactly as a generated call's fallback hops are."""
        with self.lock:
            previous: Record | None = None
            last = len(records) - 1
            for i, rec in enumerate(records):
                heapq.heappush(self._pending, (rec["ts"], self._seq, rec, i == last, previous))
                self._seq += 1
                previous = rec

    def _release(
        self, released: list[Record], rec: Record, final: bool, previous: Record | None
    ) -> None:
        released.append(rec)
        if self.metrics is not None:
            self.metrics.observe(rec, final=final, previous=previous)

    def _prune(self) -> None:
        cut = bisect.bisect_left(self._ts, self.horizon - self.retain_s)
        # Deleting a list prefix is O(n): only do it once a good share is stale.
        if cut > 4096 and cut * 4 > len(self._ts):
            del self._ts[:cut]
            del self._records[:cut]

    # -- reads --------------------------------------------------------------------------------

    def generate(self, t0: float, t1: float) -> list[Record]:
        """Records with ``t0 <= ts < t1`` (advancing to ``t1``), regardless of the clock."""
        with self.lock:
            self.advance_to(t1)
            return self._slice(t0, t1)

    def records(self, since: float, until: float | None = None) -> list[Record]:
        """Records with ``since <= ts < min(until, now)``, syncing to the clock first."""
        with self.lock:
            now = self.sync()
            end = now if until is None else min(until, now)
            return self._slice(since, end)

    def _slice(self, t0: float, t1: float) -> list[Record]:
        lo = bisect.bisect_left(self._ts, t0)
        hi = bisect.bisect_left(self._ts, t1)
        return self._records[lo:hi] if hi > lo else []

    def exposition(self) -> bytes:
        """The ``/metrics`` body as of the clock's now."""
        with self.lock:
            self.sync()
            if self.metrics is None:
                return b""
            return self.metrics.exposition()

    def spend(self, alias: str) -> float:
        with self.lock:
            return self.router.spend.get(alias, 0.0)

    def status(self) -> dict[str, Any]:
        """Plain-JSON state for ``GET /sim/state``."""
        with self.lock:
            now = self.sync()
            return {
                "now": now,
                "scenario": self.scenario.name,
                "seed": self.scenario.seed,
                "start": self.scenario.start,
                "end": self.scenario.end,
                "released_records": self.released,
                "active_faults": [f.label() for f in self.faults if f.active(now)],
                "gateway": self.state.snapshot(),
            }
