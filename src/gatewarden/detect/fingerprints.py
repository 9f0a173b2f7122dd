"""Each spec's table of judged series, and their alert fingerprints hashed only when asked.

The correlator asks whether a tracked alert's series was judged healthy by kind and scope key
(:meth:`gatewarden.verdicts.HealthySet.judged_healthy`), so the detect stage need not hash a
fingerprint per series: at 100k API keys with agent sessions coming and going, SHA-256 of
~10k new series a tick was a third of the detect stage. Fingerprints are still available
(plain ``fp in tick.clear``, iterating it): hashed on first need, once per series.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from gatewarden.detect.contract import IntArray, SeriesIndex


def alert_fingerprint(kind: str, key: str) -> str:
    """Same value as ``gatewarden.models.fingerprint(kind, scope)``: frame index keys are
    already the canonical ``scope_key(scope)`` (tested), so the scope dict need not be built."""
    return hashlib.sha256(f"{kind}|{key}".encode()).hexdigest()[:16]


class SeriesFingerprints:
    """One spec's series (slot per scope key, in order of first appearance) and, lazily, their
    fingerprints. Implements :class:`gatewarden.verdicts.JudgedSeries`."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self.index = SeriesIndex()
        #: fingerprint of each slot hashed so far
        self._fingerprints: dict[int, str] = {}
        self._slot_of: dict[str, int] = {}
        #: every slot below this one is hashed
        self._hashed_below = 0

    @property
    def kind(self) -> str:
        return self._kind

    def __len__(self) -> int:
        return len(self.index)

    def ensure(self, keys: Sequence[str]) -> IntArray:
        return self.index.ensure(keys)

    def slot(self, key: str) -> int | None:
        return self.index.slot(key)

    def slot_of_fingerprint(self, fingerprint: str) -> int | None:
        self._hash_all()
        return self._slot_of.get(fingerprint)

    def fingerprint(self, slot: int) -> str:
        found = self._fingerprints.get(slot)
        if found is None:
            found = self._hash(slot)
        return found

    def keep_only(self, keys: Sequence[str]) -> SeriesFingerprints:
        """A new table of just ``keys``' series, with the fingerprints already hashed."""
        fresh = SeriesFingerprints(self._kind)
        fresh.index.ensure(keys)
        # only what was hashed (usually little: the correlator asks by key), not every key
        for old, fp in self._fingerprints.items():
            slot = fresh.index.slot(self.index.key(old))
            if slot is not None:
                fresh._fingerprints[slot] = fp
                fresh._slot_of[fp] = slot
        return fresh

    def _hash(self, slot: int) -> str:
        fp = alert_fingerprint(self._kind, self.index.key(slot))
        self._fingerprints[slot] = fp
        self._slot_of[fp] = slot
        return fp

    def _hash_all(self) -> None:
        for slot in range(self._hashed_below, len(self.index)):
            if slot not in self._fingerprints:
                self._hash(slot)
        self._hashed_below = len(self.index)
