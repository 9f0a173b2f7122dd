"""Clocks. Every component takes one, so backtests replay hours in seconds on the live code path."""

from __future__ import annotations

import threading
import time


class SystemClock:
    """Wall-clock time in epoch seconds."""

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to (backtests, tests)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def set(self, ts: float) -> None:
        with self._lock:
            if ts < self._now:
                raise ValueError(f"virtual clock cannot go back: {ts} < {self._now}")
            self._now = float(ts)

    def advance(self, seconds: float) -> float:
        with self._lock:
            if seconds < 0:
                raise ValueError("virtual clock cannot go back")
            self._now += seconds
            return self._now


class ScaledClock:
    """Simulated time running ``speed`` times faster than the wall clock from ``start``.

    Used by the demo and ``simulate --speed``: a 15 s tick at speed 120 takes 125 ms.
    """

    def __init__(
        self,
        start: float,
        speed: float = 1.0,
        *,
        real: SystemClock | None = None,
        origin: float | None = None,
    ) -> None:
        """``origin`` is the wall-clock instant at which simulated time equals ``start``
        (default: now). Fixing it lets several processes, or one process across restarts,
        share one simulated timeline."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._real = real or SystemClock()
        self._origin_real = self._real.now() if origin is None else float(origin)
        self._start = float(start)
        self.speed = float(speed)

    def now(self) -> float:
        return self._start + (self._real.now() - self._origin_real) * self.speed
