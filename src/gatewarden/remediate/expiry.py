"""Ending key blocks that carry a TTL (``block_key`` with ``ttl_s``).

Nothing is scheduled in memory: the expiry time is the block's ``action.applied`` timestamp plus
its ``ttl_s``, both in the event log, so a daemon restarted after the expiry unblocks on its
first tick, and one restarted before it unblocks on time. The unblock is recorded like any
action -- ``action.intended`` then ``action.applied`` (or ``action.failed``), flagged
``expiry: true`` and keyed ``ttl:{run}:{step}`` -- so it happens once and is retried with
backoff when the gateway is down.

The latest block of a key decides: a later block of the same key (another incident, or the same
key blocked again) supersedes an earlier block's TTL, and a block that found the key already
blocked by someone else never unblocks it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.models import EventType, GatewayAction
from gatewarden.remediate.runlog import Keys, RunLog, StepLog
from gatewarden.remediate.steps import StepExecutor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Block:
    run: RunLog
    index: int
    key: str
    at: float
    ttl_s: float | None
    #: False when the key was already blocked before this block (nothing to undo by itself)
    changed: bool


def _block(run: RunLog, index: int, rec: StepLog) -> Block | None:
    if rec.intended is None or rec.applied is None:
        return None
    action = rec.intended.payload.get("action")
    if not isinstance(action, Mapping) or action.get("type") != "block_key":
        return None
    params = action.get("params")
    if not isinstance(params, Mapping) or not isinstance(params.get("key"), str):
        return None
    ttl = params.get("ttl_s")
    ttl_s = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else None
    changed = rec.intended.payload.get("inverse") is not None
    return Block(run, index, params["key"], rec.applied.ts, ttl_s, changed)


def due(runs: Iterable[RunLog], now: float) -> list[tuple[Block, float]]:
    """The blocks whose TTL has run out and that still have to be lifted, with their expiry."""
    by_key: dict[str, list[Block]] = {}
    for run in runs:
        for index in run.applied_steps():
            block = _block(run, index, run.steps[index])
            if block is not None:
                by_key.setdefault(block.key, []).append(block)
    out: list[tuple[Block, float]] = []
    for blocks in by_key.values():
        blocks.sort(key=lambda b: b.at)
        latest = blocks[-1]
        rec = latest.run.steps[latest.index]
        if latest.ttl_s is None or rec.rolled_back is not None:
            continue
        if rec.exp_applied is not None or rec.exp_terminal_failure is not None:
            continue
        # Already blocked by someone else before gatewarden's first block: not ours to lift.
        if not latest.changed and not any(b.changed for b in blocks[:-1]):
            continue
        expires_at = latest.at + latest.ttl_s
        if now >= expires_at:
            out.append((latest, expires_at))
    return out


def expire_blocks(ex: StepExecutor, runs: Iterable[RunLog]) -> None:
    """Lift every block whose TTL has run out (one call each, backoff on failure)."""
    for block, expires_at in due(runs, ex.now):
        _lift(ex, block, expires_at)


def _lift(ex: StepExecutor, block: Block, expires_at: float) -> None:
    run, index = block.run, block.index
    rec = run.steps[index]
    action = GatewayAction(type="unblock_key", params={"key": block.key})
    key = Keys.expiry(run.run_id, index)
    if rec.exp_intended is None:
        ex.emit(
            run,
            EventType.ACTION_INTENDED,
            key,
            step=index,
            action=action.model_dump(mode="json"),
            inverse=None,
            preview=f"block of key {block.key} expired after {block.ttl_s:g}s: unblock it",
            expiry=True,
            expires_at=expires_at,
            idempotency_key=key,
        )
    if not ex.may_call(rec.exp_failures):
        return
    attempt = len(rec.exp_failures) + 1
    try:
        outcome = ex.gateway.apply(action, key=key)
    except (GatewayUnavailable, GatewayRejected) as exc:
        transient = isinstance(exc, GatewayUnavailable)
        if transient:
            ex.breaker.failure(ex.now)
        retryable = transient and attempt < ex.limits.max_attempts
        log.warning("run %s: unblocking %s at TTL failed: %s", run.run_id, block.key, exc)
        ex.emit(
            run,
            EventType.ACTION_FAILED,
            Keys.expiry_failed(run.run_id, index, attempt),
            step=index,
            error=f"TTL unblock of {block.key}: {exc}",
            retryable=retryable,
            attempt=attempt,
            expiry=True,
        )
        return
    ex.breaker.success()
    log.info("run %s: key %s unblocked, its block's TTL ran out", run.run_id, block.key)
    ex.emit(
        run,
        EventType.ACTION_APPLIED,
        Keys.expiry_applied(run.run_id, index),
        step=index,
        outcome=outcome.model_dump(mode="json"),
        expiry=True,
    )
