"""``throttle_workflow``: the engine picks the keys that carried the workflow's recent traffic
(biggest spend first, at most ``max_keys``), persists them with the intent, reuses them for the
run's later throttles, and retries while it has seen no traffic yet."""

from __future__ import annotations

from typing import Any

import pandas as pd

from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.models import EventType
from gatewarden.protocols import Tick
from gatewarden.remediate.approvals import record_decision
from gatewarden.remediate.language import Playbook
from gatewarden.remediate.runlog import run_id_for
from gatewarden.remediate.workflow_keys import WINDOW_TICKS, WorkflowTraffic

from .helpers import TICK, Harness, open_incident

RUN = run_id_for("inc-wf", "wf-throttle")


def playbook(max_keys: int = 2) -> Playbook:
    throttle = {
        "type": "action",
        "action": "throttle_workflow",
        "params": {"workflow": "{{ incident.scope.workflow }}", "max_keys": max_keys},
    }
    return Playbook.model_validate(
        {
            "name": "wf-throttle",
            "mode": "approve",
            "match": {"kinds": ["cost"], "scope": {"workflow": "*"}},
            "steps": [
                throttle | {"params": throttle["params"] | {"rpm_limit": 10}},
                {"type": "approval", "approvers": ["U1"]},
                throttle | {"params": throttle["params"] | {"max_budget": 0}},
            ],
            "cooldown_s": 0,
        }
    )


def gateway() -> InMemoryGateway:
    return InMemoryGateway.build(
        keys={"k-big": {"rpm_limit": 600}, "k-mid": {}, "k-small": {}, "k-other": {}}
    )


def calls(**spend: float) -> pd.DataFrame:
    """One call per key of workflow ``chat`` costing the given amount, plus one of another."""
    rows: list[dict[str, Any]] = [
        {"api_key": k.replace("_", "-"), "workflow": "chat", "cost_usd": c}
        for k, c in spend.items()
    ]
    rows.append({"api_key": "k-other", "workflow": "batch", "cost_usd": 9.0})
    rows.append({"api_key": "k-other", "workflow": None, "cost_usd": 9.0})
    return pd.DataFrame(rows)


def tick(h: Harness, records: pd.DataFrame | None = None) -> Tick:
    now = h.clock.advance(TICK)
    t = Tick(now=now, start=now - TICK, records=records if records is not None else pd.DataFrame())
    h.stage.run(t)
    return t


def test_the_keys_carrying_the_workflow_are_throttled_then_frozen() -> None:
    h = Harness([playbook()], gateway=gateway())
    tick(h, calls(k_small=0.1, k_big=2.0, k_mid=0.5))
    tick(h, calls(k_mid=0.4))
    open_incident(h.store, "inc-wf", {"workflow": "chat"}, kind="cost", ts=h.clock.now())
    tick(h)
    [intended] = h.events(EventType.ACTION_INTENDED)
    # Biggest spenders first, at most max_keys=2; another workflow's key is never picked.
    assert intended.payload["action"]["params"]["keys"] == ["k-big", "k-mid"]
    assert intended.payload["inverse"] == {
        "type": "set_keys_limits",
        "params": {"limits": {"k-big": {"rpm_limit": 600}, "k-mid": {"rpm_limit": None}}},
    }
    assert "keys k-big, k-mid" in intended.payload["preview"]
    limits = {k: v.rpm_limit for k, v in h.gateway.keys.items()}
    assert limits == {"k-big": 10, "k-mid": 10, "k-small": None, "k-other": None}

    # Traffic shifts while on-call decides: the freeze still acts on the throttled keys.
    tick(h, calls(k_small=5.0))
    record_decision(h.store, run_id=RUN, step=1, decision="granted", by="U1", now=h.clock.now())
    tick(h, calls(k_small=5.0))
    frozen = h.events(EventType.ACTION_INTENDED)[-1]
    assert frozen.payload["action"]["params"]["keys"] == ["k-big", "k-mid"]
    assert h.gateway.keys["k-big"].max_budget == 0 and h.gateway.keys["k-small"].max_budget is None
    assert h.finished_state(RUN) == "succeeded"


def test_no_traffic_seen_yet_is_retried_not_failed() -> None:
    h = Harness([playbook()], gateway=gateway(), retry_base_s=TICK)
    open_incident(h.store, "inc-wf", {"workflow": "chat"}, kind="cost", ts=h.clock.now())
    tick(h)
    [failed] = h.events(EventType.ACTION_FAILED)
    assert failed.payload["retryable"] is True
    assert "no traffic of workflow chat seen" in failed.payload["error"]
    assert h.gateway.calls == []
    tick(h, calls(k_mid=0.3))
    assert [c.action.params["keys"] for c in h.gateway.calls] == [["k-mid"]]
    assert h.finished_state(RUN) is None  # on to the approval


def test_the_window_forgets_old_traffic() -> None:
    traffic = WorkflowTraffic(ticks=3)
    traffic.observe(calls(k_big=1.0))
    traffic.observe(pd.DataFrame())
    traffic.observe(calls(k_mid=0.1))
    assert traffic.keys_of("chat", 5) == ["k-big", "k-mid"]
    traffic.observe(pd.DataFrame())
    assert traffic.keys_of("chat", 5) == ["k-mid"]
    assert traffic.keys_of("batch", 5) == ["k-other"]
    assert WINDOW_TICKS * TICK == 300  # 5 minutes at the default tick
