"""Every seam of the pipeline, in one place.

Implementations are injected through constructors; tests substitute real lightweight ones
(a VirtualClock, a local HTTP server, an in-memory SQLite store) rather than patching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from gatewarden.models import (
    ActionOutcome,
    ActionPlan,
    Alert,
    Delivery,
    Event,
    GatewayAction,
    Message,
    Sample,
)
from gatewarden.verdicts import HealthySet

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float: ...


@dataclass
class Batch:
    """What one source yielded for one pull.

    ``records`` is a DataFrame with the request-log contract's columns (see
    :data:`gatewarden.ingest.request_log.COLUMNS`), so aggregation stays vectorised.
    """

    records: pd.DataFrame
    samples: list[Sample] = field(default_factory=list)
    malformed: int = 0
    problems: list[str] = field(default_factory=list)


@runtime_checkable
class Source(Protocol):
    """Anything that yields request records and/or metric samples up to ``until``."""

    name: str

    def pull(self, until: float) -> Batch: ...


@runtime_checkable
class Checkpointed(Protocol):
    """A source whose position survives a restart (the daemon stores it after each tick)."""

    def checkpoint(self) -> str: ...

    def restore(self, checkpoint: str) -> None: ...


@dataclass(frozen=True)
class SeriesTick:
    """One tick of every series of one detector: a vector across series, a step in time.

    ``keys[i]`` is series i's canonical scope key; ``values[i]`` its observation and
    ``volumes[i]`` how many requests stand behind it (0 = no data this tick).
    """

    ts: float
    keys: Sequence[str]
    values: FloatArray
    volumes: FloatArray


@runtime_checkable
class Detector(Protocol):
    """Streaming anomaly scorer over many series at once (river's learn_one/score_one shape).

    ``score_one`` must not change state; ``learn_one`` folds the tick into the baseline.
    Higher score = more anomalous; NaN = cannot judge (warm-up, no data).
    """

    def score_one(self, x: SeriesTick) -> FloatArray: ...

    def learn_one(self, x: SeriesTick) -> None: ...


@runtime_checkable
class Filter(Protocol):
    """Turns scores into a firing mask; thresholds live here, apart from scoring."""

    def fires(self, scores: FloatArray, x: SeriesTick) -> BoolArray: ...


@runtime_checkable
class Muter(Protocol):
    """Decides that an alert must not page (inhibition, silences)."""

    def mutes(self, alert: Alert, now: float) -> bool: ...


@runtime_checkable
class GatewayAdmin(Protocol):
    """A gateway's admin surface. ``plan`` reads current state and returns the action with its
    inverse; ``apply`` performs it. ``apply`` must be idempotent for the same ``key``."""

    name: str

    def plan(self, action: GatewayAction) -> ActionPlan: ...

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome: ...


@runtime_checkable
class Notifier(Protocol):
    """Delivers one message. Raises NotifyRetryable / NotifyRejected on failure."""

    name: str

    def deliver(self, message: Message, *, thread_ref: str | None = None) -> Delivery: ...


@runtime_checkable
class Store(Protocol):
    """Append-only event log plus small keyed state and a leadership lease."""

    def append(self, events: Sequence[Event]) -> list[Event]:
        """Store events in order; returns them with ``seq`` set. An event whose ``key`` was
        already stored is skipped and the stored one returned in its place."""
        ...

    def events(
        self,
        *,
        incident_id: str | None = None,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[Event]: ...

    def event_by_key(self, key: str) -> Event | None: ...

    def get_state(self, name: str) -> str | None: ...

    def put_state(self, name: str, value: str) -> None: ...

    def lease(self, name: str, holder: str, ttl: float, now: float) -> int | None:
        """Take or renew a lease; returns the fencing token while held, else None."""
        ...

    def lease_token(self, name: str) -> int | None:
        """The fencing token lease ``name`` carries now (None if never taken)."""
        ...

    def close(self) -> None: ...


@dataclass
class Tick:
    """The data passed along the stages during one ``Pipeline.tick``."""

    now: float
    start: float
    records: pd.DataFrame
    samples: list[Sample] = field(default_factory=list)
    malformed: int = 0
    #: aggregated metrics per grouping level, e.g. ``frames["provider"]`` indexed by scope key
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: alerts firing this tick
    alerts: list[Alert] = field(default_factory=list)
    #: fingerprints of (kind, scope) series evaluated this tick and found healthy
    clear: HealthySet = field(default_factory=HealthySet)
    #: events appended during this tick, in order
    events: list[Event] = field(default_factory=list)


@runtime_checkable
class Stage(Protocol):
    """One pipeline stage. Stages run in order; there are no back-edges."""

    name: str

    def run(self, tick: Tick) -> None: ...
