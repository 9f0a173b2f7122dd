"""Key playbooks end to end: cost spike (with the block's TTL), agent loop, key surge; the
blast-radius limits; and a run interrupted between steps and mid-step, resumed exactly once."""

from __future__ import annotations

import pytest

from gatewarden.models import ActionOutcome, ActionPlan, EventType, GatewayAction
from gatewarden.protocols import GatewayAdmin
from gatewarden.simulator import AgentLoop, CostSpike, KeySurge

from .harness import ONSET_S, TICK_S, SimHarness, after, served_per_minute, start, token

HOURS = 3 * 3600.0


def throttle(key: str, rpm: int | None) -> tuple[str, str, object]:
    """The call for ``key`` (an alias): LiteLLM is sent the key's hashed token."""
    return ("POST", "/key/update", {"key": token(key), "rpm_limit": rpm})


def block(key: str) -> tuple[str, str, object]:
    return ("POST", "/key/block", {"key": token(key)})


def throttle_then_block(
    h: SimHarness, incident: str, kind: str, scope: dict[str, str], rpm: int
) -> tuple[str, float, float]:
    """Open the incident, check the throttle, approve the block; (run, throttled, blocked)."""
    key = scope["api_key"]
    run = h.open_incident(incident, kind, scope)
    h.tick()
    throttled = h.applied_at(run, 0)
    assert h.writes() == [throttle(key, rpm)]  # at once, no approval needed to throttle
    h.skip(120)  # two minutes throttled while on-call looks
    window = h.records(throttled, h.clock.now())
    assert served_per_minute(window, api_key=key) <= rpm
    assert len(after(window, api_key=key, status=429, error="rate_limited")) > 5
    assert h.writes() == [throttle(key, rpm)]  # the block waits for a human
    h.approve(run, 1)
    h.tick()
    blocked = h.applied_at(run, 2)
    assert h.writes() == [throttle(key, rpm), block(key)]
    h.until(lambda: h.state(run) is not None, max_ticks=6)
    assert h.state(run) == "succeeded"
    later = after(h.records(blocked), api_key=key)
    assert later and all(r["status"] == 401 and r["error"] == "key_blocked" for r in later)
    assert sum(r["cost_usd"] for r in later) == 0.0  # its spend stopped
    return run, throttled, blocked


def test_cost_spike_throttles_blocks_and_the_ttl_lifts_the_block() -> None:
    spike = CostSpike(start=ONSET_S, duration=HOURS, api_key="search-prod", output_factor=8)
    h = start([spike], base_rps=2.0)  # an hour passes in this test: less traffic to simulate
    try:
        h.skip(60)
        scope = {"team": "search", "api_key": "search-prod"}
        _run, _, blocked = throttle_then_block(h, "inc-cost", "cost", scope, rpm=10)
        spent = h.sim.spend("search-prod")
        # An hour later (the playbook's ttl_s), the engine lifts the block by itself.
        h.skip(blocked + 3600 - h.clock.now() - TICK_S)
        h.tick()
        assert h.writes()[-1] == ("POST", "/key/unblock", {"key": token("search-prod")})
        applied = h.store.events(types=[EventType.ACTION_APPLIED])
        unblocked = [e for e in applied if e.payload.get("expiry")]
        assert len(unblocked) == 1
        h.skip(60)
        back = after(h.records(unblocked[0].ts), api_key="search-prod")
        assert not any(r["status"] == 401 for r in back)
        assert any(r["status"] == 200 for r in back) and h.sim.spend("search-prod") > spent
        assert served_per_minute(back, api_key="search-prod") <= 10  # the throttle stays
    finally:
        h.close()


def test_agent_loop_throttles_then_blocks_the_looping_key() -> None:
    h = start([AgentLoop(start=ONSET_S, duration=HOURS, workflow="code-agent")])
    try:
        h.skip(60)
        loop = h.sim.faults[0]
        key, session_id = str(loop.api_key), str(loop.session_id)
        scope = {"api_key": key, "workflow": "code-agent", "session_id": session_id}
        _, _, blocked = throttle_then_block(h, "inc-loop", "agent_loop", scope, rpm=10)
        session = after(h.records(blocked), session_id=session_id)
        assert session and all(r["status"] == 401 for r in session)  # the loop goes nowhere
    finally:
        h.close()


def test_key_surge_throttles_then_revokes() -> None:
    h = start([KeySurge(start=ONSET_S, duration=HOURS, api_key="growth-experiments", factor=20)])
    try:
        h.skip(60)
        scope = {"team": "growth", "api_key": "growth-experiments"}
        run, _, _ = throttle_then_block(h, "inc-surge", "traffic", scope, rpm=30)
        h.skip(900)  # a revoke has no TTL: long after, still blocked, no unblock call
        h.tick()
        assert h.writes()[-1] == block("growth-experiments")
        assert h.sim.state.key("growth-experiments").blocked
        assert h.state(run) == "succeeded"
    finally:
        h.close()


def surges() -> list[KeySurge]:
    return [
        KeySurge(start=ONSET_S, duration=HOURS, api_key="growth-experiments", factor=20),
        KeySurge(start=ONSET_S, duration=HOURS, api_key="it-sandbox", factor=30),
    ]


def test_never_more_than_max_keys_blocked() -> None:
    h = start(surges(), max_keys_blocked=1)
    try:
        h.skip(30)
        first = h.open_incident("inc-a", "traffic", {"api_key": "growth-experiments"})
        second = h.open_incident("inc-b", "traffic", {"api_key": "it-sandbox"})
        h.tick()
        h.approve(first, 1)
        h.approve(second, 1)
        h.ticks(3)
        assert [w for w in h.writes() if w[1] == "/key/block"] == [block("growth-experiments")]
        # The refused run undoes its throttle: nothing of it is left half-done.
        assert h.state(second) == "rolled_back"
        assert h.writes()[-1] == throttle("it-sandbox", None)
        failed = h.store.events(run_id=second, types=[EventType.ACTION_FAILED])
        assert "max_keys_blocked=1" in failed[0].payload["error"]
        assert not h.sim.state.key("it-sandbox").blocked
    finally:
        h.close()


def test_actions_per_hour_hold_the_next_action() -> None:
    h = start(surges(), max_actions_per_hour=3)
    try:
        h.skip(30)
        first = h.open_incident("inc-a", "traffic", {"api_key": "growth-experiments"})
        second = h.open_incident("inc-b", "traffic", {"api_key": "it-sandbox"})
        h.tick()
        h.approve(first, 1)
        h.tick()
        h.approve(second, 1)
        h.ticks(3)
        # Two throttles and one block = 3 actions: the second block waits for the hour.
        assert [w[1] for w in h.writes()] == ["/key/update", "/key/update", "/key/block"]
        assert h.state(second) is None
    finally:
        h.close()


class Crash(BaseException):
    """The process dies (not an Exception: nothing may swallow it)."""


class CrashAfterCall:
    """The call reaches the gateway, then the process dies before recording its outcome."""

    def __init__(self, inner: GatewayAdmin) -> None:
        self.inner = inner
        self.name = inner.name

    def plan(self, action: GatewayAction) -> ActionPlan:
        return self.inner.plan(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        self.inner.apply(action, key=key)
        raise Crash


def test_interrupted_run_resumes_exactly_once() -> None:
    h = start([KeySurge(start=ONSET_S, duration=HOURS, api_key="growth-experiments", factor=20)])
    try:
        h.skip(30)
        run = h.open_incident("inc-surge", "traffic", {"api_key": "growth-experiments"})
        h.tick()
        assert h.writes() == [throttle("growth-experiments", 30)]
        # Restart between steps: a new engine on the same store picks the run up at step 1.
        h.new_stage()
        h.tick()
        assert h.writes() == [throttle("growth-experiments", 30)]
        h.approve(run, 1)
        # The block reaches the gateway, then the process dies.
        h.new_stage(CrashAfterCall(h.admin))
        with pytest.raises(Crash):
            h.tick()
        assert h.writes() == [throttle("growth-experiments", 30), block("growth-experiments")]
        h.new_stage()  # restarted again: finds the block in effect, does not send it again
        h.until(lambda: h.state(run) is not None, max_ticks=6)
        assert h.state(run) == "succeeded"
        assert h.writes() == [throttle("growth-experiments", 30), block("growth-experiments")]
        applied = h.store.events(run_id=run, types=[EventType.ACTION_APPLIED])
        assert [e.payload["step"] for e in applied] == [0, 2]
        assert "already in effect" in applied[1].payload["outcome"]["detail"]
    finally:
        h.close()
