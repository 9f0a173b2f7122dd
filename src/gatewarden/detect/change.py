"""Change detection: a one-sided CUSUM over any baseline detector's z-scores.

``S = clip(S + clip(z, -cap, cap) - k, 0, s_max)`` per series, and the score is ``S``. Why this
shape rather than a threshold on ``z``:

* **Subtle, sustained shifts add up.** 3 % errors on a provider whose baseline is 0.3 % gives
  per-tick z-scores of 2-4 (a few errors per 15 s), never one big one; their sum crosses the
  threshold within minutes while noise (mean z ~ 0, minus ``k`` per tick) drains away.
* **Short blips cannot page.** Each tick adds at most ``cap - k``, so a fault must last at least
  ``threshold / (cap - k)`` ticks, however large: with ``cap=4, k=1, threshold=16.5`` that is
  six ticks (75-90 s), which a one-minute blip (five ticks touched at most) never reaches.
* **Hysteresis for free.** ``S`` saturates at ``s_max`` during a long fault and drains at
  about ``k`` per healthy tick afterwards, so a noisy fault does not flap open/closed.
* **Only while it is still happening.** After a blip ``S`` is high and drains slowly, and a
  little noise on top could push it over the threshold minutes later. So the score is capped
  at ``hold`` unless the *recent* evidence is positive: ``m = recent * m + step`` (the steps of
  the last few ticks, halving every tick by default) must be above zero.

A tick the inner detector cannot judge (too little volume) drains ``S`` by ``drain``, and ticks a
series is absent drain it too when it comes back: without that, a series that
turns quiet after a fault would keep its alarm level for as long as it stays quiet.

While ``S >= hold`` the inner baseline does not learn (a fault must not become the baseline);
after ``max_hold`` such ticks in a row the shift is accepted: the series' inner state is reset
and it warms up again on the new level.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from gatewarden.detect.contract import Baseline, FloatArray, SeriesState, safe_slots
from gatewarden.protocols import Detector, SeriesTick


class Cusum:
    """CUSUM of an inner detector's (z-score-like) scores. The inner keeps its own contract;
    this wrapper only accumulates. ``inputs`` and ``expected`` pass through."""

    def __init__(
        self,
        inner: Detector,
        *,
        k: float = 1.0,
        cap: float = 4.0,
        hold: float = 6.0,
        s_max: float = 40.0,
        max_hold: int = 240,
        drain: float = 1.0,
        recent: float = 0.5,
    ) -> None:
        if k < 0 or cap <= k:
            raise ValueError("need 0 <= k < cap")
        if hold <= 0 or s_max < hold or max_hold < 1:
            raise ValueError("need 0 < hold <= s_max and max_hold >= 1")
        self.inner = inner
        self.k, self.cap, self.hold, self.s_max = float(k), float(cap), float(hold), float(s_max)
        self.max_hold = int(max_hold)
        if drain < 0:
            raise ValueError("drain must be >= 0")
        self.drain = float(drain)
        if not 0 <= recent < 1:
            raise ValueError("recent must be in [0, 1)")
        self.recent = float(recent)
        self.inputs: tuple[str, ...] = tuple(getattr(inner, "inputs", ()))
        self.state = SeriesState()
        self.state.add("s", fill=0.0)
        self.state.add("held", fill=0, dtype=np.int64)
        self.state.add("run", fill=0, dtype=np.int64)
        self.state.add("m", fill=0.0)
        self.state.add("last_ts", fill=np.nan)
        #: the tick length, learnt as the shortest gap between two ticks seen
        self._tick_s = np.inf
        self._last_ts = np.nan
        #: the inner scores of the tick last scored: the stage scores a tick, then learns the
        #: same tick, and the inner detector's scoring is most of the work
        self._scored: tuple[SeriesTick, FloatArray] | None = None

    def _inner_scores(self, x: SeriesTick) -> FloatArray:
        if self._scored is not None and self._scored[0] is x:
            return self._scored[1]
        z = self.inner.score_one(x)
        self._scored = (x, z)
        return z

    def _step(self, z: FloatArray) -> FloatArray:
        step: FloatArray = np.clip(z, -self.cap, self.cap) - self.k
        return step

    def _advance(self, z: FloatArray, previous: FloatArray) -> FloatArray:
        advanced: FloatArray = np.clip(previous + self._step(z), 0.0, self.s_max)
        return advanced

    def _recent(self, slots: npt.NDArray[np.intp], z: FloatArray) -> FloatArray:
        stored = np.where(slots >= 0, self.state["m"][safe_slots(slots)], 0.0)
        recent: FloatArray = self.recent * stored + np.where(np.isfinite(z), self._step(z), 0.0)
        return recent

    def _previous(self, x: SeriesTick, slots: npt.NDArray[np.intp]) -> FloatArray:
        """Each series' sum, drained by ``k`` for every tick it missed since its last one."""
        s = safe_slots(slots)
        known = slots >= 0
        stored = np.where(known, self.state["s"][s], 0.0)
        tick_s = min(self._tick_s, x.ts - self._last_ts) if np.isfinite(self._last_ts) else np.inf
        if not np.isfinite(tick_s) or tick_s <= 0:
            return stored
        with np.errstate(invalid="ignore"):
            missed = np.rint((x.ts - self.state["last_ts"][s]) / tick_s) - 1.0
        missed = np.where(known & np.isfinite(missed), np.maximum(missed, 0.0), 0.0)
        previous: FloatArray = np.maximum(stored - self.drain * missed, 0.0)
        return previous

    def score_one(self, x: SeriesTick) -> FloatArray:
        z = self._inner_scores(x)
        slots = self.state.lookup(x.keys)
        with np.errstate(invalid="ignore"):
            advanced = self._advance(z, self._previous(x, slots))
            gated = np.where(self._recent(slots, z) > 0, advanced, np.minimum(advanced, self.hold))
        return np.where(np.isfinite(z), gated, np.nan)

    def expected(self, x: SeriesTick) -> FloatArray:
        if isinstance(self.inner, Baseline):
            return self.inner.expected(x)
        return np.full(len(x.keys), np.nan)

    def window_ticks(self, x: SeriesTick) -> FloatArray:
        """Ticks of evidence behind each series' score: since ``S`` last left zero (>= 1)."""
        slots = self.state.lookup(x.keys)
        run = np.where(slots >= 0, self.state["run"][safe_slots(slots)], 0)
        ticks: FloatArray = (run + 1).astype(np.float64)
        return ticks

    def learn_one(self, x: SeriesTick) -> None:
        z = self._inner_scores(x)
        self._scored = None  # the inner state changes below
        known = self.state.lookup(x.keys)
        previous = self._previous(x, known)
        with np.errstate(invalid="ignore"):
            recent = self._recent(known, z)
        slots = self.state.ensure(x.keys)
        finite = np.isfinite(z)
        with np.errstate(invalid="ignore"):
            advanced = self._advance(np.where(finite, z, 0.0), previous)
        # a tick that cannot be judged brings no evidence: it drains
        advanced = np.where(finite, advanced, np.maximum(previous - self.drain, 0.0))
        suspect = finite & (advanced >= self.hold)
        held = np.where(suspect, self.state["held"][slots] + 1, 0)
        accept = held > self.max_hold
        # Cannot-judge ticks (warm-up, thin volume) still reach the inner detector: it decides
        # what they are worth. Suspect ticks are hidden from it as missing values.
        learn = ~suspect | accept
        masked = x if learn.all() else replace(x, values=np.where(learn, x.values, np.nan))
        self.inner.learn_one(masked)
        if accept.any():
            inner_state = getattr(self.inner, "state", None)
            if isinstance(inner_state, SeriesState):
                accepted = inner_state.lookup([x.keys[i] for i in np.flatnonzero(accept).tolist()])
                inner_state.reset(accepted[accepted >= 0])
        self.state["s"][slots] = np.where(accept, 0.0, advanced)
        self.state["held"][slots] = np.where(accept, 0, held)
        self.state["run"][slots] = np.where(advanced > 0, self.state["run"][slots] + 1, 0)
        self.state["m"][slots] = np.where(accept, 0.0, recent)
        self.state["last_ts"][slots] = x.ts
        if np.isfinite(self._last_ts) and x.ts > self._last_ts:
            self._tick_s = min(self._tick_s, x.ts - self._last_ts)
        self._last_ts = x.ts
