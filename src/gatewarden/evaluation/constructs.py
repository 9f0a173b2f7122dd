"""Scenario-level hard negatives the simulator has no fault type for.

Each construct edits a simulated record list and returns the *negative labels* it creates
(``"negative": true``): windows and scopes where a page would be a false alarm. Faults the
simulator does have (one-minute blips, slow drift made of small steps) are negatives by
relabelling, see :mod:`gatewarden.evaluation.suites`.

* :class:`PlannedMigration` — from ``at_s`` a workflow sends its calls to other model groups
  (a deliberate move, e.g. gpt-4o -> claude-sonnet). Simulated by splicing in the records of a
  second simulator whose catalog has the new routing: arrivals depend only on (seed, time), so
  every other workflow's calls are the same in both.
* :class:`NewTeamRamp` — a new team's key appears at ``at_s`` and ramps linearly to ``rps`` over
  ``ramp_s`` (records of a one-key simulator, thinned by the ramp).
* :class:`LongSession` — a legitimate agent session of ``calls`` calls with a new prompt every
  call and varied tools, spread over tens of minutes.
* :class:`ExpensiveRequest` — one request costing ``factor`` times its workflow's usual.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from gatewarden.simulator import Scenario, Simulator
from gatewarden.simulator.catalog import ApiKey, Catalog, Team, Workflow

Record = dict[str, Any]
Label = dict[str, Any]


def simulate(scenario: Scenario) -> list[Record]:
    """Every record of ``scenario``, in ts order."""
    sim = Simulator(scenario, store=False, metrics=False)
    return sim.advance_to(scenario.end)


def negative(kind: str, scope: dict[str, str], start: float, end: float, what: str) -> Label:
    return {
        "kind": kind,
        "scope": scope,
        "start": start,
        "end": end,
        "fault": what,
        "negative": True,
    }


@dataclass(frozen=True)
class PlannedMigration:
    workflow: str
    groups: dict[str, float]
    at_s: float

    def apply(self, scenario: Scenario, records: list[Record]) -> tuple[list[Record], list[Label]]:
        catalog = scenario.effective_catalog()
        workflows = [
            w.model_copy(update={"model_groups": dict(self.groups)})
            if w.name == self.workflow
            else w
            for w in catalog.workflows
        ]
        moved = scenario.model_copy(
            update={"catalog": catalog.model_copy(update={"workflows": workflows})}
        )
        cut = scenario.start + self.at_s
        after = [r for r in simulate(moved) if r["ts"] >= cut]
        spliced = [r for r in records if r["ts"] < cut] + after
        window = (cut, cut + 1800.0)
        labels = [
            negative(kind, {"workflow": self.workflow}, *window, "planned_migration")
            for kind in ("cost", "ttft", "error_rate", "traffic", "fallback_storm")
        ]
        return spliced, labels


@dataclass(frozen=True)
class NewTeamRamp:
    at_s: float
    ramp_s: float
    rps: float
    team: str = "newteam"
    group: str = "gpt-4o-mini"

    def apply(self, scenario: Scenario, records: list[Record]) -> tuple[list[Record], list[Label]]:
        base = scenario.effective_catalog()
        alias, workflow = f"{self.team}-prod", f"{self.team}-chat"
        catalog = Catalog(
            providers=base.providers,
            deployments=base.deployments,
            model_groups=base.model_groups,
            teams=[Team(name=self.team)],
            keys=[ApiKey(alias=alias, token=f"sk-{self.team}", team=self.team, workflow=workflow)],
            workflows=[Workflow(name=workflow, team=self.team, model_groups={self.group: 1.0})],
            router=base.router,
        )
        alone = scenario.model_copy(
            update={
                "catalog": catalog,
                "base_rps": self.rps,
                "faults": [],
                "seed": scenario.seed + 1,
            }
        )
        start = scenario.start + self.at_s
        rng = np.random.default_rng((scenario.seed, 0xA11CE))
        added: list[Record] = []
        for record in simulate(alone):
            ramp = (record["ts"] - start) / self.ramp_s
            if ramp > 0 and rng.random() < min(1.0, ramp):
                added.append(record)
        window = (start, scenario.end)
        labels = [
            negative(kind, {"team": self.team}, *window, "new_team_ramp")
            for kind in ("traffic", "cost", "error_rate")
        ]
        return sorted(records + added, key=lambda r: r["ts"]), labels


@dataclass(frozen=True)
class LongSession:
    at_s: float
    calls: int = 200
    workflow: str = "code-agent"
    group: str = "claude-sonnet"

    def apply(self, scenario: Scenario, records: list[Record]) -> tuple[list[Record], list[Label]]:
        catalog = scenario.effective_catalog()
        wf = catalog.workflow(self.workflow)
        key = next(k for k in catalog.keys if k.workflow == wf.name)
        group = next(g for g in catalog.model_groups if g.name == self.group)
        dep = catalog.deployment(group.deployments[0])
        rng = np.random.default_rng((scenario.seed, 0x5E55))
        session = "sess-long-" + hashlib.sha256(f"{scenario.seed}".encode()).hexdigest()[:10]
        ts = scenario.start + self.at_s
        added: list[Record] = []
        tools = wf.tools or ["search"]
        for i in range(self.calls):
            ts += float(rng.lognormal(np.log(wf.call_gap_s.median), wf.call_gap_s.sigma))
            tokens_in = int(wf.input_tokens.median) + i * wf.context_growth
            tokens_out = int(rng.lognormal(np.log(wf.output_tokens.median), 0.5))
            ttft = float(rng.lognormal(np.log(dep.ttft_ms.median), dep.ttft_ms.sigma))
            cost = (
                tokens_in * dep.input_price_per_m / 1e6 + tokens_out * dep.output_price_per_m / 1e6
            )
            added.append(
                {
                    "ts": round(ts, 3),
                    "request_id": f"chatcmpl-{session}-{i}",
                    "trace_id": f"{session}-{i}",
                    "session_id": session,
                    "api_key": key.alias,
                    "team": key.team,
                    "workflow": wf.name,
                    "provider": dep.provider,
                    "model": dep.model,
                    "requested_model": group.name,
                    "status": 200,
                    "error": None,
                    "latency_ms": round(ttft + 10.0 * tokens_out, 2),
                    "ttft_ms": round(ttft, 2),
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cost_usd": round(cost, 9),
                    "fallback": False,
                    "retries": 0,
                    "prompt_hash": f"{int(rng.integers(0, 2**62)):016x}",
                    "tool": tools[int(rng.integers(0, len(tools)))] if i < self.calls - 1 else None,
                }
            )
        scope = {"api_key": key.alias, "workflow": wf.name, "session_id": session}
        labels = [negative("agent_loop", scope, float(added[0]["ts"]), ts, "long_session")]
        return sorted(records + added, key=lambda r: r["ts"]), labels


@dataclass(frozen=True)
class ExpensiveRequest:
    at_s: float
    workflow: str = "analytics-summarize"
    factor: float = 60.0

    def apply(self, scenario: Scenario, records: list[Record]) -> tuple[list[Record], list[Label]]:
        at = scenario.start + self.at_s
        ordinary = [
            r
            for r in records
            if r["workflow"] == self.workflow and r["ts"] >= at and r["status"] == 200
        ]
        if not ordinary:
            return records, []
        template = ordinary[0]
        big = dict(template)
        big.update(
            request_id=f"{template['request_id']}-big",
            trace_id=f"{template['trace_id']}-big",
            input_tokens=int(template["input_tokens"] * self.factor),
            output_tokens=int(template["output_tokens"] * self.factor),
            cost_usd=round(template["cost_usd"] * self.factor, 9),
            latency_ms=template["latency_ms"] * 4,
        )
        labels = [
            negative("cost", {"workflow": self.workflow}, at, at + 300.0, "expensive_request"),
            negative("cost", {"api_key": template["api_key"]}, at, at + 300.0, "expensive_request"),
        ]
        return sorted([*records, big], key=lambda r: r["ts"]), labels


Construct = PlannedMigration | NewTeamRamp | LongSession | ExpensiveRequest
