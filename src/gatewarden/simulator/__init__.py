"""An OpenAI-compatible gateway simulator (LiteLLM-shaped), deterministic from a seed.

It produces the request log and the LiteLLM ``/metrics`` exposition, obeys the LiteLLM admin
API (block keys, rate limits, deployment order, fallbacks) and injects labelled faults, on an
injected clock so hours of traffic generate in seconds.
"""

from gatewarden.simulator.catalog import Catalog, default_catalog
from gatewarden.simulator.faults import (
    ActiveFault,
    AgentLoop,
    CostSpike,
    FallbackStorm,
    Fault,
    KeySurge,
    ProviderOutage,
    TtftDegradation,
)
from gatewarden.simulator.offline import OfflineStats, load_labels, write_offline
from gatewarden.simulator.scenario import Scenario, default_demo_scenario
from gatewarden.simulator.server import SimulatorServer, create_app
from gatewarden.simulator.sim import Simulator

__all__ = [
    "ActiveFault",
    "AgentLoop",
    "Catalog",
    "CostSpike",
    "FallbackStorm",
    "Fault",
    "KeySurge",
    "OfflineStats",
    "ProviderOutage",
    "Scenario",
    "Simulator",
    "SimulatorServer",
    "TtftDegradation",
    "create_app",
    "default_catalog",
    "default_demo_scenario",
    "load_labels",
    "write_offline",
]
