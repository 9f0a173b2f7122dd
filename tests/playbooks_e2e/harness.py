"""The shipped playbooks against the simulator, over real HTTP on 127.0.0.1.

One harness = a simulator with one or more faults, served by SimulatorServer; a pipeline of the
real ingest (HTTP request log) -> aggregate -> history -> RemediateStage with LiteLLMAdmin
pointed at the simulator; a SQLite store; a VirtualClock stepped 15 s per tick. Incidents are
appended as ``incident.opened`` events (what correlation would write), so each test starts the
playbook exactly when it wants; approvals go through ``record_decision`` like a human's would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewarden.aggregate import AggregateStage, SeriesHistory
from gatewarden.clock import VirtualClock
from gatewarden.gateways.litellm_admin import LiteLLMAdmin
from gatewarden.ingest.http_log import HttpRequestLogSource
from gatewarden.models import Event, EventType, Incident, IncidentStatus, Severity
from gatewarden.pipeline import Pipeline
from gatewarden.protocols import GatewayAdmin, Tick
from gatewarden.remediate import RemediateStage, load_playbooks, record_decision
from gatewarden.remediate.runlog import run_id_for
from gatewarden.simulator import Fault, Scenario, Simulator, SimulatorServer, default_catalog
from gatewarden.simulator.catalog import Catalog
from gatewarden.simulator.gateway_state import AdminCall
from gatewarden.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
TICK_S = 15.0
ONCALL = "U-ONCALL"
#: faults start this long after the scenario start (a few ticks of normal traffic first)
ONSET_S = 120.0

Record = dict[str, Any]


class PushHistory:
    """What DetectStage does for verification: keep each tick's frames in the history."""

    name = "history"

    def __init__(self, history: SeriesHistory) -> None:
        self.history = history

    def run(self, tick: Tick) -> None:
        self.history.push(tick.now, tick.frames)


@dataclass
class SimHarness:
    sim: Simulator
    server: SimulatorServer
    clock: VirtualClock
    store: SQLiteStore
    admin: LiteLLMAdmin
    history: SeriesHistory
    stage: RemediateStage
    pipeline: Pipeline
    source: HttpRequestLogSource
    stage_kwargs: dict[str, Any] = field(default_factory=dict)

    # -- driving -----------------------------------------------------------------------------

    def tick(self) -> Tick:
        self.clock.advance(TICK_S)
        return self.pipeline.tick()

    def ticks(self, n: int) -> None:
        for _ in range(n):
            self.tick()

    def skip(self, seconds: float) -> None:
        """Let time pass without ticking: nothing is ingested or decided meanwhile (the engine
        needs no tick while it waits for a human, and a timeout is judged on the next one)."""
        self.clock.advance(seconds)
        self.source.cursor = self.clock.now()

    def until(self, done: Callable[[], bool], *, max_ticks: int) -> int:
        for n in range(1, max_ticks + 1):
            self.tick()
            if done():
                return n
        raise AssertionError(f"not done after {max_ticks} ticks")

    def new_stage(self, gateway: GatewayAdmin | None = None, **overrides: Any) -> RemediateStage:
        """A fresh engine on the same store (a restart), replacing the pipeline's."""
        kwargs = self.stage_kwargs | overrides
        stage = build_stage(self.store, gateway or self.admin, self.history, self.clock, **kwargs)
        self.pipeline.stages[-1] = stage
        self.stage = stage
        return stage

    def open_incident(self, incident_id: str, kind: str, scope: dict[str, str]) -> str:
        """Open an incident now; returns the run id of the playbook that should take it."""
        self.store.append(
            [
                Event(
                    ts=self.clock.now(),
                    type=EventType.INCIDENT_OPENED,
                    incident_id=incident_id,
                    key=f"opened:{incident_id}",
                    payload={
                        "kinds": [kind],
                        "scope": scope,
                        "severity": "critical",
                        "title": f"{kind} on {scope}",
                        "root_cause": None,
                        "alerts": [],
                    },
                )
            ]
        )
        playbook = self.stage.match(_incident(incident_id, kind, scope))
        assert playbook is not None, f"no shipped playbook takes {kind} {scope}"
        return run_id_for(incident_id, playbook.name)

    def approve(self, run_id: str, step: int) -> None:
        record_decision(
            self.store,
            run_id=run_id,
            step=step,
            decision="granted",
            by=ONCALL,
            reason="e2e test",
            now=self.clock.now(),
        )

    # -- reading -----------------------------------------------------------------------------

    def state(self, run_id: str) -> str | None:
        done = self.store.events(run_id=run_id, types=[EventType.PLAYBOOK_FINISHED])
        return str(done[0].payload["state"]) if done else None

    def writes(self) -> list[tuple[str, str, Any]]:
        """Every admin call that could change the gateway, as the simulator received it."""
        return [(c.method, c.path, c.body) for c in self.calls() if c.method != "GET"]

    def calls(self) -> list[AdminCall]:
        return self.sim.state.admin_calls()

    def applied_at(self, run_id: str, step: int) -> float:
        for event in self.store.events(run_id=run_id, types=[EventType.ACTION_APPLIED]):
            if event.payload["step"] == step and not event.payload.get("expiry"):
                return event.ts
        raise AssertionError(f"step {step} of {run_id} was not applied")

    def records(self, since: float, until: float | None = None) -> list[Record]:
        return self.sim.records(since, until)

    def close(self) -> None:
        self.server.stop()
        self.source.close()
        self.admin.close()
        self.store.close()


def _incident(incident_id: str, kind: str, scope: dict[str, str]) -> Incident:
    return Incident(
        id=incident_id,
        status=IncidentStatus.OPEN,
        kinds=(kind,),
        scope=scope,
        severity=Severity.CRITICAL,
        opened_at=0.0,
    )


def build_stage(
    store: SQLiteStore,
    gateway: GatewayAdmin,
    history: SeriesHistory,
    clock: VirtualClock,
    **kwargs: Any,
) -> RemediateStage:
    return RemediateStage(
        load_playbooks(PLAYBOOKS),
        store,
        gateway,
        history,
        clock,
        approver_groups={"oncall": [ONCALL]},
        **kwargs,
    )


def start(
    faults: Sequence[Fault],
    *,
    base_rps: float = 4.0,
    catalog: Catalog | None = None,
    store_path: Path | None = None,
    **stage_kwargs: Any,
) -> SimHarness:
    """``store_path``: a file store (for a CLI run on the same store), else in memory."""
    scenario = Scenario(
        name="e2e",
        seed=11,
        duration_s=6 * 3600,
        base_rps=base_rps,
        faults=list(faults),
        catalog=catalog,
    )
    clock = VirtualClock(scenario.start)
    sim = Simulator(scenario, clock, retain_s=2 * 3600)
    server = SimulatorServer(sim)
    url = server.start()
    store = SQLiteStore(store_path or ":memory:")
    admin = LiteLLMAdmin(url, scenario.master_key)
    history = SeriesHistory()
    stage = build_stage(store, admin, history, clock, **stage_kwargs)
    source = HttpRequestLogSource(url, since=scenario.start)
    pipeline = Pipeline(
        [source], [AggregateStage(), PushHistory(history), stage], clock, tick_seconds=TICK_S
    )
    h = SimHarness(sim, server, clock, store, admin, history, stage, pipeline, source, stage_kwargs)
    # Up to the fault onset without ingesting: tests compare the simulator's own records, and
    # verification only looks at ticks after an action.
    h.skip(ONSET_S)
    return h


def token(alias: str) -> str:
    """The hashed token LiteLLM's key endpoints are sent for the simulator's key ``alias``."""
    return next(k.hashed for k in default_catalog().keys if k.alias == alias)


def after(records: list[Record], **match: Any) -> list[Record]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def served_per_minute(records: list[Record], **match: Any) -> int:
    """The most calls matching ``match`` let through to a provider in any trailing minute (a
    request and its fallback calls share a trace: it counts once, at its first call)."""
    starts: dict[str, float] = {}
    for r in after(records, **match):
        if r["provider"] != "gateway":
            starts[r["trace_id"]] = min(r["ts"], starts.get(r["trace_id"], r["ts"]))
    served = sorted(starts.values())
    best, lo = 0, 0
    for hi, ts in enumerate(served):
        while served[lo] <= ts - 60.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
