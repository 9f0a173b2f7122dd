"""The set of alert fingerprints judged healthy in one tick (``Tick.clear``).

A detector judges every series of its level each tick — at a big gateway, 100k API keys, and
thousands of agent sessions that are new every minute — while the correlator only asks about
the handful of alerts it tracks. So a spec hands over its verdicts as it holds them: a mask over
its series table (:class:`JudgedSeries`), and no fingerprint is hashed to answer the
correlator. It asks :meth:`HealthySet.judged_healthy` with the alert's kind and scope key,
which is one dict lookup per spec. Plain membership (``fp in clear``: tests, ``len``,
iteration) still works: the tables hash their keys into fingerprints on first need.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gatewarden.models import scope_key


class JudgedSeries(Protocol):
    """A spec's series table: slots that never change meaning once assigned."""

    @property
    def kind(self) -> str: ...

    def slot(self, key: str) -> int | None:
        """Slot of the series with scope key ``key``, if the table has it."""
        ...

    def slot_of_fingerprint(self, fingerprint: str) -> int | None:
        """Slot of the series whose alert fingerprint is ``fingerprint`` (may hash keys)."""
        ...

    def fingerprint(self, slot: int) -> str:
        """Alert fingerprint of the series in ``slot``."""
        ...


@dataclass(frozen=True)
class _Judged:
    #: the spec's series (may grow after this tick: slots are checked against ``healthy``)
    series: JudgedSeries
    #: healthy this tick, by slot
    healthy: npt.NDArray[np.bool_]

    def healthy_slot(self, slot: int | None) -> bool:
        return slot is not None and slot < len(self.healthy) and bool(self.healthy[slot])


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

    def add_judged(self, series: JudgedSeries, healthy: npt.NDArray[np.bool_]) -> None:
        """A spec's verdicts: the series in slot ``s`` of ``series`` is healthy where
        ``healthy[s]``. ``healthy`` must not be written afterwards."""
        self._judged.append(_Judged(series, healthy))
        self._materialised = None

    def exclude(self, fingerprints: Iterable[str]) -> None:
        self._excluded.update(fingerprints)
        self._materialised = None

    def judged_healthy(self, fingerprint: str, kind: str, key: str) -> bool:
        """``fingerprint in self`` for the alert of ``kind`` on the series with scope key
        ``key`` (``fingerprint == models.fingerprint(kind, scope)``), without hashing."""
        if fingerprint in self._excluded:
            return False
        if fingerprint in self._items:
            return True
        return any(
            judged.series.kind == kind and judged.healthy_slot(judged.series.slot(key))
            for judged in self._judged
        )

    def __contains__(self, fingerprint: object) -> bool:
        if not isinstance(fingerprint, str) or fingerprint in self._excluded:
            return False
        if fingerprint in self._items:
            return True
        return any(
            judged.healthy_slot(judged.series.slot_of_fingerprint(fingerprint))
            for judged in self._judged
        )

    def _all(self) -> frozenset[str]:
        if self._materialised is None:
            found = set(self._items)
            for judged in self._judged:
                slots = np.flatnonzero(judged.healthy).tolist()
                found.update(judged.series.fingerprint(slot) for slot in slots)
            self._materialised = frozenset(found - self._excluded)
        return self._materialised

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"HealthySet({set(self._all())!r})"


def is_clear(clear: Set[str], fingerprint: str, kind: str, scope: Mapping[str, str]) -> bool:
    """Whether the alert ``fingerprint`` (of ``kind`` on ``scope``) was judged healthy: the
    cheap question for a :class:`HealthySet`, plain membership for any other set."""
    if isinstance(clear, HealthySet):
        return clear.judged_healthy(fingerprint, kind, scope_key(scope))
    return fingerprint in clear
