"""The set of alert fingerprints judged healthy in one tick (``Tick.clear``).

A detector judges every series of its level each tick — at a big gateway, 100k API keys —
while the correlator only asks about the handful of fingerprints it tracks (alerts about to
fire, or firing). Building the full set of 100k fingerprint strings per spec and tick cost more
than the detectors' own arithmetic, so a spec hands over its verdicts as it holds them: a mask
over its per-series fingerprint table plus the table's reverse index. Membership is answered
from those in O(specs); iterating (tests, ``len``) materialises the strings once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class _Judged:
    #: fingerprint -> slot in ``fingerprints`` (may grow after this tick: slots are checked)
    slot_of: Mapping[str, int]
    #: healthy this tick, by slot
    healthy: npt.NDArray[np.bool_]
    #: fingerprint of every slot
    fingerprints: npt.NDArray[np.object_]


class HealthySet(Set[str]):
    """Fingerprints judged healthy this tick: explicit ones (``add``) and whole levels judged
    by a detector (``add_judged``), minus any fingerprint that fired under another spec of the
    same kind this tick (``exclude``)."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        self._items: set[str] = set(items)
        self._judged: list[_Judged] = []
        self._excluded: set[str] = set()
        self._materialised: frozenset[str] | None = None

    def add(self, fingerprint: str) -> None:
        self._items.add(fingerprint)
        self._materialised = None

    def update(self, fingerprints: Iterable[str]) -> None:
        self._items.update(fingerprints)
        self._materialised = None

    def add_judged(
        self,
        slot_of: Mapping[str, int],
        healthy: npt.NDArray[np.bool_],
        fingerprints: npt.NDArray[np.object_],
    ) -> None:
        """A spec's verdicts: ``fingerprints[slot]`` is healthy where ``healthy[slot]``. The
        arrays must not be written afterwards (the caller passes this tick's copies)."""
        self._judged.append(_Judged(slot_of, healthy, fingerprints))
        self._materialised = None

    def exclude(self, fingerprints: Iterable[str]) -> None:
        self._excluded.update(fingerprints)
        self._materialised = None

    def __contains__(self, fingerprint: object) -> bool:
        if not isinstance(fingerprint, str) or fingerprint in self._excluded:
            return False
        if fingerprint in self._items:
            return True
        for judged in self._judged:
            slot = judged.slot_of.get(fingerprint)
            if slot is not None and slot < len(judged.healthy) and judged.healthy[slot]:
                return True
        return False

    def _all(self) -> frozenset[str]:
        if self._materialised is None:
            found = set(self._items)
            for judged in self._judged:
                found.update(judged.fingerprints[np.flatnonzero(judged.healthy)].tolist())
            self._materialised = frozenset(found - self._excluded)
        return self._materialised

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"HealthySet({set(self._all())!r})"
