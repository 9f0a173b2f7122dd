"""Arrivals and token sizes taken from a real LLM serving trace instead of the traffic model.

The simulator's own traffic (Poisson x diurnal x a lognormal per-minute factor) is a model this
project wrote; evaluating detectors only on it risks tuning them to the generator. A
:class:`TraceShape` replays a public trace's *shape* under the same catalog and faults:

* **arrival intensity**: the trace's requests per second, smoothed over ``smooth_s`` and
  normalised to mean 1, looped over the trace's span from the scenario start. It replaces the
  per-minute burst factor; ``base_rps`` and the diurnal curve still set the level, so a one-hour
  trace's lulls and bursts recur across a multi-hour day;
* **token sizes**: each call's input and output tokens are the trace's (a request drawn at
  random) scaled by its workflow's median over the trace's median, so an agent workflow keeps
  its larger prompts but gets the trace's real heavy tail instead of a lognormal.

Which key, model group and session a call belongs to still comes from the catalog: the traces
carry neither. Supported formats (see ``../shared/traces/README.md``): the Azure LLM inference
CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``) and Mooncake JSON Lines (``timestamp`` in ms,
``input_length``, ``output_length``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

FloatArray = npt.NDArray[np.float64]


class TraceArrivals(BaseModel):
    """Scenario setting: take arrivals and token sizes from a real trace file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path = Field(description="Azure LLM inference CSV or Mooncake JSONL trace")
    smooth_s: int = Field(
        default=10, ge=1, le=600, description="seconds the arrival rate is averaged over"
    )
    tokens: bool = Field(default=True, description="also take token sizes from the trace")


@dataclass(frozen=True)
class TraceShape:
    """A trace reduced to what the simulator needs: a mean-1 intensity per second and the
    token sizes of its requests relative to their medians."""

    intensity: FloatArray
    input_ratio: FloatArray
    output_ratio: FloatArray

    @property
    def period_s(self) -> int:
        return len(self.intensity)

    @classmethod
    def load(cls, settings: TraceArrivals) -> TraceShape:
        """Read and reduce a trace file. Raises ValueError naming the file when it is not a
        trace of a known format or holds no usable request."""
        path = settings.path
        try:
            if path.suffix.lower() == ".csv":
                frame = pd.read_csv(path)
                stamps = pd.to_datetime(frame["TIMESTAMP"], format="ISO8601")
                seconds = (stamps - stamps.min()).dt.total_seconds().to_numpy(np.float64)
                inputs = frame["ContextTokens"].to_numpy(np.float64)
                outputs = frame["GeneratedTokens"].to_numpy(np.float64)
            else:
                frame = pd.read_json(path, lines=True)
                seconds = frame["timestamp"].to_numpy(np.float64) / 1000.0
                inputs = frame["input_length"].to_numpy(np.float64)
                outputs = frame["output_length"].to_numpy(np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable LLM trace ({exc})") from exc
        usable = np.isfinite(seconds) & (inputs > 0) & (outputs > 0)
        if not usable.any():
            raise ValueError(f"{path}: no request with a time and positive token counts")
        return cls.from_arrays(
            seconds[usable] - seconds[usable].min(),
            inputs[usable],
            outputs[usable],
            smooth_s=settings.smooth_s,
        )

    @classmethod
    def from_arrays(
        cls, seconds: FloatArray, inputs: FloatArray, outputs: FloatArray, *, smooth_s: int
    ) -> TraceShape:
        counts = np.bincount(seconds.astype(np.int64)).astype(np.float64)
        # A centred moving average: bursts longer than smooth_s survive, per-second noise (which
        # the Poisson draw adds back) does not count twice. Circular, as the trace loops.
        width = min(smooth_s, len(counts))
        padded = np.concatenate([counts[-width:], counts, counts[:width]])
        smooth = np.convolve(padded, np.ones(width) / width, mode="same")[width:-width]
        intensity = smooth / smooth.mean()
        return cls(
            intensity=intensity,
            input_ratio=inputs / float(np.median(inputs)),
            output_ratio=outputs / float(np.median(outputs)),
        )

    def multipliers(self, seconds: npt.NDArray[np.int64], origin: float) -> FloatArray:
        """Intensity at each epoch second, the trace starting at ``origin`` and looping."""
        offsets = (seconds - int(origin)) % self.period_s
        result: FloatArray = self.intensity[offsets]
        return result

    def token_ratios(self, rng: np.random.Generator, n: int) -> tuple[FloatArray, FloatArray]:
        """Input and output size ratios of ``n`` requests drawn from the trace (pairs kept
        together: long prompts and long answers go with each other as they did)."""
        picks = rng.integers(0, len(self.input_ratio), n)
        return self.input_ratio[picks], self.output_ratio[picks]
