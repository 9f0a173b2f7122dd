"""Rate detectors: a series' share of all traffic, and SLO burn rates.

:class:`ShareSurge` judges a key's (or team's) request count against its learnt *share* of the
tick's traffic. The daily peak, a bursty minute or a global dip move every series together, so
shares (and this detector) do not move; a leaked key or a runaway job moves only its own share.
The traffic level ``N`` a share applies to is *robust*: the total of the series that are not
surging, over their share (see ``_total``). With the plain sum, a key surging to five times the
traffic would shrink every other series' share, which would then be learnt, and the end of
the surge would page for all of them. Counts are Poisson-like, so the
deviation is in Pearson units ``(n - N p) / sqrt(N p * dispersion)``, with the
over-dispersion learnt per series.

:class:`BurnRate` is the Google SRE workbook's multi-window, multi-burn-rate alert: the error
budget of an SLO burning ``factor`` times too fast over both a long and a short window (the
long one proves it matters, the short one that it is still happening).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gatewarden.detect.contract import FloatArray, SeriesState, safe_slots
from gatewarden.protocols import SeriesTick


class ShareSurge:
    """Request count vs ``share_baseline * total``. ``values`` are the series' requests; every
    series of the level comes in one tick, so the total is theirs.

    ``min_ratio`` is the materiality gate: a positive score is scaled by how far
    ``observed / expected`` got from 1 towards ``min_ratio`` (full weight from there on), so a
    new team ramping up (a few % per tick faster than the baseline follows) or an agent key's
    burst of sessions accumulates little evidence, however large its volume.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        warmup: int = 20,
        min_volume: float = 1.0,
        min_ratio: float = 2.0,
        learn_limit: float = 4.0,
        max_skip: int = 240,
    ) -> None:
        if not 0 < alpha <= 1 or warmup < 1 or min_ratio < 1 or learn_limit <= 0 or max_skip < 1:
            raise ValueError("invalid ShareSurge parameters")
        self.alpha, self.warmup, self.min_volume = float(alpha), int(warmup), float(min_volume)
        self.min_ratio, self.learn_limit, self.max_skip = float(min_ratio), learn_limit, max_skip
        self.state = SeriesState()
        self.state.add("share", fill=np.nan)
        self.state.add("dispersion", fill=1.0)
        self.state.add("n", fill=0, dtype=np.int64)
        self.state.add("skipped", fill=0, dtype=np.int64)

    def _parts(
        self, x: SeriesTick
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """(expected count, material z, learnt count, observed share of the robust total, raw z)
        per series."""
        slots = self.state.lookup(x.keys)
        s = safe_slots(slots)
        known = slots >= 0
        n = np.where(known, self.state["n"][s], 0)
        baseline = np.where(known, self.state["share"][s], np.nan)
        dispersion = np.where(known, self.state["dispersion"][s], 1.0)
        total = self._total(x, baseline, dispersion, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            observed = x.values / total
            expected = baseline * total
            raw = (x.values - expected) / np.sqrt(expected * np.maximum(dispersion, 1.0) + 1.0)
            # soft materiality: full weight from min_ratio x the expected count, none at 1x
            weight = np.clip((x.values / expected - 1.0) / (self.min_ratio - 1.0), 0.0, 1.0)
        z = np.where(raw > 0, raw * np.where(np.isfinite(weight), weight, 0.0), raw)
        return expected, z, n, observed, raw

    def _total(
        self, x: SeriesTick, baseline: FloatArray, dispersion: FloatArray, n: npt.NDArray[np.int64]
    ) -> float:
        """The tick's traffic level without the excess of surging series: the level's total
        minus, twice over, the excess ``n_i - p_i N`` of warm series scoring above
        ``learn_limit``. With no surge it is the plain total, so shares keep their natural
        scale (they sum to one) and nothing can drift."""
        counts = np.where(np.isfinite(x.values), x.values, 0.0)
        total = float(counts.sum())
        warm = (n >= self.warmup) & (baseline > 0) & np.isfinite(x.values)
        if not warm.any() or total <= 0:
            return total
        raw = total
        for _ in range(2):
            expected = baseline[warm] * total
            z = (counts[warm] - expected) / np.sqrt(
                expected * np.maximum(dispersion[warm], 1.0) + 1
            )
            # no materiality gate here: a big key surging 8x inflates the raw total so much
            # that its own ratio against it looks small
            surging = z > self.learn_limit
            total = raw - float((counts[warm] - expected)[surging].sum())
        return max(total, 1.0)

    def _usable(self, x: SeriesTick, observed: FloatArray) -> npt.NDArray[np.bool_]:
        return (x.volumes >= self.min_volume) & np.isfinite(x.values) & (observed >= 0)

    def score_one(self, x: SeriesTick) -> FloatArray:
        _, z, n, observed, _ = self._parts(x)
        return np.where(self._usable(x, observed) & (n >= self.warmup), z, np.nan)

    def expected(self, x: SeriesTick) -> FloatArray:
        expected, _, _, _, _ = self._parts(x)
        return expected

    def learn_one(self, x: SeriesTick) -> None:
        expected, _, n, observed, raw = self._parts(x)
        slots = self.state.ensure(x.keys)
        valid = self._usable(x, observed)
        with np.errstate(invalid="ignore"):
            # the raw z decides what is learnt: a surge below the materiality ratio must not
            # become the baseline either, or a x5 surge first seen at x3.9 is never seen
            flagged = valid & (n >= self.warmup) & (raw > self.learn_limit)
        skipped = self.state["skipped"][slots]
        skipped = np.where(flagged, skipped + 1, np.where(valid, 0, skipped))
        reseed = flagged & (skipped > self.max_skip)
        self.state.reset(slots[reseed])
        n = np.where(reseed, 0, n)
        learn = valid & (~flagged | reseed)
        weight = np.maximum(self.alpha, 1.0 / (n + 1.0))
        old = self.state["share"][slots]
        new_share = np.where(n == 0, observed, old + weight * (observed - old))
        with np.errstate(divide="ignore", invalid="ignore"):
            pearson = np.where(expected > 0, (x.values - expected) ** 2 / expected, 1.0)
        dispersion = self.state["dispersion"][slots]
        warm = n >= 2  # the first residuals are measured against a one-point baseline
        new_dispersion = np.where(
            warm, dispersion + weight * (np.minimum(pearson, 25.0) - dispersion), dispersion
        )
        target = slots[learn]
        self.state["share"][target] = new_share[learn]
        self.state["dispersion"][target] = new_dispersion[learn]
        self.state["n"][target] = n[learn] + 1
        self.state["skipped"][slots] = np.where(reseed, 0, skipped)


#: (long window s, short window s, burn factor): the SRE workbook's page-worthy pair.
DEFAULT_BURN_RULES: tuple[tuple[float, float, float], ...] = ((3600, 300, 14.4), (21600, 1800, 6))


class _Ring:
    """Per-series counts in fixed time buckets; the bucket -> column map is shared by all
    series (they share the clock), so advancing time is one column reset."""

    def __init__(self, state: SeriesState, name: str, bucket_s: float, length: int) -> None:
        self.name, self.bucket_s, self.length = name, float(bucket_s), int(length)
        state.add(f"{name}_errors", fill=0.0, dtype=np.float32, width=self.length)
        state.add(f"{name}_requests", fill=0.0, dtype=np.float32, width=self.length)
        self.buckets = np.full(self.length, -1, dtype=np.int64)

    def bucket(self, ts: float) -> int:
        # a tick's records lie in (start, ts]: ts itself belongs to the bucket before a boundary
        return int(np.ceil(ts / self.bucket_s)) - 1

    def window(
        self, state: SeriesState, slots: npt.NDArray[np.intp], ts: float, span: float
    ) -> tuple[FloatArray, FloatArray]:
        current = self.bucket(ts)
        count = round(span / self.bucket_s)
        live = (self.buckets > current - count) & (self.buckets <= current)
        s = safe_slots(slots)
        errors = state[f"{self.name}_errors"][s][:, live].sum(axis=1, dtype=np.float64)
        requests = state[f"{self.name}_requests"][s][:, live].sum(axis=1, dtype=np.float64)
        return np.where(slots >= 0, errors, 0.0), np.where(slots >= 0, requests, 0.0)

    def add(
        self,
        state: SeriesState,
        slots: npt.NDArray[np.intp],
        ts: float,
        e: FloatArray,
        r: FloatArray,
    ) -> None:
        current = self.bucket(ts)
        col = current % self.length
        if self.buckets[col] != current:
            state[f"{self.name}_errors"][:, col] = 0.0
            state[f"{self.name}_requests"][:, col] = 0.0
            self.buckets[col] = current
        # np.add.at: a key repeated within one tick must add up, not overwrite
        np.add.at(state[f"{self.name}_errors"][:, col], slots, e)
        np.add.at(state[f"{self.name}_requests"][:, col], slots, r)


class BurnRate:
    """Multi-window burn-rate score: ``max over rules of min(burn_long, burn_short) / factor``,
    so the filter threshold is 1.0 ("this rule fires"). ``values`` are error ratios and
    ``volumes`` requests (errors = value x volume). Windows up to an hour are kept in minute
    buckets, longer ones in ten-minute buckets: about 1.5 KB per series whatever the tick."""

    def __init__(
        self,
        *,
        slo: float = 0.999,
        rules: Sequence[tuple[float, float, float]] = DEFAULT_BURN_RULES,
        min_requests: float = 20.0,
    ) -> None:
        if not 0 < slo < 1:
            raise ValueError("slo must be in (0, 1)")
        self.budget = 1.0 - float(slo)
        self.rules = [(float(lo), float(sh), float(f)) for lo, sh, f in rules]
        if not self.rules or any(sh >= lo or f <= 0 for lo, sh, f in self.rules):
            raise ValueError("each rule needs short < long window and factor > 0")
        self.min_requests = float(min_requests)
        self.state = SeriesState()
        #: a rule can only fire once its long window is full of data (not at start-up)
        self._first_ts = np.inf
        self._fine = _Ring(self.state, "fine", 60.0, 60)
        self._coarse = _Ring(self.state, "coarse", 600.0, 36)
        for span in {w for lo, sh, _ in self.rules for w in (lo, sh)}:
            ring = self._ring(span)
            if span % ring.bucket_s or span > ring.bucket_s * ring.length:
                raise ValueError(f"window {span:g}s is not a whole number of buckets up to 6 h")

    def _ring(self, span: float) -> _Ring:
        return self._fine if span <= 3600 else self._coarse

    def _counts(self, x: SeriesTick) -> tuple[FloatArray, FloatArray]:
        ok = np.isfinite(x.values) & np.isfinite(x.volumes)
        requests = np.where(ok, x.volumes, 0.0)
        return np.where(ok, np.rint(x.values * requests), 0.0), requests

    def _burn(self, x: SeriesTick, span: float) -> tuple[FloatArray, FloatArray]:
        e, r = self._counts(x)
        slots = self.state.lookup(x.keys)
        we, wr = self._ring(span).window(self.state, slots, x.ts, span)
        with np.errstate(divide="ignore", invalid="ignore"):
            burn = (we + e) / (wr + r) / self.budget
        return burn, wr + r

    def score_one(self, x: SeriesTick) -> FloatArray:
        score = np.zeros(len(x.keys))
        enough = np.zeros(len(x.keys), dtype=bool)
        for long, short, factor in self.rules:
            if x.ts - self._first_ts < long - self._fine.bucket_s:  # a minute of slack
                continue
            burn_long, _ = self._burn(x, long)
            burn_short, volume = self._burn(x, short)
            score = np.fmax(score, np.fmin(burn_long, burn_short) / factor)
            enough |= volume >= self.min_requests
        return np.where(enough, score, np.nan)  # also NaN until a long window is full

    def expected(self, x: SeriesTick) -> FloatArray:
        """The error ratio the SLO allows: what "normal" means for this detector."""
        return np.full(len(x.keys), self.budget)

    def learn_one(self, x: SeriesTick) -> None:
        self._first_ts = min(self._first_ts, x.ts)
        slots = self.state.ensure(x.keys)
        e, r = self._counts(x)
        for ring in (self._fine, self._coarse):
            ring.add(self.state, slots, x.ts, e, r)
