"""Correlation: alerts become few, right-sized incidents."""

from gatewarden.correlate.config import CorrelateConfig
from gatewarden.correlate.grouping import related, topology_rank
from gatewarden.correlate.stage import CorrelateStage

__all__ = ["CorrelateConfig", "CorrelateStage", "related", "topology_rank"]
