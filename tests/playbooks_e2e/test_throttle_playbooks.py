"""Throttles of what LiteLLM has no single key for: a workflow's cost spike (the keys carrying
it, then their spend frozen) and a team's traffic surge (the team's own limit)."""

from __future__ import annotations

from gatewarden.models import EventType
from gatewarden.remediate.undo import undo_run
from gatewarden.simulator import CostSpike, KeySurge

from .harness import ONSET_S, after, served_per_minute, start, token

HOURS = 3 * 3600.0
SUPPORT_CHAT = {"support-web", "support-mobile", "support-email"}


def key_update(alias: str, **limits: object) -> tuple[str, str, object]:
    return ("POST", "/key/update", {"key": token(alias), **limits})


def test_workflow_cost_spike_throttles_then_freezes_its_keys_and_undo_restores_them() -> None:
    h = start([CostSpike(start=ONSET_S, duration=HOURS, workflow="support-chat", output_factor=8)])
    try:
        h.ticks(8)  # two minutes of traffic seen: which keys carry the workflow
        run = h.open_incident("inc-wf", "cost", {"workflow": "support-chat"})
        assert run.endswith(":cost-workflow-throttle")
        h.tick()
        throttled = h.applied_at(run, 0)
        [intended] = h.store.events(run_id=run, types=[EventType.ACTION_INTENDED])
        keys = intended.payload["action"]["params"]["keys"]
        assert set(keys) == SUPPORT_CHAT and keys[0] == "support-web"  # biggest spender first
        assert h.writes() == [key_update(k, rpm_limit=10) for k in keys]
        lookups = [c.path for c in h.calls() if c.path.startswith("/key/list")]
        assert f"/key/list?key_alias={keys[0]}&return_full_object=true" in lookups
        h.skip(120)
        window = h.records(throttled, h.clock.now())
        for key in keys:
            assert served_per_minute(window, api_key=key) <= 10
        assert after(window, workflow="support-chat", status=429, error="rate_limited")

        h.approve(run, 1)
        h.tick()
        frozen = h.applied_at(run, 2)
        assert h.writes()[3:] == [key_update(k, max_budget=0.0) for k in keys]
        h.until(lambda: h.state(run) is not None, max_ticks=6)
        assert h.state(run) == "succeeded"
        later = after(h.records(frozen), workflow="support-chat")
        assert later and all(r["status"] == 400 for r in later)
        assert all(r["error"] == "budget_exceeded" for r in later)
        assert sum(r["cost_usd"] for r in later) == 0.0

        result = undo_run(h.store, h.admin, run, by="alice", reason="fixed", clock=h.clock)
        assert result.ok and [i for i, _ in result.undone] == [2, 0]
        assert h.writes()[6:] == [
            *(key_update(k, max_budget=None) for k in keys),
            *(key_update(k, rpm_limit=None) for k in keys),
        ]
        undone = h.clock.now()
        h.skip(60)
        back = after(h.records(undone), workflow="support-chat")
        assert back and not any(r["status"] in (400, 429) for r in back)
    finally:
        h.close()


def test_team_surge_caps_the_team() -> None:
    surges = [
        KeySurge(start=ONSET_S, duration=HOURS, api_key="support-web", factor=30),
        KeySurge(start=ONSET_S, duration=HOURS, api_key="support-mobile", factor=30),
    ]
    h = start(surges)
    try:
        h.skip(60)
        onset = h.sim.scenario.start + ONSET_S
        assert served_per_minute(h.records(onset), team="support") > 600
        run = h.open_incident("inc-team", "traffic", {"team": "support"})
        assert run.endswith(":team-surge-throttle")
        h.tick()  # at once: a cap, not a block
        capped = h.applied_at(run, 0)
        assert h.writes() == [("POST", "/team/update", {"team_id": "support", "rpm_limit": 300})]
        reads = [(c.method, c.path) for c in h.calls() if c.method == "GET"]
        assert ("GET", "/v2/team/list?team_alias=support&page=1&page_size=100") in reads
        assert ("GET", "/team/info?team_id=support") in reads  # the inverse's previous limit
        assert h.state(run) == "succeeded"
        h.skip(180)
        window = h.records(capped, h.clock.now())
        assert served_per_minute(window, team="support") <= 300
        limited = after(window, team="support", status=429, error="rate_limited")
        assert len(limited) > 100
        assert not after(window, team="search", error="rate_limited")  # other teams untouched
        [intended] = h.store.events(run_id=run, types=[EventType.ACTION_INTENDED])
        assert intended.payload["inverse"] == {
            "type": "update_team_limits",
            "params": {"team": "support", "rpm_limit": None},
        }
    finally:
        h.close()
