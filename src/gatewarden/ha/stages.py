"""Pipeline stages that make a daemon a well-behaved replica, without touching the Pipeline.

Wiring (``daemon.build`` with HA on)::

    elector = LeaderElector(store, LEADER_LEASE, holder, ttl_for(tick_s), clock,
                            margin_s=gateway_timeout_s)
    gateway = FencedGateway(gateway, elector)
    stages = [LeaseStage(elector), AggregateStage(), DetectStage(...),      # every replica
              LeaderOnly(correlate, elector, rebuild=lambda: CorrelateStage(store, ...)),
              *leader_only(elector, [RemediateStage(..., gateway), NotifyStage(...), ...])]

Every replica ingests, aggregates and detects, so a standby's detector baselines are warm when
it takes over; only the leader writes incidents, acts, notifies and reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from gatewarden.errors import LeaseLostError
from gatewarden.ha.leader import LeaderElector
from gatewarden.protocols import Stage, Tick
from gatewarden.selfhealth import HealthCheck, SelfReporting

log = logging.getLogger(__name__)


class LeaseStage:
    """Renews (or takes) the lease at the start of every tick."""

    name = "lease"

    def __init__(self, elector: LeaderElector) -> None:
        self.elector = elector

    def run(self, tick: Tick) -> None:
        self.elector.tick()


class LeaderOnly:
    """Runs ``inner`` only while this replica leads.

    ``rebuild`` makes a fresh stage at the start of every leadership term: a stage that loads
    its state from the store once, when built (CorrelateStage restores its open incidents in
    its constructor), would otherwise act on the snapshot it took while standing by.

    A fence tripped inside it (LeaseLostError from a FencedGateway: the lease was lost during
    the tick) ends the stage quietly: the new leader resumes from the events, and this replica
    must not append anything more about the step it was fenced out of.
    """

    def __init__(
        self,
        inner: Stage,
        elector: LeaderElector,
        *,
        rebuild: Callable[[], Stage] | None = None,
    ) -> None:
        self.inner = inner
        self.elector = elector
        self.rebuild = rebuild
        self.name = inner.name
        self.skipped = 0
        self.fenced = 0
        self._term: int | None = None

    def run(self, tick: Tick) -> None:
        token = self.elector.token
        if token is None or not self.elector.is_leader:
            self.skipped += 1
            return
        if token != self._term:
            self._term = token
            if self.rebuild is not None:
                self.inner = self.rebuild()
        try:
            self.inner.run(tick)
        except LeaseLostError as exc:
            self.fenced += 1
            log.warning("%s stopped: fenced out mid-tick: %s", self.name, exc)

    def self_health(self, now: float) -> Sequence[HealthCheck]:
        """The inner stage's self-health while this replica leads; a standby's copy of the
        stage does not run, so it has nothing to report."""
        if isinstance(self.inner, SelfReporting) and self.elector.is_leader:
            return self.inner.self_health(now)
        return ()


def leader_only(elector: LeaderElector, stages: Sequence[Stage]) -> list[Stage]:
    return [LeaderOnly(stage, elector) for stage in stages]
