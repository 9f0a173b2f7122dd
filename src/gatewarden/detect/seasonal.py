"""A seasonal baseline: a short EWMA blended with a per-hour-of-day profile.

Latency follows the day (providers slow down at their peak), and a short EWMA alone follows a
slow daily rise well but not a sharp one (a nightly batch that doubles TTFT at 02:00 every
day). The profile learns each hour-of-day's level across days: a day's mean for the hour is folded
in (EWMA over days, ``season_alpha``) when the next day's first point for that hour arrives.
Every valid point counts, flagged or not, or a nightly jump (flagged the first night) would
never be learnt; one bad hour moves its slot by ``season_alpha`` of its excess at most. Once an
hour has ``min_days`` folded days, the expected value becomes
``(1 - w) * short + w * profile[hour]`` with ``w = blend``. Until then (and in every backtest
shorter than a day) the baseline is the short EWMA, which is what makes slow drift harmless:
the EWMA follows it, so the deviation, and the score, stay small.

Deviation scale, floors, warm-up, not learning flagged points and accepting a sustained shift
after ``max_skip`` ticks follow :class:`~gatewarden.detect.robust.RobustEWMA`.
"""

from __future__ import annotations

import numpy as np

from gatewarden.detect.contract import FloatArray, IntArray, SeriesState, safe_slots
from gatewarden.detect.robust import _MAD_TO_SIGMA, Direction, _Scoring
from gatewarden.protocols import SeriesTick


class SeasonalEWMA(_Scoring):
    def __init__(
        self,
        *,
        alpha: float = 0.1,
        season_alpha: float = 0.3,
        period_s: float = 86_400.0,
        slots: int = 24,
        blend: float = 0.5,
        min_days: int = 2,
        warmup: int = 10,
        min_volume: float = 1.0,
        rel_floor: float = 0.1,
        abs_floor: float = 1e-9,
        clip: float = 3.0,
        learn_limit: float = 4.0,
        max_skip: int = 240,
        direction: Direction = "up",
    ) -> None:
        super().__init__(
            min_volume=min_volume,
            rel_floor=rel_floor,
            abs_floor=abs_floor,
            binomial=False,
            learn_limit=learn_limit,
            max_skip=max_skip,
            direction=direction,
        )
        if not (0 < alpha <= 1 and 0 < season_alpha <= 1 and 0 <= blend <= 1):
            raise ValueError("alpha and season_alpha must be in (0, 1], blend in [0, 1]")
        if period_s <= 0 or slots < 1 or min_days < 1 or warmup < 1 or clip <= 0:
            raise ValueError("period_s, slots, min_days, warmup and clip must be positive")
        self.alpha, self.season_alpha, self.blend = float(alpha), float(season_alpha), float(blend)
        self.period_s, self.slots, self.min_days = float(period_s), int(slots), int(min_days)
        self.warmup, self.clip = int(warmup), float(clip)
        self.state = SeriesState()
        self.state.add("mean", fill=np.nan)
        self.state.add("dev", fill=0.0)
        self.state.add("n", fill=0, dtype=np.int64)
        self.state.add("skipped", fill=0, dtype=np.int64)
        self.state.add("profile", fill=np.nan, dtype=np.float32, width=self.slots)
        self.state.add("days", fill=0, dtype=np.int16, width=self.slots)
        self.state.add("last_day", fill=-1, dtype=np.int32, width=self.slots)
        self.state.add("today_sum", fill=0.0, dtype=np.float32, width=self.slots)
        self.state.add("today_n", fill=0, dtype=np.int32, width=self.slots)

    def _slot_and_day(self, ts: float) -> tuple[int, int]:
        day = int(ts // self.period_s)
        slot = int((ts % self.period_s) / self.period_s * self.slots) % self.slots
        return slot, day

    def _gather(self, x: SeriesTick, slots: IntArray) -> tuple[FloatArray, FloatArray, IntArray]:
        """(expected, short mean, learnt count) per series."""
        s = safe_slots(slots)
        unknown = slots < 0
        short = np.where(unknown, np.nan, self.state["mean"][s])
        n = np.where(unknown, 0, self.state["n"][s])
        slot, _ = self._slot_and_day(x.ts)
        profile = self.state["profile"][s, slot].astype(np.float64)
        seen = self.state["days"][s, slot]
        weight = np.where(~unknown & (seen >= self.min_days) & np.isfinite(profile), self.blend, 0)
        expected = np.where(weight > 0, (1 - weight) * short + weight * profile, short)
        return expected, short, n

    def _scores(self, x: SeriesTick, slots: IntArray) -> tuple[FloatArray, FloatArray, IntArray]:
        expected, _, n = self._gather(x, slots)
        dev = np.where(slots < 0, 0.0, self.state["dev"][safe_slots(slots)])
        denom = self.denominator(expected, _MAD_TO_SIGMA * dev, x.volumes)
        return self.orient(x.values - expected, denom), denom, n

    def score_one(self, x: SeriesTick) -> FloatArray:
        scores, _, n = self._scores(x, self.state.lookup(x.keys))
        return np.where(self.usable(x) & (n >= self.warmup), scores, np.nan)

    def expected(self, x: SeriesTick) -> FloatArray:
        expected, _, _ = self._gather(x, self.state.lookup(x.keys))
        return expected

    def learn_one(self, x: SeriesTick) -> None:
        slots = self.state.ensure(x.keys)
        expected, short, n = self._gather(x, slots)
        _, denom, _ = self._scores(x, slots)
        valid = self.usable(x)
        warm = n >= self.warmup
        with np.errstate(invalid="ignore"):
            # outliers either way stay out of the baseline (see gatewarden.detect.robust)
            flagged = valid & warm & (np.abs(x.values - expected) / denom > self.learn_limit)
        skipped = self.state["skipped"][slots]
        skipped = np.where(flagged, skipped + 1, np.where(valid, 0, skipped))
        reseed = flagged & (skipped > self.max_skip)
        self.state.reset(slots[reseed])
        n = np.where(reseed, 0, n)
        learn = valid & (~flagged | reseed)
        bound = self.clip * denom
        winsorise = warm & ~reseed
        values = np.where(
            winsorise, np.clip(x.values, expected - bound, expected + bound), x.values
        )
        prev = np.where((n == 0) | ~np.isfinite(short), values, short)
        weight = np.maximum(self.alpha, 1.0 / (n + 1.0))
        dev = self.state["dev"][slots]
        base = np.where(np.isfinite(expected) & (n > 0), expected, prev)
        new_dev = np.where(n == 0, 0.0, dev + weight * (np.abs(values - base) - dev))
        new_mean = prev + weight * (values - prev)
        target = slots[learn]
        self.state["mean"][target] = new_mean[learn]
        self.state["dev"][target] = new_dev[learn]
        self.state["n"][target] = n[learn] + 1
        self.state["skipped"][slots] = np.where(reseed, 0, skipped)
        self._learn_profile(x, slots[valid], x.values[valid])

    def _learn_profile(self, x: SeriesTick, target: IntArray, values: FloatArray) -> None:
        slot, day = self._slot_and_day(x.ts)
        target, first = np.unique(target, return_index=True)
        values = values[first]
        last, total, count = self.state["last_day"], self.state["today_sum"], self.state["today_n"]
        new_day = last[target, slot] != day
        done = target[new_day & (count[target, slot] > 0)]
        if done.size:  # fold the finished day's mean for this hour into the profile
            mean = total[done, slot].astype(np.float64) / count[done, slot]
            old = self.state["profile"][done, slot].astype(np.float64)
            blended = np.where(np.isfinite(old), old + self.season_alpha * (mean - old), mean)
            self.state["profile"][done, slot] = blended
            self.state["days"][done, slot] += 1
        fresh = target[new_day]
        total[fresh, slot] = 0.0
        count[fresh, slot] = 0
        last[fresh, slot] = day
        total[target, slot] += values
        count[target, slot] += 1
