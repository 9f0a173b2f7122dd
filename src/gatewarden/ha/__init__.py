"""High availability: one leader among replicas sharing a store, and fenced gateway actions."""

from gatewarden.ha.leader import (
    LEADER_LEASE,
    FencedGateway,
    LeaderElector,
    LeaseStore,
    ttl_for,
)
from gatewarden.ha.stages import LeaderOnly, LeaseStage, leader_only

__all__ = [
    "LEADER_LEASE",
    "FencedGateway",
    "LeaderElector",
    "LeaderOnly",
    "LeaseStage",
    "LeaseStore",
    "leader_only",
    "ttl_for",
]
