"""``gatewarden undo RUN_ID --by USER``: apply the inverse of every action a run applied.

The inverses are the ones persisted with each action's intent (computed from the gateway state
before the change), applied newest first through the engine's rollback path
(:func:`~gatewarden.remediate.rollback.apply_inverse`): intent stored before the call under
the idempotency key ``rollback:{run}:{step}``, ``action.rolled_back`` after it, both carrying
``by`` and ``reason``. A crash between the two resumes on the next ``undo`` without calling
again when the gateway already shows the inverse's effect.

* A run still in progress is refused unless ``force``: then it is first finished
  (``rolled_back``, ``undone_by``), so the daemon stops advancing it, and undone.
* Steps already rolled back or undone are not touched; a run with nothing left is a no-op.
* A step whose action changed nothing (no inverse), or a block its TTL already lifted, is
  skipped. The first failure stops the undo (older steps are not undone out of order).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pandas as pd

from gatewarden.errors import PlaybookError
from gatewarden.gateways.actions import describe
from gatewarden.models import EventType, GatewayAction
from gatewarden.protocols import Clock, GatewayAdmin, Store, Tick
from gatewarden.remediate import guardrails
from gatewarden.remediate.eventlog import EventLog
from gatewarden.remediate.rollback import apply_inverse
from gatewarden.remediate.runlog import Keys, RunLog
from gatewarden.remediate.steps import Limits, StepExecutor


class UndoRefused(PlaybookError):
    """The run cannot be undone now (unknown, or still in progress without ``force``)."""


@dataclass
class UndoResult:
    run_id: str
    #: steps whose inverse this call applied, newest first, with what was done
    undone: list[tuple[int, str]] = field(default_factory=list)
    #: steps undone or rolled back before this call
    already: list[int] = field(default_factory=list)
    #: steps with nothing to undo, and why
    skipped: list[tuple[int, str]] = field(default_factory=list)
    #: the step whose inverse failed (the undo stopped there), and the error
    failed: tuple[int, str] | None = None
    forced: bool = False

    @property
    def ok(self) -> bool:
        return self.failed is None

    def summary(self) -> str:
        lines: list[str] = []
        if self.forced:
            lines.append(f"run {self.run_id} was still in progress: finished it (forced)")
        for index, what in self.undone:
            lines.append(f"step {index}: undone: {what}")
        for index, why in self.skipped:
            lines.append(f"step {index}: nothing to undo ({why})")
        if self.failed is not None:
            index, error = self.failed
            lines.append(f"step {index}: undo FAILED: {error}; run undo again to retry")
        elif not self.undone:
            already = f" (step(s) {', '.join(map(str, self.already))} already undone)"
            lines.append(f"run {self.run_id}: nothing to undo" + (already if self.already else ""))
        return "\n".join(lines)


class _NoMetrics:
    def query(self, metric: str, where: dict[str, str], level: str | None = None) -> float | None:
        return None


def _why_not(run: RunLog, index: int) -> str | None:
    """Why step ``index`` has nothing to undo (None: it has)."""
    rec = run.steps[index]
    if rec.intended is None or rec.intended.payload.get("inverse") is None:
        return "the action changed nothing, so it has no inverse"
    if rec.exp_applied is not None:
        return "its block was already lifted when its TTL ran out"
    return None


def undo_run(
    store: Store,
    gateway: GatewayAdmin,
    run_id: str,
    *,
    by: str,
    reason: str,
    clock: Clock,
    force: bool = False,
) -> UndoResult:
    if not by.strip():
        raise UndoRefused("--by must name who asks for the undo")
    log = EventLog(store)
    log.refresh()
    run = log.run(run_id)
    if run is None:
        raise UndoRefused(f"no playbook run {run_id!r}")
    now = clock.now()
    ex = StepExecutor(
        log,
        store,
        gateway,
        _NoMetrics(),
        Limits(),
        guardrails.CircuitBreaker(gateway.name),
    )
    ex.tick = Tick(now=now, start=now, records=pd.DataFrame())
    result = UndoResult(run_id)
    if run.finished is None:
        if not force:
            raise UndoRefused(
                f"run {run_id} is still in progress: wait for it to finish, or pass --force "
                "(the run is then stopped before its actions are undone)"
            )
        ex.emit(
            run,
            EventType.PLAYBOOK_FINISHED,
            Keys.finished(run_id),
            state="rolled_back",
            playbook=run.playbook,
            reason=f"undone by {by}" + (f": {reason}" if reason else ""),
            undone_by=by,
        )
        result.forced = True
    for index in reversed(run.applied_steps()):
        run = log.run(run_id) or run
        rec = run.steps[index]
        if rec.rolled_back is not None:
            result.already.append(index)
            continue
        why = _why_not(run, index)
        if why is not None:
            result.skipped.append((index, why))
            continue
        assert rec.intended is not None
        inverse = GatewayAction.model_validate(rec.intended.payload["inverse"])
        apply_inverse(ex, run, index, by=by, reason=reason, backoff=False)
        after = (log.run(run_id) or run).steps[index]
        if after.rolled_back is None:
            error = after.rb_failures[-1].payload.get("error") if after.rb_failures else "?"
            result.failed = (index, str(error))
            break
        result.undone.append((index, describe(inverse)))
    return result


# -- the command line ---------------------------------------------------------------------------


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", help="the playbook run (incident:playbook) to undo")
    p.add_argument("--by", required=True, help="who asks for the undo (recorded)")
    p.add_argument("--reason", default="", help="why (recorded)")
    p.add_argument(
        "--force", action="store_true", help="undo a run still in progress (it is stopped first)"
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``gatewarden undo``: 0 when everything that could be undone was; 1 otherwise."""
    from gatewarden.clock import SystemClock
    from gatewarden.config import environ, load_config
    from gatewarden.wiring import build_gateway, open_store

    out = out or sys.stdout
    config = load_config(Path(args.config))
    gateway = build_gateway(config, environ())
    store = open_store(config)
    try:
        result = undo_run(
            store,
            gateway,
            args.run_id,
            by=args.by,
            reason=args.reason,
            clock=SystemClock(),
            force=args.force,
        )
    finally:
        store.close()
    out.write(result.summary() + "\n")
    return 0 if result.ok else 1


__all__ = ["UndoRefused", "UndoResult", "configure_parser", "run", "undo_run"]
