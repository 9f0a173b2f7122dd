"""Shared builders for remediation tests: real store, real in-memory gateway, virtual clock."""

from __future__ import annotations

from typing import Any

import pandas as pd

from gatewarden.clock import VirtualClock
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.models import Event, EventType
from gatewarden.projections import run_from_events
from gatewarden.protocols import Tick
from gatewarden.remediate.engine import RemediateStage
from gatewarden.remediate.language import Playbook
from gatewarden.store.sqlite import SQLiteStore

T0 = 1_700_000_000.0
TICK = 15.0


class FakeMetrics:
    """MetricsView over a dict: ``set("error_rate", {"provider": "openai"}, 0.3)``."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float | None] = {}
        self.queries: list[tuple[str, dict[str, str], str | None]] = []

    def set(self, metric: str, where: dict[str, str], value: float | None) -> None:
        self.values[(metric, tuple(sorted(where.items())))] = value

    def query(self, metric: str, where: dict[str, str], level: str | None = None) -> float | None:
        self.queries.append((metric, dict(where), level))
        return self.values.get((metric, tuple(sorted(where.items()))))


def failover_playbook(**overrides: Any) -> Playbook:
    data: dict[str, Any] = {
        "name": "provider-failover",
        "mode": "approve",
        "match": {"kinds": ["error_rate"], "scope": {"provider": "*"}},
        "steps": [
            {"type": "approval", "approvers": ["U1", "U2"], "timeout_s": 600},
            {
                "type": "action",
                "action": "failover_provider",
                "params": {"provider": "{{ incident.scope.provider }}"},
            },
            {
                "type": "verify",
                "checks": [
                    {
                        "metric": "error_rate",
                        "where": {"provider": "{{ incident.scope.provider }}"},
                        "below": 0.02,
                        "no_data": "pass",
                    },
                    {"metric": "error_rate", "where": {}, "below": 0.05},
                ],
                "for_ticks": 3,
                "timeout_s": 600,
            },
            {"type": "notify", "text": "moved off {{ incident.scope.provider }}"},
        ],
        "on_failure": "rollback",
        "cooldown_s": 1800,
    }
    data.update(overrides)
    return Playbook.model_validate(data)


def block_playbook(**overrides: Any) -> Playbook:
    data: dict[str, Any] = {
        "name": "block-runaway-key",
        "mode": "auto",
        "match": {"kinds": ["cost"], "scope": {"api_key": "*"}},
        "steps": [
            {"type": "approval", "approvers": ["U1"]},
            {
                "type": "action",
                "action": "block_key",
                "params": {"key": "{{ incident.scope.api_key }}"},
            },
        ],
        "cooldown_s": 0,
    }
    data.update(overrides)
    return Playbook.model_validate(data)


def make_gateway() -> InMemoryGateway:
    return InMemoryGateway.build(
        keys=["team-a-1", "team-a-2", "team-b-1"],
        deployments=[
            {"id": "oa-4o", "model_name": "gpt-4o", "model": "openai/gpt-4o", "order": 1},
            {"id": "az-4o", "model_name": "gpt-4o", "model": "azure/gpt-4o", "order": 2},
            {"id": "oa-mini", "model_name": "gpt-4o-mini", "model": "openai/gpt-4o-mini"},
            {"id": "az-mini", "model_name": "gpt-4o-mini", "model": "azure/gpt-4o-mini"},
            {"id": "an-son", "model_name": "claude", "model": "anthropic/claude-sonnet"},
        ],
    )


def open_incident(
    store: SQLiteStore,
    incident_id: str,
    scope: dict[str, str],
    *,
    kind: str = "error_rate",
    severity: str = "critical",
    ts: float = T0,
) -> None:
    store.append(
        [
            Event(
                ts=ts,
                type=EventType.INCIDENT_OPENED,
                incident_id=incident_id,
                key=f"opened:{incident_id}",
                payload={
                    "kinds": [kind],
                    "scope": scope,
                    "severity": severity,
                    "title": f"{kind} on {scope}",
                    "root_cause": None,
                    "alerts": [],
                },
            )
        ]
    )


class Harness:
    """An engine on a store, with a virtual clock stepping in 15 s ticks."""

    def __init__(
        self,
        playbooks: list[Playbook],
        *,
        store: SQLiteStore | None = None,
        gateway: InMemoryGateway | None = None,
        **kwargs: Any,
    ) -> None:
        self.store = store or SQLiteStore(":memory:")
        self.gateway = gateway or make_gateway()
        self.metrics = FakeMetrics()
        self.clock = VirtualClock(T0)
        self.playbooks = playbooks
        self.kwargs = kwargs
        self.stage = self.new_stage()
        self.ticks: list[Tick] = []

    def new_stage(self, gateway: Any = None) -> RemediateStage:
        return RemediateStage(
            self.playbooks,
            self.store,
            gateway if gateway is not None else self.gateway,
            self.metrics,
            self.clock,
            **self.kwargs,
        )

    def tick(self, advance: float = TICK, stage: RemediateStage | None = None) -> Tick:
        now = self.clock.advance(advance)
        tick = Tick(now=now, start=now - TICK, records=pd.DataFrame())
        (stage or self.stage).run(tick)
        self.ticks.append(tick)
        return tick

    def events(self, *types: EventType, run_id: str | None = None) -> list[Event]:
        return self.store.events(types=[t.value for t in types] or None, run_id=run_id)

    def types(self, run_id: str) -> list[str]:
        return [e.type.value for e in self.store.events(run_id=run_id)]

    def finished_state(self, run_id: str) -> str | None:
        done = self.events(EventType.PLAYBOOK_FINISHED, run_id=run_id)
        return str(done[0].payload["state"]) if done else None

    def projected(self, run_id: str) -> Any:
        return run_from_events(self.store.events(run_id=run_id))
