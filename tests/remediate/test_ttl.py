"""Key blocks with a TTL: lifted on time from the event log alone, once, across restarts."""

from __future__ import annotations

from typing import Any

from gatewarden.backoff import NO_JITTER
from gatewarden.models import EventType
from gatewarden.remediate.runlog import run_id_for

from .helpers import TICK, Harness, block_playbook, open_incident

RUN = run_id_for("inc-1", "block-runaway-key")


def ttl_playbook(ttl_s: float | None = 600.0, **overrides: Any) -> Any:
    params: dict[str, Any] = {"key": "{{ incident.scope.api_key }}"}
    if ttl_s is not None:
        params["ttl_s"] = ttl_s
    steps = [{"type": "action", "action": "block_key", "params": params}]
    return block_playbook(steps=steps, **overrides)


def blocked(h: Harness) -> Harness:
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    h.tick()
    assert h.gateway.keys["team-a-1"].blocked
    assert h.finished_state(RUN) == "succeeded"
    return h


def expiry_events(h: Harness) -> list[Any]:
    return [e for e in h.events() if e.payload.get("expiry")]


def calls(h: Harness) -> list[str]:
    return [c.action.type for c in h.gateway.calls]


def test_block_is_lifted_when_its_ttl_runs_out_and_only_then() -> None:
    h = blocked(Harness([ttl_playbook(600)]))
    applied_at = h.events(EventType.ACTION_APPLIED)[0].ts
    while h.clock.now() + TICK < applied_at + 600:
        h.tick()
    assert h.gateway.keys["team-a-1"].blocked and calls(h) == ["block_key"]
    h.tick()
    assert not h.gateway.keys["team-a-1"].blocked
    assert calls(h) == ["block_key", "unblock_key"]
    assert h.gateway.calls[1].key == f"ttl:{RUN}:0"
    intended, applied = expiry_events(h)
    assert (intended.type, applied.type) == (EventType.ACTION_INTENDED, EventType.ACTION_APPLIED)
    assert intended.payload["expires_at"] == applied_at + 600
    assert intended.payload["preview"] == "block of key team-a-1 expired after 600s: unblock it"
    for _ in range(3):
        h.tick()
    assert calls(h) == ["block_key", "unblock_key"]
    assert h.finished_state(RUN) == "succeeded"  # the run's outcome is not touched


def test_a_restarted_engine_lifts_an_expired_block_once() -> None:
    h = blocked(Harness([ttl_playbook(600)]))
    h.tick(3600)  # the daemon was down past the expiry; this engine lifts it at once
    restarted = h.new_stage()
    h.tick(stage=restarted)
    h.tick(stage=h.new_stage())
    assert calls(h) == ["block_key", "unblock_key"]
    assert h.gateway.replays == []


def test_guardrail_counts_a_lifted_block_as_unblocked() -> None:
    h = blocked(Harness([ttl_playbook(60)], max_keys_blocked=1))
    h.tick(60)
    open_incident(h.store, "inc-2", {"api_key": "team-b-1"}, kind="cost", ts=h.clock.now())
    h.tick()
    assert h.gateway.keys["team-b-1"].blocked  # the first key no longer counts


def test_a_later_block_of_the_same_key_supersedes_the_ttl() -> None:
    forever = ttl_playbook(None, name="block-forever", match={"kinds": ["traffic"]})
    h = blocked(Harness([ttl_playbook(600), forever]))
    h.gateway.keys["team-a-1"].blocked = False  # someone unblocked it by hand ...
    open_incident(h.store, "inc-2", {"api_key": "team-a-1"}, kind="traffic", ts=h.clock.now())
    h.tick()  # ... and a second incident blocked it with no TTL
    h.tick(3600)
    assert h.gateway.keys["team-a-1"].blocked
    assert calls(h) == ["block_key", "block_key"]


def test_a_key_someone_else_blocked_is_not_unblocked() -> None:
    h = Harness([ttl_playbook(60)])
    h.gateway.keys["team-a-1"].blocked = True
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    h.tick()
    h.tick(600)
    assert h.gateway.keys["team-a-1"].blocked
    assert "unblock_key" not in calls(h)


def test_transient_failures_retry_with_backoff_then_succeed() -> None:
    h = blocked(Harness([ttl_playbook(60)], retry_base_s=30, retry_jitter=NO_JITTER))
    h.gateway.fail_next(2, types=["unblock_key"])
    h.tick(60)  # attempt 1 fails
    h.tick()  # 15 s later: still backing off (30 s)
    assert len([e for e in expiry_events(h) if e.type is EventType.ACTION_FAILED]) == 1
    h.tick(30)  # attempt 2 fails, next in 60 s
    h.tick(60)  # attempt 3 succeeds
    failures = [e for e in expiry_events(h) if e.type is EventType.ACTION_FAILED]
    assert [f.payload["retryable"] for f in failures] == [True, True]
    assert not h.gateway.keys["team-a-1"].blocked
    assert h.finished_state(RUN) == "succeeded"


def test_permanent_failure_is_recorded_once_and_not_retried() -> None:
    h = blocked(Harness([ttl_playbook(60)]))
    h.gateway.fail_next(5, permanent=True, types=["unblock_key"])
    h.tick(60)
    h.tick(600)
    failures = [e for e in expiry_events(h) if e.type is EventType.ACTION_FAILED]
    assert len(failures) == 1 and failures[0].payload["retryable"] is False
    assert h.gateway.keys["team-a-1"].blocked


def test_kill_switch_holds_the_unblock_until_released() -> None:
    h = blocked(Harness([ttl_playbook(60)]))
    h.stage.kill_switch = True
    h.tick(600)
    assert h.gateway.keys["team-a-1"].blocked
    h.stage.kill_switch = False
    h.tick()
    assert not h.gateway.keys["team-a-1"].blocked


def test_a_rolled_back_block_is_not_lifted_again() -> None:
    verify = {
        "type": "verify",
        "checks": [{"metric": "cost", "where": {}, "below": 1.0}],
        "for_ticks": 1,
        "timeout_s": 30,
    }
    params = {"key": "{{ incident.scope.api_key }}", "ttl_s": 120}
    playbook = block_playbook(
        steps=[{"type": "action", "action": "block_key", "params": params}, verify]
    )
    h = Harness([playbook])
    h.metrics.set("cost", {}, 5.0)  # verification keeps failing -> rollback unblocks
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    for _ in range(4):
        h.tick()
    assert h.finished_state(RUN) == "rolled_back"
    h.tick(600)
    assert calls(h) == ["block_key", "unblock_key"]
    assert expiry_events(h) == []
