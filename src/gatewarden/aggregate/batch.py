"""Many tick windows aggregated at once: what a backtest needs to replay hours in seconds.

``aggregate_ticks(records, bounds).frames(k)`` equals ``aggregate(rows of tick k, start=bounds[k],
end=bounds[k+1])`` exactly (same values to the bit, same dtypes, same index), which
``tests/backtest/test_batch_equivalence.py`` checks over random multi-tick record sets. The
work is the same vectorised group-by as :func:`gatewarden.aggregate.aggregate`, but the tick
is the leading group key, so the fixed cost of a group-by (factorising the labels, sorting for
percentiles, building a frame) is paid once per chunk of ticks instead of once per tick.

Bit-exactness follows from doing the same arithmetic in the same order: ``np.bincount`` adds
each group's rows in row order whatever other groups exist, percentiles only depend on each
group's sorted values, and ratios are the same element-wise operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gatewarden.aggregate.frames import (
    _OPTIONAL_QUALIFIERS,
    GATEWAY_PROVIDER,
    LEVELS,
    METRICS,
    PROVIDER_LEVELS,
    empty_level_frame,
)
from gatewarden.aggregate.ordering import (
    dense_ranks,
    finite_order,
    group_order,
    sorted_quantiles,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

#: Integer-valued metrics that are plain per-group sums of a per-row column.
_INT_SUMS = (
    "errors",
    "rejected",
    "fallbacks",
    "input_tokens",
    "output_tokens",
    "ok_calls",
    "ok_output_tokens",
)
_LABELS: tuple[str, ...] = tuple(dict.fromkeys(label for ls in LEVELS.values() for label in ls))


def _metric_dtypes() -> dict[str, np.dtype[np.generic]]:
    dtypes = empty_level_frame("global").dtypes
    return {name: np.dtype(dtypes[name]) for name in METRICS}


_DTYPES = _metric_dtypes()


class TickFrames:
    """The level frames of consecutive ticks; tick ``k`` covers ``[bounds[k], bounds[k+1])``."""

    def __init__(
        self, bounds: FloatArray, levels: dict[str, tuple[pd.DataFrame, IntArray]]
    ) -> None:
        self.bounds = bounds
        self._levels = levels

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def frames(self, k: int) -> dict[str, pd.DataFrame]:
        """Tick ``k``'s frame per level (row slices of one frame per level: no copies)."""
        if not 0 <= k < len(self):
            raise IndexError(f"tick {k} out of range 0..{len(self) - 1}")
        return {
            level: frame.iloc[int(offsets[k]) : int(offsets[k + 1])]
            for level, (frame, offsets) in self._levels.items()
        }


def tick_index(ts: FloatArray, bounds: FloatArray) -> IntArray:
    """Tick of each timestamp: ``k`` where ``bounds[k] <= ts < bounds[k+1]``, else -1."""
    tick = np.searchsorted(bounds, ts, side="right").astype(np.int64) - 1
    tick[(tick < 0) | (tick >= len(bounds) - 1)] = -1
    return tick


def aggregate_ticks(
    records: pd.DataFrame,
    bounds: Sequence[float] | FloatArray,
    *,
    ticks: IntArray | None = None,
) -> TickFrames:
    """Aggregate every tick window of ``bounds`` (strictly increasing, at least two values).

    ``ticks`` gives each row's tick explicitly (a replay may file a late record under the
    next open tick); by default it follows from ``ts``. Rows whose tick is outside
    ``0..len(bounds)-2`` are ignored.
    """
    edges = np.asarray(bounds, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError("bounds must be at least two strictly increasing values")
    if ticks is None:
        ticks = tick_index(records["ts"].to_numpy(dtype=np.float64), edges)
    n_ticks = len(edges) - 1
    keep = (ticks >= 0) & (ticks < n_ticks)
    if not keep.all():
        records, ticks = records[keep], ticks[keep]
    rows = _Rows(records, np.asarray(ticks, dtype=np.int64), n_ticks)
    windows = np.diff(edges)
    levels: dict[str, tuple[pd.DataFrame, IntArray]] = {}
    for level, labels in LEVELS.items():
        levels[level] = _level(rows, level, labels, windows)
    return TickFrames(edges, levels)


class _Rows:
    """Per-row columns of a chunk, extracted once for every level."""

    def __init__(self, records: pd.DataFrame, ticks: IntArray, n_ticks: int) -> None:
        self.n = len(records)
        self.ticks = ticks
        self.n_ticks = n_ticks
        self.per_tick = np.bincount(ticks, minlength=n_ticks)
        self.codes: dict[str, IntArray] = {}
        self.uniques: dict[str, ObjectArray] = {}
        self.missing: dict[str, bool] = {}
        for label in _LABELS:
            # sorted factorisation: code order = label order (groupby sort=True); NaN -> -1
            codes, uniques = pd.factorize(records[label], sort=True)
            self.codes[label] = np.asarray(codes, dtype=np.int64)
            self.uniques[label] = np.asarray(uniques, dtype=object)
            self.missing[label] = bool(records[label].hasnans)
        gateway = np.flatnonzero(self.uniques["provider"] == GATEWAY_PROVIDER)
        self.rejected = (
            self.codes["provider"] == gateway[0] if gateway.size else np.zeros(self.n, dtype=bool)
        )
        status = records["status"].to_numpy(dtype=np.int64)
        provider_error = (status >= 500) | (status == 429)
        fallback = records["fallback"].to_numpy(dtype=bool)
        # a successful primary call (as aggregate() defines it)
        ok = (status < 400) & ~fallback & ~self.rejected
        output_tokens = records["output_tokens"].to_numpy(dtype=np.int64)
        self.ints: dict[str, IntArray] = {
            "errors": (provider_error & ~self.rejected).astype(np.int64),
            "rejected": self.rejected.astype(np.int64),
            "fallbacks": fallback.astype(np.int64),
            "input_tokens": records["input_tokens"].to_numpy(dtype=np.int64),
            "output_tokens": output_tokens,
            "ok_calls": ok.astype(np.int64),
            "ok_output_tokens": np.where(ok, output_tokens, 0),
        }
        self.cost = records["cost_usd"].to_numpy(dtype=np.float64)
        self.ok_cost = np.where(ok, self.cost, 0.0)
        self.ok_cost_or_nan = np.where(ok, self.cost, np.nan)  # cost_p50: successful calls only
        self.ttft = records["ttft_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
        self.latency = records["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
        # one value sort per column serves every level (NaN sorts last and is cut off)
        self.ttft_order = finite_order(self.ttft)
        self.latency_order = finite_order(self.latency)
        self.ok_cost_order = finite_order(self.ok_cost_or_nan)


class _Groups:
    """Dense ids of the ``(tick, *labels)`` groups of the rows in ``mask`` (None = all rows),
    numbered in sorted order; ``row_ids`` gives every row's group, -1 outside ``mask``."""

    ids: IntArray
    count: int
    ticks: IntArray
    codes: list[IntArray]
    row_ids: IntArray

    def __init__(self, rows: _Rows, labels: tuple[str, ...], mask: BoolArray | None) -> None:
        self.mask = mask
        ticks = rows.ticks if mask is None else rows.ticks[mask]
        parts = [rows.codes[label] if mask is None else rows.codes[label][mask] for label in labels]
        if not labels:
            # the global level: one group per tick, even a tick without any row
            self.ids, self.count, self.codes = ticks, rows.n_ticks, []
            self.ticks = np.arange(rows.n_ticks, dtype=np.int64)
            self.row_ids = rows.ticks
            return
        combined = ticks
        space = rows.n_ticks
        for label, part in zip(labels, parts, strict=True):
            width = len(rows.uniques[label]) + 1
            if space * width >= 1 << 62:  # keep the mixed-radix key inside int64
                combined, first = dense_ranks(combined, space)
                space = max(len(first), 1)
            # a missing value (-1) takes the largest code: it sorts last, like a NaN group
            combined = combined * width + np.where(part < 0, width - 1, part)
            space *= width
        # any row of a group carries the group's tick and codes
        self.ids, representative = dense_ranks(combined, space)
        self.count = len(representative)
        self.ticks = ticks[representative]
        self.codes = [part[representative] for part in parts]
        if mask is None:
            self.row_ids = self.ids
        else:
            self.row_ids = np.full(rows.n, -1, dtype=np.int64)
            self.row_ids[mask] = self.ids


def _level(
    rows: _Rows, level: str, labels: tuple[str, ...], windows: FloatArray
) -> tuple[pd.DataFrame, IntArray]:
    mask: BoolArray | None = None
    if labels:
        if level in PROVIDER_LEVELS and rows.rejected.any():
            mask = ~rows.rejected
        optional = _OPTIONAL_QUALIFIERS.get(level, frozenset())
        for label in labels:
            if label not in optional and rows.missing[label]:
                present = rows.codes[label] >= 0
                mask = present if mask is None else mask & present
    groups = _Groups(rows, labels, mask)
    columns = _metrics(rows, groups, windows)
    label_columns = {
        label: _label_values(rows.uniques[label], codes)
        for label, codes in zip(labels, groups.codes, strict=True)
    }
    keys = _scope_keys(rows, labels, groups) if labels else np.full(groups.count, "", object)
    offsets = np.zeros(rows.n_ticks + 1, dtype=np.int64)
    np.cumsum(np.bincount(groups.ticks, minlength=rows.n_ticks), out=offsets[1:])
    return _frame(label_columns, columns, keys), offsets


def _metrics(
    rows: _Rows, groups: _Groups, windows: FloatArray
) -> dict[str, npt.NDArray[np.generic]]:
    ids, count, mask = groups.ids, groups.count, groups.mask

    def sums(values: IntArray | FloatArray) -> FloatArray:
        picked = values if mask is None else values[mask]
        return np.bincount(ids, weights=picked, minlength=count).astype(np.float64)

    columns: dict[str, npt.NDArray[np.generic]] = {}
    requests = np.bincount(ids, minlength=count).astype(np.int64)
    columns["requests"] = requests
    for name in _INT_SUMS:
        # int64 sums via float64 are exact below 2**53, as in aggregate()
        columns[name] = np.rint(sums(rows.ints[name])).astype(np.int64)
    columns["cost"] = sums(rows.cost)
    columns["ok_cost"] = sums(rows.ok_cost)
    ttft_sorted, ttft_counts = _sorted_by_group(rows.ttft, rows.ttft_order, groups)
    columns["ttft_samples"] = ttft_counts
    columns["ttft_p50"], columns["ttft_p95"] = sorted_quantiles(
        ttft_sorted, ttft_counts, (0.5, 0.95)
    )
    lat_sorted, lat_counts = _sorted_by_group(rows.latency, rows.latency_order, groups)
    (columns["latency_p95"],) = sorted_quantiles(lat_sorted, lat_counts, (0.95,))
    cost_sorted, cost_counts = _sorted_by_group(rows.ok_cost_or_nan, rows.ok_cost_order, groups)
    (columns["cost_p50"],) = sorted_quantiles(cost_sorted, cost_counts, (0.5,))
    columns["cooldowns"] = np.full(len(cost_counts), np.nan)  # from /metrics only
    volume = requests.astype(np.float64)
    tick_rows = rows.per_tick[groups.ticks].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_request = np.where(volume > 0, 1.0 / np.where(volume > 0, volume, 1.0), np.nan)
        columns["share"] = np.where(tick_rows > 0, volume / tick_rows, np.nan)
    columns["error_rate"] = columns["errors"] * per_request
    columns["fallback_ratio"] = columns["fallbacks"] * per_request
    columns["cost_per_request"] = columns["cost"] * per_request
    calls = columns["ok_calls"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_call = np.where(calls > 0, 1.0 / np.where(calls > 0, calls, 1.0), np.nan)
    columns["cost_per_call"] = columns["ok_cost"] * per_call
    columns["output_per_call"] = columns["ok_output_tokens"] * per_call
    columns["rps"] = volume / windows[groups.ticks]
    missing = [name for name in METRICS if name not in columns]
    if missing:
        raise NotImplementedError(
            f"aggregate/batch.py does not compute {missing}: add them as frames.py does"
        )
    return columns


def _sorted_by_group(
    values: FloatArray, order: IntArray, groups: _Groups
) -> tuple[FloatArray, IntArray]:
    """Each group's non-NaN values, ascending, groups one after another; and their counts."""
    group = groups.row_ids[order]
    if groups.mask is not None:
        inside = group >= 0
        order, group = order[inside], group[inside]
    # a stable sort by group keeps each group's values in ascending order
    by_group = group_order(group, groups.count)
    counts = np.bincount(group, minlength=groups.count).astype(np.int64)
    return values[order[by_group]], counts


def _label_values(uniques: ObjectArray, codes: IntArray) -> ObjectArray:
    values = np.empty(len(codes), dtype=object)
    present = codes >= 0
    values[present] = uniques[codes[present]]
    values[~present] = np.nan
    return values


def _scope_keys(rows: _Rows, labels: tuple[str, ...], groups: _Groups) -> ObjectArray:
    """Canonical scope keys (``label=value`` joined by commas, missing labels left out), built
    once per distinct label combination and joined by Arrow in C: at 100k API keys a Python
    string loop over the groups was most of a tick's aggregation time."""
    combo = np.zeros(groups.count, dtype=np.int64)
    for label, codes in zip(labels, groups.codes, strict=True):
        width = len(rows.uniques[label]) + 1
        combo = combo * width + np.where(codes < 0, width - 1, codes)
    _, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
    parts = []
    for label, codes in zip(labels, groups.codes, strict=True):
        values = pa.array(
            _label_values(rows.uniques[label], codes[first]), pa.string(), from_pandas=True
        )
        parts.append(pc.binary_join_element_wise(f"{label}=", values, ""))  # null stays null
    joined = pc.binary_join_element_wise(*parts, ",", null_handling="skip")
    table = np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)
    return table[inverse.reshape(-1)]


def _frame(
    labels: dict[str, ObjectArray],
    metrics: dict[str, npt.NDArray[np.generic]],
    keys: ObjectArray,
) -> pd.DataFrame:
    data: dict[str, pd.Series | npt.NDArray[np.generic]] = {
        label: pd.Series(values, dtype=object) for label, values in labels.items()
    }
    for name in METRICS:
        data[name] = np.asarray(metrics[name], dtype=_DTYPES[name])
    frame = pd.DataFrame(data)
    frame.index = pd.Index(keys, dtype="object", name="scope")
    return frame
