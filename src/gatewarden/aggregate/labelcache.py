"""Label codes and scope keys carried from one tick to the next (live aggregation).

Two per-tick costs of :func:`gatewarden.aggregate.aggregate` grow with the number of distinct
series rather than with the arithmetic: sorting each label's distinct values (``groupby`` order)
and formatting one scope-key string per series. At 100k API keys that was ~25 ms and ~30 ms a
tick, for answers that rarely change from one tick to the next. :class:`LabelCache` keeps them:

* **codes**: each label's last sorted distinct values, as a hashed ``pd.Index``. A tick whose
  values are all in it gets its codes by one hash lookup per row; they are positions in sorted
  values exactly as a sorted factorisation would give, except that values absent this tick leave
  gaps (grouping re-densifies them). A tick with a value the codebook lacks factorises afresh and
  replaces it, so stale values never outlive the next new one.
* **scope keys**: per level, the last tick's groups (as codes into the then-current codebooks)
  and their keys. While the codebooks of the level's labels are unchanged, a group seen last
  tick reuses its key string; only new groups are formatted.

Results are identical with or without a cache (``tests/aggregate`` compares them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]
#: formats the scope keys of the groups at the given positions
KeyBuilder = Callable[[IntArray], list[str]]


@dataclass(frozen=True)
class _Codebook:
    index: pd.Index
    uniques: ObjectArray
    version: int


@dataclass(frozen=True)
class _Keys:
    versions: tuple[int, ...]
    #: each group's combined code, ascending (groups come in sorted order)
    codes: IntArray
    keys: list[str]


class LabelCache:
    """Sorted label codebooks and scope keys kept across ticks; see the module docstring."""

    def __init__(self) -> None:
        self._books: dict[str, _Codebook] = {}
        self._keys: dict[tuple[str, ...], _Keys] = {}
        self._version = 0

    def codes(self, label: str, values: ObjectArray) -> tuple[IntArray, ObjectArray]:
        """Sorted codes of ``values`` (-1 = missing) and the distinct values they index."""
        book = self._books.get(label)
        if book is not None:
            # an object Index: left to itself pandas would infer (and build) arrow strings
            codes = book.index.get_indexer(pd.Index(values, dtype=object, copy=False))
            unknown = codes < 0
            if not unknown.any() or bool(pd.isna(values[unknown]).all()):
                return codes.astype(np.int64), book.uniques
        found, uniques = pd.factorize(values, sort=True)
        self._version += 1
        objects = np.asarray(uniques, dtype=object)
        self._books[label] = _Codebook(pd.Index(objects, dtype=object), objects, self._version)
        return found.astype(np.int64), objects

    def version(self, label: str) -> int:
        book = self._books.get(label)
        return book.version if book is not None else -1

    def scope_keys(
        self,
        labels: tuple[str, ...],
        codes: IntArray,
        widths: tuple[int, ...],
        build: KeyBuilder,
    ) -> list[str]:
        """Keys of the groups whose label codes are ``codes`` (groups x labels, sorted by
        group), reusing last tick's strings for groups seen then; ``build(positions)`` formats
        the keys of the groups at ``positions``."""
        versions = tuple(self.version(label) for label in labels)
        combined = np.zeros(len(codes), dtype=np.int64)
        for i, width in enumerate(widths):
            part = codes[:, i]
            combined = combined * width + np.where(part < 0, width - 1, part)
        last = self._keys.get(labels)
        if last is not None and last.versions == versions:
            if np.array_equal(last.codes, combined):
                return last.keys
            keys = _reuse(last, combined, build)
        else:
            keys = build(np.arange(len(combined)))
        self._keys[labels] = _Keys(versions, combined, keys)
        return keys


def _reuse(last: _Keys, combined: IntArray, build: KeyBuilder) -> list[str]:
    """Last tick's key for each group it had (both code arrays are ascending), fresh ones for
    the rest."""
    if not len(last.codes):
        return build(np.arange(len(combined)))
    where = np.searchsorted(last.codes, combined)
    bounded = np.minimum(where, len(last.codes) - 1)
    seen = (where < len(last.codes)) & (last.codes[bounded] == combined)
    keys: list[str] = [""] * len(combined)
    old = last.keys
    for position, source in zip(np.flatnonzero(seen).tolist(), bounded[seen].tolist(), strict=True):
        keys[position] = old[source]
    fresh = np.flatnonzero(~seen)
    for position, key in zip(fresh.tolist(), build(fresh), strict=True):
        keys[position] = key
    return keys
