"""Label codes and scope keys carried from one tick to the next (live aggregation).

Two per-tick costs of :func:`gatewarden.aggregate.aggregate` grow with the number of distinct
series rather than with the arithmetic: sorting each label's distinct values (``groupby`` order)
and formatting one scope-key string per series. At 100k API keys that was ~25 ms and ~30 ms a
tick, for answers that rarely change from one tick to the next. :class:`LabelCache` keeps them:

* **codes**: each label's last sorted distinct values, as an Arrow string array. A tick whose
  values are all in it gets its codes by one Arrow hash lookup per row (``index_in``, in C++ on
  the column's own Arrow buffers: converting 100k strings to Python objects and hashing those
  cost ~30 ms a tick); they are positions in sorted values exactly as a sorted factorisation
  would give, except that values absent this tick leave gaps (grouping re-densifies them). A
  tick with a value the codebook lacks builds it afresh and replaces it, so stale values never
  outlive the next new one. Arrow sorts strings by their UTF-8 bytes, which is code-point order:
  the order Python (and so ``groupby``) sorts them in.
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
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]
#: formats the scope keys of the groups at the given positions
KeyBuilder = Callable[[IntArray], list[str]]


@dataclass(frozen=True)
class _Codebook:
    #: sorted distinct values (no nulls)
    values: pa.Array
    uniques: ObjectArray
    version: int


@dataclass(frozen=True)
class _Keys:
    versions: tuple[int, ...]
    #: each group's combined code, ascending (groups come in sorted order)
    codes: IntArray
    keys: ObjectArray


class LabelCache:
    """Sorted label codebooks and scope keys kept across ticks; see the module docstring."""

    def __init__(self) -> None:
        self._books: dict[str, _Codebook] = {}
        self._keys: dict[tuple[str, ...], _Keys] = {}
        self._version = 0

    def codes(self, label: str, column: pd.Series) -> tuple[IntArray, ObjectArray]:
        """Sorted codes of ``column`` (-1 = missing) and the distinct values they index."""
        strings = _arrow_strings(column)
        if strings is None:  # not all strings: factorise the objects, nothing to keep
            found, uniques = pd.factorize(column.to_numpy(dtype=object), sort=True)
            self._books.pop(label, None)
            return found.astype(np.int64), np.asarray(uniques, dtype=object)
        book = self._books.get(label)
        if book is not None:
            if strings.type != book.values.type:  # pandas' str is large_string, objects string
                strings = strings.cast(book.values.type)
            positions = pc.index_in(strings, value_set=book.values)
            if positions.null_count == strings.null_count:  # every value is in the codebook
                return _int64(positions), book.uniques
        distinct = pc.unique(strings.drop_null())
        if isinstance(distinct, pa.ChunkedArray):
            distinct = distinct.combine_chunks()
        ordered = distinct.take(pc.array_sort_indices(distinct))
        self._version += 1
        objects = np.asarray(ordered.to_numpy(zero_copy_only=False), dtype=object)
        self._books[label] = _Codebook(ordered, objects, self._version)
        return _int64(pc.index_in(strings, value_set=ordered)), objects

    def version(self, label: str) -> int:
        book = self._books.get(label)
        return book.version if book is not None else -1

    def scope_keys(
        self,
        labels: tuple[str, ...],
        codes: IntArray,
        widths: tuple[int, ...],
        build: KeyBuilder,
    ) -> ObjectArray:
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
            keys = _objects(build(np.arange(len(combined))))
        self._keys[labels] = _Keys(versions, combined, keys)
        return keys


def _reuse(last: _Keys, combined: IntArray, build: KeyBuilder) -> ObjectArray:
    """Last tick's key for each group it had (both code arrays are ascending), fresh ones for
    the rest."""
    if not len(last.codes):
        return _objects(build(np.arange(len(combined))))
    where = np.searchsorted(last.codes, combined)
    bounded = np.minimum(where, len(last.codes) - 1)
    seen = (where < len(last.codes)) & (last.codes[bounded] == combined)
    keys = np.empty(len(combined), dtype=object)
    keys[seen] = last.keys[bounded[seen]]
    fresh = np.flatnonzero(~seen)
    if fresh.size:
        keys[fresh] = _objects(build(fresh))
    return keys


def _objects(keys: list[str]) -> ObjectArray:
    out = np.empty(len(keys), dtype=object)
    out[:] = keys
    return out


def _arrow_strings(column: pd.Series) -> pa.Array | pa.ChunkedArray | None:
    """The column as Arrow strings (zero-copy for pandas' Arrow-backed ``str`` dtype; None,
    NaN -> null), or None when it holds something other than strings."""
    try:
        strings = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if pa.types.is_null(strings.type):  # no value at all this tick
        return pa.nulls(len(strings), pa.large_string())
    if pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type):
        return strings
    return None


def _int64(positions: pa.Array | pa.ChunkedArray) -> IntArray:
    """``index_in`` positions as int64 codes, -1 where the value is missing."""
    filled = pc.fill_null(positions, -1)
    return np.asarray(filled.to_numpy(), dtype=np.int64)
