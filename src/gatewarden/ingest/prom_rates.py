"""Successive scrapes of cumulative counters -> per-interval increases, and histogram quantiles.

The rules follow Prometheus' ``increase()`` and ``histogram_quantile()`` where they apply to
two adjacent scrapes:

* **reset**: a value below the previous one means the counter restarted (the gateway did);
  the increase is the new value. A changed ``_created`` stamp means the same, even when the
  restarted counter has already climbed past its old value.
* **new series**: LiteLLM creates a series on its first increment, so a series first seen
  after the baseline scrape counts in full, unless its ``_created`` stamp says it existed
  before the previous scrape (we missed it, e.g. it flapped away for a long time).
* **missing series**: a series absent from a scrape yields nothing (not a zero); its last
  value is remembered for ``forget_after`` seconds so its return is a normal increase.
* **stale scrapes**: a scrape whose newest sample is not newer than the previous scrape's is
  ignored (same instant twice, or an older page arriving late).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from gatewarden.ingest.prom_parse import Scrape
from gatewarden.models import Sample

#: A series' labels as a hashable set: no sorting (sorting ~3k label sets of ~17 labels each
#: was most of a tick's scrape processing), and equal whatever order the page lists them in.
LabelKey = frozenset[tuple[str, str]]
Result = Literal["none", "baseline", "ok", "stale", "out_of_order"]

_COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def label_key(labels: dict[str, str], drop: str | None = None) -> LabelKey:
    if drop is None or drop not in labels:
        return frozenset(labels.items())
    return frozenset(kv for kv in labels.items() if kv[0] != drop)


def base_name(name: str) -> str:
    """``x_total``/``x_bucket``/``x_count``/``x_sum``/``x_created`` -> ``x``."""
    for suffix in (*_COUNTER_SUFFIXES, "_created"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_cumulative(name: str, type_: str) -> bool:
    """Whether a sample is a monotonic counter (``_created`` stamps are metadata, not data)."""
    if name.endswith("_created"):
        return False
    if type_ in ("counter", "histogram"):
        return True
    if type_ == "summary":
        return name.endswith(("_count", "_sum"))
    return type_ == "untyped" and name.endswith("_total")


@dataclass(frozen=True)
class Increase:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Deltas:
    """Every counter's increase between two scrapes ``window`` seconds apart, ending ``ts``."""

    ts: float
    window: float
    increases: list[Increase] = field(default_factory=list)
    _by_name: dict[str, list[Increase]] | None = field(default=None, repr=False, compare=False)
    _indexed: int = field(default=0, repr=False, compare=False)

    def of(self, name: str) -> list[Increase]:
        if self._by_name is None or self._indexed != len(self.increases):
            self._by_name = {}
            for inc in self.increases:
                self._by_name.setdefault(inc.name, []).append(inc)
            self._indexed = len(self.increases)
        return self._by_name.get(name, [])


@dataclass
class _Series:
    value: float
    seen: float
    created: float | None


class RateTracker:
    """Turns each new scrape into :class:`Deltas` against the one before it."""

    def __init__(self, *, forget_after: float = 3600.0) -> None:
        self.forget_after = forget_after
        self.last_ts: float | None = None
        self.last_result: Result = "none"
        self.resets = 0
        self._series: dict[tuple[str, LabelKey], _Series] = {}

    def update(self, scrape: Scrape) -> Deltas | None:
        """Deltas since the previous accepted scrape; None for the baseline and stale scrapes.

        The scrape is dated by its newest counter sample: the pull time (``scrape.ts``) unless
        the exposition carries its own timestamps.
        """
        counters = [
            s for s in scrape.samples if is_cumulative(s.name, scrape.types.get(s.name, ""))
        ]
        scrape_ts = max((s.ts for s in counters), default=scrape.ts)
        previous = self.last_ts
        if previous is not None and scrape_ts <= previous:
            self.last_result = "stale" if scrape_ts == previous else "out_of_order"
            return None
        created = _created_stamps(scrape)
        deltas = Deltas(ts=scrape_ts, window=0.0 if previous is None else scrape_ts - previous)
        for sample in counters:
            key = (sample.name, label_key(sample.labels))
            born = created.get(_created_key(sample)) if created else None
            increase = self._increase(self._series.get(key), sample.value, born, previous)
            self._series[key] = _Series(sample.value, scrape_ts, born)
            if increase is not None:
                deltas.increases.append(Increase(sample.name, sample.labels, increase))
        self._forget(scrape_ts)
        self.last_ts = scrape_ts
        if previous is None:
            self.last_result = "baseline"
            return None
        self.last_result = "ok"
        return deltas

    def _increase(
        self, prev: _Series | None, value: float, born: float | None, previous: float | None
    ) -> float | None:
        if previous is None:
            return None  # baseline: everything so far happened before we looked
        if prev is None:
            if born is not None and born < previous:
                return None  # it existed before the previous scrape: we only missed it
            return value
        restarted = born is not None and prev.created is not None and born != prev.created
        if value < prev.value or restarted:
            self.resets += 1
            return value
        return value - prev.value

    def _forget(self, now: float) -> None:
        cutoff = now - self.forget_after
        stale = [k for k, s in self._series.items() if s.seen < cutoff]
        for key in stale:
            del self._series[key]


def _created_stamps(scrape: Scrape) -> dict[tuple[str, LabelKey], float]:
    return {
        (s.name[: -len("_created")], label_key(s.labels)): s.value
        for s in scrape.samples
        if s.name.endswith("_created")
    }


def _created_key(sample: Sample) -> tuple[str, LabelKey]:
    drop = "le" if sample.name.endswith("_bucket") else None
    return base_name(sample.name), label_key(sample.labels, drop)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """PromQL's ``histogram_quantile`` over ``(upper_bound, cumulative_count)`` pairs.

    Linear interpolation inside the bucket holding the rank; the first bucket starts at 0
    (unless its bound is <= 0); a rank in the ``+Inf`` bucket returns the highest finite
    bound. NaN when there are fewer than two buckets, no ``+Inf`` bucket or no observations.
    Non-monotonic counts (a scrape racing an observation) are clamped like PromQL does.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count
    ordered = sorted(merged.items())
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return math.nan
    bounds = [b for b, _ in ordered]
    counts: list[float] = []
    for _, count in ordered:
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if not total > 0:
        return math.nan
    rank = q * total
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if not count > 0:
        return start  # q = 0 over an empty first bucket: the lowest possible value
    return start + (end - start) * (rank / count)
