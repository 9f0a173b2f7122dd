"""Impact previews: how much of a model group's recent traffic a failover would move.

A failover plan (:mod:`.routing`) knows which deployments it ranks behind the others; the
daemon knows what traffic they served lately (the per-tick frames kept in
``aggregate.SeriesHistory``). The share is

    requests served by the moved (provider, served model) pairs  /  requests of the model group

summed over the last :data:`PREVIEW_TICKS` ticks kept, from the ``model`` level (provider,
served model) and the ``requested_model`` level (the model group) of those frames. When another
group serves the same (provider, model) pair its calls cannot be told apart in those levels,
so no share is claimed for that group rather than a wrong one.

Planning happens inside the gateway adapters, which know nothing of the daemon's frames, so
:class:`TrafficPreviewGateway` wraps whatever adapter the daemon uses and plans under
:func:`recent_traffic`, a context variable that :meth:`FailoverPlan.preview` reads: the adapters
and the shared planner stay unchanged, and planning without it (``playbook test``, unit tests)
gives the plain preview.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from gatewarden.gateways.router import Reconciling
from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction
from gatewarden.protocols import GatewayAdmin

#: Recent ticks an impact preview counts (5 minutes at the default 15 s tick).
PREVIEW_TICKS = 20


@dataclass(frozen=True)
class Served:
    """The (provider, served model) pairs moved off one group; ``shared``: another group
    serves one of them too."""

    pairs: tuple[tuple[str, str], ...]
    shared: bool = False


class _Stamped(Protocol):
    @property
    def ts(self) -> float: ...


class TrafficSource(Protocol):
    """Recent per-tick frames; ``aggregate.SeriesHistory`` is one."""

    def __len__(self) -> int: ...

    def entry(self, ago: int = 0) -> _Stamped | None: ...

    def query(
        self, metric: str, where: Mapping[str, str], level: str | None = None, *, ago: int = 0
    ) -> float | None: ...


_TRAFFIC: ContextVar[TrafficSource | None] = ContextVar("gatewarden_traffic", default=None)


@contextmanager
def recent_traffic(source: TrafficSource) -> Iterator[None]:
    """Plans made inside this block preview their traffic share from ``source``."""
    token = _TRAFFIC.set(source)
    try:
        yield
    finally:
        _TRAFFIC.reset(token)


@dataclass(frozen=True)
class Share:
    group: str
    moved: float
    total: float

    @property
    def percent(self) -> int:
        return round(100 * min(1.0, self.moved / self.total))


def _sum(source: TrafficSource, where: Mapping[str, str], level: str, ticks: int) -> float:
    total = 0.0
    for ago in range(ticks):
        value = source.query("requests", where, level, ago=ago)
        if value is not None and math.isfinite(value):
            total += value
    return total


def shares(source: TrafficSource, served: Mapping[str, Served], ticks: int) -> list[Share]:
    """Each group's share moved, over the last ``ticks`` ticks (groups without one left out)."""
    out = []
    for group, moved in served.items():
        if moved.shared or not moved.pairs:
            continue
        total = _sum(source, {"requested_model": group}, "requested_model", ticks)
        if total <= 0:
            continue
        taken = sum(
            _sum(source, {"provider": provider, "model": model}, "model", ticks)
            for provider, model in moved.pairs
        )
        out.append(Share(group, taken, total))
    return out


def _span(source: TrafficSource, ticks: int) -> str:
    newest, oldest = source.entry(0), source.entry(ticks - 1)
    following = source.entry(1)
    if newest is None or oldest is None or following is None or ticks < 2:
        return f"the last {ticks} tick" + ("s" if ticks != 1 else "")
    seconds = newest.ts - oldest.ts + (newest.ts - following.ts)
    if seconds >= 60:
        return f"the last {round(seconds / 60)} min"
    return f"the last {seconds:.0f} s"


def traffic_share(served: Mapping[str, Served]) -> str:
    """'63 % of its traffic in the last 5 min (630 of 1,000 requests)', per moved group, from
    the traffic source of :func:`recent_traffic`; '' outside it or without data."""
    source = _TRAFFIC.get()
    if source is None or not served or len(source) == 0:
        return ""
    ticks = min(PREVIEW_TICKS, len(source))
    found = shares(source, served, ticks)
    if not found:
        return ""
    window = _span(source, ticks)
    if len(served) == 1 and len(found) == 1:
        s = found[0]
        counts = f"{round(s.moved):,} of {round(s.total):,} requests"
        return f"{s.percent} % of its traffic in {window} ({counts})"
    parts = [f"{s.percent} % of {s.group}'s traffic" for s in found]
    return f"{', '.join(parts)} in {window}"


class TrafficPreviewGateway:
    """A GatewayAdmin whose plans preview the share of recent traffic they move.

    Only ``plan`` changes (it runs under :func:`recent_traffic`); ``apply`` and reconciliation
    pass through, so idempotency and fencing are the inner adapter's.
    """

    def __init__(self, inner: GatewayAdmin, traffic: TrafficSource) -> None:
        self.inner = inner
        self.name = inner.name
        self._traffic = traffic

    def __repr__(self) -> str:
        return f"TrafficPreviewGateway({self.inner!r})"

    def plan(self, action: GatewayAction) -> ActionPlan:
        with recent_traffic(self._traffic):
            return self.inner.plan(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        return self.inner.apply(action, key=key)

    def satisfied(self, action: GatewayAction) -> bool:
        return isinstance(self.inner, Reconciling) and self.inner.satisfied(action)
