"""Exponential backoff with jitter, for retries whose schedule is derived from the event log.

Delays follow "full jitter" (AWS Architecture Blog, *Exponential Backoff And Jitter*): the
n-th retry waits ``uniform(0, min(cap, base * 2 ** (n - 1)))``. Without jitter, every run or
message that failed in the same outage retries at the same instants and hits the recovering
gateway (or Slack) in lockstep; with it, their retries spread over the whole backoff window.

The draw is a keyed hash of the failure's identity (its event key) under a seed, not a
stateful generator: the remediation engine recomputes "not before" from the stored failures on
every tick and after every restart, and each computation must give the same instant. Distinct
failures get independent draws. The seed is injected, so tests pin it; the default (0) makes
a replay of the same event log retry at the same instants.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def exponential(attempt: int, base: float, cap: float) -> float:
    """The delay before attempt ``attempt + 1`` after ``attempt`` failures: base, 2x, 4x ...
    up to ``cap``."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class Jitter:
    """Scales a backoff delay by a reproducible random factor.

    ``spread`` is the randomised share of the delay: 1.0 (default) is full jitter, any delay
    in ``[0, d]``; 0.5 keeps at least half of it; 0.0 is the plain exponential schedule.
    """

    seed: int = 0
    spread: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.spread <= 1.0:
            raise ValueError(f"jitter spread must be within [0, 1], got {self.spread}")

    def draw(self, key: str) -> float:
        """Uniform in ``[0, 1)``; the same for the same seed and key."""
        data = f"{self.seed}\x00{key}".encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(data, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    def scale(self, delay: float, key: str) -> float:
        """``delay`` shortened by this key's share of the spread."""
        return delay * (1.0 - self.spread * self.draw(key))


#: The plain exponential schedule (tests that assert exact retry instants).
NO_JITTER = Jitter(spread=0.0)
