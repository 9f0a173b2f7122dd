"""The detector contract, and per-series state kept in numpy arrays.

A detector sees one :class:`~gatewarden.protocols.SeriesTick` per tick: a vector across every
series of one metric at one level. It keeps its per-series state in flat numpy arrays indexed by
a slot per series key, so one tick over 100k series is a handful of vector operations.

Rules every detector follows (``tests/detect/test_conformance.py`` checks them):

* ``score_one`` never changes state; higher = more anomalous; NaN = cannot judge (warm-up, volume
  below the detector's minimum, unknown series, non-finite value).
* ``learn_one`` folds the tick into the baseline, except points it would flag (so an outage does
  not become the new normal); series absent from the tick keep their state untouched.
* State grows with the number of distinct series only, never with the number of ticks.

Detectors may also implement :class:`Baseline` so alerts can say what value was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from gatewarden.protocols import BoolArray, Detector, Filter, FloatArray, SeriesTick

IntArray = npt.NDArray[np.intp]

__all__ = [
    "Baseline",
    "BoolArray",
    "Detector",
    "Filter",
    "FloatArray",
    "FrameTick",
    "IntArray",
    "SeriesIndex",
    "SeriesState",
    "SeriesTick",
    "column",
]


@dataclass(frozen=True)
class FrameTick(SeriesTick):
    """A :class:`SeriesTick` that also carries other columns of the same frame rows.

    Detectors that need more than one number per series (a price model needs cost *and*
    tokens; a peer comparison needs each series' group label) name them in an ``inputs``
    attribute and the detect stage fills ``columns`` with them, aligned with ``keys``.
    """

    columns: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)


def column(x: SeriesTick, name: str) -> npt.NDArray[Any] | None:
    """Column ``name`` of ``x`` when it is a :class:`FrameTick` carrying it, else None."""
    if isinstance(x, FrameTick):
        return x.columns.get(name)
    return None


@runtime_checkable
class Baseline(Protocol):
    """Optional detector capability: the value each series was expected to have (NaN if none)."""

    def expected(self, x: SeriesTick) -> FloatArray: ...


class SeriesIndex:
    """Maps series keys to dense slots 0..n-1, in order of first appearance.

    The last lookup is cached by the identity of the ``keys`` object (``score_one`` and
    ``learn_one`` receive the same ``SeriesTick`` and so pay for the dict lookups once), and
    reused when the next tick's keys are an equal list (the same series in the same order).
    Callers must therefore not mutate a keys sequence after passing it in.
    """

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self._keys: list[str] = []
        self._cached_keys: object = None
        self._cached_size = -1
        self._cached: IntArray = np.empty(0, dtype=np.intp)

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: object) -> bool:
        return key in self._slots

    def key(self, slot: int) -> str:
        """The key of ``slot`` (slots are dense, in order of first appearance)."""
        return self._keys[slot]

    def slot(self, key: str) -> int | None:
        """The slot of ``key``, if it has one."""
        return self._slots.get(key)

    def lookup(self, keys: Sequence[str]) -> IntArray:
        """Slots of ``keys``; -1 for keys never seen. Does not assign slots."""
        if self._cached_size == len(self._slots) and (
            keys is self._cached_keys or self._same_as_cached(keys)
        ):
            self._cached_keys = keys
            return self._cached
        # map() with a repeated default keeps the 100k dict lookups in C (~2x a generator)
        found = list(map(self._slots.get, keys, repeat(-1)))
        slots: IntArray = np.array(found, dtype=np.intp) if found else np.empty(0, np.intp)
        self._remember(keys, slots)
        return slots

    def _same_as_cached(self, keys: Sequence[str]) -> bool:
        """The series of a level usually come back in the same order tick after tick: comparing
        two lists is one C loop, several times cheaper than a dict lookup per key."""
        cached = self._cached_keys
        return isinstance(keys, list) and isinstance(cached, list) and keys == cached

    def ensure(self, keys: Sequence[str]) -> IntArray:
        """Slots of ``keys``, assigning new slots to keys never seen."""
        slots = self.lookup(keys)
        missing = np.flatnonzero(slots < 0)
        if missing.size:
            slots = slots.copy()
            absent = [keys[position] for position in missing.tolist()]
            # new keys in order of first appearance, once each (a key may repeat in a tick);
            # dict and zip keep the loops in C: sessions bring thousands of new keys a tick
            fresh = list(dict.fromkeys(absent))
            first = len(self._keys)
            self._slots.update(zip(fresh, range(first, first + len(fresh)), strict=True))
            self._keys.extend(fresh)
            slots[missing] = np.fromiter(map(self._slots.__getitem__, absent), np.intp, len(absent))
            self._remember(keys, slots)
        return slots

    def _remember(self, keys: Sequence[str], slots: IntArray) -> None:
        self._cached_keys = keys
        self._cached_size = len(self._slots)
        self._cached = slots


class SeriesState:
    """Named per-series numpy arrays that grow geometrically as new series appear.

    ``add`` registers an array (1-D, or 2-D with ``width`` columns, e.g. a window per series);
    ``ensure`` assigns slots to new keys and grows every array, new rows taking the fill value.
    """

    def __init__(self, initial_capacity: int = 1024) -> None:
        self.index = SeriesIndex()
        self._capacity = max(1, initial_capacity)
        self._arrays: dict[str, npt.NDArray[Any]] = {}
        self._fills: dict[str, Any] = {}

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self.index)

    def add(
        self,
        name: str,
        *,
        fill: float | int | bool | str,
        dtype: npt.DTypeLike = np.float64,
        width: int | None = None,
    ) -> None:
        shape: tuple[int, ...] = (self._capacity,) if width is None else (self._capacity, width)
        self._arrays[name] = np.full(shape, fill, dtype=dtype)
        self._fills[name] = fill

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self._arrays[name]

    def snapshot(self) -> dict[str, npt.NDArray[Any]]:
        """Copies of every array (tests use it to prove a call left state alone)."""
        return {name: array.copy() for name, array in self._arrays.items()}

    def nbytes(self) -> int:
        return sum(array.nbytes for array in self._arrays.values())

    def reset(self, slots: IntArray) -> None:
        """Put the rows of ``slots`` back to their fill values: those series start over (warm
        up again) while keeping their slots."""
        if slots.size:
            for name, array in self._arrays.items():
                array[slots] = self._fills[name]

    def lookup(self, keys: Sequence[str]) -> IntArray:
        """Slots of ``keys`` (-1 = unknown series); never changes state."""
        return self.index.lookup(keys)

    def ensure(self, keys: Sequence[str]) -> IntArray:
        """Slots of ``keys``, creating state rows for new series."""
        slots = self.index.ensure(keys)
        needed = len(self.index)
        if needed > self._capacity:
            self._grow(needed)
        return slots

    def _grow(self, needed: int) -> None:
        capacity = self._capacity
        while capacity < needed:
            capacity *= 2
        for name, old in self._arrays.items():
            new = np.full((capacity, *old.shape[1:]), self._fills[name], dtype=old.dtype)
            new[: old.shape[0]] = old
            self._arrays[name] = new
        self._capacity = capacity


def known(slots: IntArray) -> BoolArray:
    """Mask of slots that belong to series seen before."""
    return slots >= 0


def safe_slots(slots: IntArray) -> IntArray:
    """Slots with unknown series (-1) pointed at row 0, for gathers later masked out.

    Gathering with -1 would silently read the last row; pointing at 0 is just as harmless but
    makes the intent explicit — results for those positions must be discarded by the caller.
    """
    return np.where(slots >= 0, slots, 0)
