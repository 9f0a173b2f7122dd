"""The traffic model: who calls which model group when, before the gateway decides the outcome.

Arrivals are generated per fixed bucket (``BUCKET_S`` seconds, one minute: per-second RNGs made
numpy call overhead dominate) from an RNG seeded by ``(seed, bucket)``, so the traffic of any
interval is the same however callers partition time. The rate shape is still per second.
Each arrival (an :class:`Intent`) carries the random draws its execution will need, so the
router's outcome is a pure function of the intent and the gateway state at its timestamp.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gatewarden.simulator.catalog import Catalog, Workflow
from gatewarden.simulator.faults import ActiveFault, AgentLoop, KeySurge
from gatewarden.simulator.trace_shape import TraceShape

#: Attempts (primary + fallbacks) an intent pre-draws randomness for; later ones reuse them.
ATTEMPTS = 3
#: Uniforms per attempt: routing tie-break, error, error status.
U_PER_ATTEMPT = 3
#: Standard normals per attempt: TTFT, per-token latency.
Z_PER_ATTEMPT = 2
#: Arrivals are drawn per bucket of this many seconds from an RNG seeded by (seed, bucket).
BUCKET_S = 60
# Columns of an intent's uniform draws: per-attempt ones first, then arrival-level ones.
_U_OFFSET, _U_GROUP, _U_STREAM, _U_TOOL = range(
    ATTEMPTS * U_PER_ATTEMPT, ATTEMPTS * U_PER_ATTEMPT + 4
)
_U_COLS = _U_TOOL + 1
_Z_IN, _Z_OUT, _Z_CALLS = range(ATTEMPTS * Z_PER_ATTEMPT, ATTEMPTS * Z_PER_ATTEMPT + 3)
_Z_COLS = _Z_CALLS + 1
_MAX_OUTPUT_TOKENS = 16_000
_MAX_INPUT_TOKENS = 200_000
_SECONDS_PER_DAY = 86_400.0


@dataclass(slots=True)
class Intent:
    """One client call as the client means it; the router turns it into 1..n records."""

    ts: float
    trace_id: str
    key: int
    group: str
    session_id: str | None
    prompt_hash: str
    tool: str | None
    stream: bool
    input_tokens: int
    output_tokens: int
    u: list[float]
    z: list[float]


class TrafficModel:
    """Poisson arrivals per key: ``base_rps`` x diurnal sinusoid x bursty per-minute factor,
    or x a real trace's intensity (``shape``, looped from ``origin``) instead of that factor.
    With ``trace_tokens`` the token sizes come from the trace too."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        seed: int,
        base_rps: float,
        diurnal_amplitude: float = 0.3,
        peak_hour_utc: float = 15.0,
        burstiness: float = 0.25,
        shape: TraceShape | None = None,
        origin: float = 0.0,
        trace_tokens: bool = True,
    ) -> None:
        self.catalog = catalog
        self.shape = shape
        self.origin = origin
        self._token_shape = shape if trace_tokens else None
        self.seed = seed
        self.diurnal_amplitude = diurnal_amplitude
        self.peak_hour_utc = peak_hour_utc
        self.burstiness = burstiness
        self._tag = f"{seed & 0xFFFFFFFFFFFF:012x}"
        self._workflows = [catalog.workflow(k.workflow) for k in catalog.keys]
        self._key_index = {k.alias: i for i, k in enumerate(catalog.keys)}
        total_weight = sum(k.weight for k in catalog.keys)
        # A key's arrival rate is in sessions/s: dividing by the mean calls per session makes
        # base_rps the expected *call* rate whatever the mix of agent and single-call workflows.
        self._key_rates = np.array(
            [
                base_rps * k.weight / total_weight / wf.mean_calls
                for k, wf in zip(catalog.keys, self._workflows, strict=True)
            ]
        )
        self._group_cdf = [self._cdf(wf) for wf in self._workflows]
        wfs = self._workflows
        # Per-key parameter vectors, so a bucket's arrivals are drawn in a few numpy calls.
        self._params: dict[str, npt.NDArray[np.float64]] = {
            "in_mu": np.array([w.input_tokens.mu for w in wfs]),
            "in_sigma": np.array([w.input_tokens.sigma for w in wfs]),
            "out_mu": np.array([w.output_tokens.mu for w in wfs]),
            "out_sigma": np.array([w.output_tokens.sigma for w in wfs]),
            "stream_ratio": np.array([w.stream_ratio for w in wfs]),
            "calls_mu": np.array([w.calls_per_session.mu if w.agent else 0.0 for w in wfs]),
            "calls_sigma": np.array([w.calls_per_session.sigma if w.agent else 0.0 for w in wfs]),
            "max_calls": np.array([float(w.max_calls_per_session) for w in wfs]),
        }
        self._burst_cache: dict[int, float] = {}
        #: faults that add traffic (key surges, agent loops)
        self._faults: list[ActiveFault] = []
        self._loops: dict[int, tuple[list[float], list[Intent]]] = {}

    @staticmethod
    def _cdf(wf: Workflow) -> tuple[list[str], list[float]]:
        names = list(wf.model_groups)
        weights = np.cumsum([wf.model_groups[n] for n in names])
        # The last bound is dropped: bisect_right on the rest maps u in [0, 1) to an index.
        return names, (weights / weights[-1]).tolist()[:-1]

    def key_index(self, alias: str) -> int:
        return self._key_index[alias]

    # -- rate shape ---------------------------------------------------------------------------

    def diurnal(self, ts: float) -> float:
        phase = (ts % _SECONDS_PER_DAY) / _SECONDS_PER_DAY - (self.peak_hour_utc - 6.0) / 24.0
        return 1.0 + self.diurnal_amplitude * math.sin(2.0 * math.pi * phase)

    def burst(self, minute: int) -> float:
        """A mean-1 lognormal multiplier per minute: traffic is lumpier than pure Poisson."""
        value = self._burst_cache.get(minute)
        if value is None:
            if len(self._burst_cache) > 100_000:
                self._burst_cache.clear()
            sigma = self.burstiness
            z = float(np.random.default_rng((self.seed, minute, 7)).standard_normal())
            value = math.exp(sigma * z - sigma * sigma / 2.0)
            self._burst_cache[minute] = value
        return value

    def rate_multiplier(self, ts: float) -> float:
        """Traffic level at ``ts`` relative to ``base_rps``."""
        if self.shape is not None:
            second = np.array([math.floor(ts)], dtype=np.int64)
            return self.diurnal(ts) * float(self.shape.multipliers(second, self.origin)[0])
        return self.diurnal(ts) * self.burst(int(ts // 60))

    # -- faults that create traffic ----------------------------------------------------------

    def add_fault(self, fault: ActiveFault) -> None:
        if isinstance(fault.fault, KeySurge | AgentLoop):
            self._faults.append(fault)
        if isinstance(fault.fault, AgentLoop):
            self._loops[fault.uid] = self._loop_intents(fault, fault.fault)

    def _loop_intents(self, af: ActiveFault, f: AgentLoop) -> tuple[list[float], list[Intent]]:
        rng = np.random.default_rng((self.seed, af.uid, 99))
        prompt_hash = f"{int(rng.integers(0, 2**62)):016x}"
        key = self._key_index[str(af.api_key)]
        low, high = sorted((f.interval_min, f.interval_max))
        times: list[float] = []
        intents: list[Intent] = []
        ts = af.start
        while ts < af.end:
            times.append(ts)
            intents.append(
                Intent(
                    ts=round(ts, 3),
                    trace_id=self._trace_id(int(ts) // BUCKET_S, 0x8000 + af.uid, len(intents)),
                    key=key,
                    group=str(af.model_group),
                    session_id=af.session_id,
                    prompt_hash=prompt_hash,
                    tool=af.tool,
                    stream=False,
                    input_tokens=f.input_tokens,
                    output_tokens=f.output_tokens,
                    u=rng.random(_U_COLS).tolist(),
                    z=rng.standard_normal(_Z_COLS).tolist(),
                )
            )
            ts += float(rng.uniform(low, high))
        return times, intents

    # -- generation ---------------------------------------------------------------------------

    def arrivals(self, bucket: int) -> list[Intent]:
        """Every intent whose session starts in bucket ``bucket`` (seconds
        ``[bucket * BUCKET_S, (bucket + 1) * BUCKET_S)``); later calls of an agent session are
        included with their future timestamps."""
        rng = np.random.default_rng((self.seed, bucket))
        t0 = bucket * BUCKET_S
        # Poisson counts per (second, key): the rate shape is per second, the draws per bucket.
        mult = self._second_multipliers(bucket)
        counts = rng.poisson(mult[:, None] * self._key_rates[None, :]).ravel()
        n_keys = len(self._key_rates)
        keys = np.repeat(np.tile(np.arange(n_keys), BUCKET_S), counts)
        seconds = np.repeat(np.repeat(np.arange(t0, t0 + BUCKET_S), n_keys), counts)
        out = self._spawn(rng, bucket, seconds, keys, stream=0)
        if self._faults:
            out += self.fault_arrivals(bucket, self._faults)
        return out

    def _second_multipliers(self, bucket: int) -> npt.NDArray[np.float64]:
        t0 = bucket * BUCKET_S
        mids = np.arange(t0, t0 + BUCKET_S, dtype=np.float64) + 0.5
        phase = (mids % _SECONDS_PER_DAY) / _SECONDS_PER_DAY - (self.peak_hour_utc - 6.0) / 24.0
        diurnal = 1.0 + self.diurnal_amplitude * np.sin(2.0 * np.pi * phase)
        if self.shape is not None:
            seconds = np.arange(t0, t0 + BUCKET_S, dtype=np.int64)
            traced: npt.NDArray[np.float64] = diurnal * self.shape.multipliers(seconds, self.origin)
            return traced
        minutes = (mids // 60).astype(np.int64)
        bursts = np.array([self.burst(m) for m in range(int(minutes[0]), int(minutes[-1]) + 1)])
        result: npt.NDArray[np.float64] = diurnal * bursts[minutes - minutes[0]]
        return result

    def fault_arrivals(self, bucket: int, faults: list[ActiveFault]) -> list[Intent]:
        """Extra intents ``faults`` add in ``bucket``; each fault has its own RNG stream so
        base traffic is identical with and without it."""
        out: list[Intent] = []
        t0, t1 = bucket * BUCKET_S, (bucket + 1) * BUCKET_S
        for fault in faults:
            if fault.end <= t0 or fault.start >= t1:
                continue
            if isinstance(fault.fault, KeySurge):
                k = self._key_index[fault.fault.api_key]
                rng = np.random.default_rng((self.seed, bucket, 1, fault.uid))
                rates = self._second_multipliers(bucket) * (
                    self._key_rates[k] * (fault.fault.factor - 1.0)
                )
                seconds = np.repeat(np.arange(t0, t1), rng.poisson(rates))
                keys = np.full(len(seconds), k)
                window = (fault.start, fault.end)
                out += self._spawn(rng, bucket, seconds, keys, 1 + fault.uid, window)
            elif fault.uid in self._loops:
                times, intents = self._loops[fault.uid]
                out += intents[bisect.bisect_left(times, t0) : bisect.bisect_left(times, t1)]
        return out

    def _session_outputs(
        self, rng: np.random.Generator, wf: Workflow, z: npt.NDArray[np.float64]
    ) -> list[int]:
        """Output tokens of an agent session's later calls."""
        if self._token_shape is None:
            return _lognormal_ints(
                wf.output_tokens.mu, wf.output_tokens.sigma, z, _MAX_OUTPUT_TOKENS
            )
        _, ratio = self._token_shape.token_ratios(rng, len(z))
        return _scaled_ints(wf.output_tokens.mu, ratio, _MAX_OUTPUT_TOKENS)

    def _trace_id(self, bucket: int, stream: int, idx: int) -> str:
        return f"{self._tag}{bucket & 0xFFFFFFFFFF:010x}{stream & 0xFFFF:04x}{idx & 0xFFFFFF:06x}"

    def _spawn(
        self,
        rng: np.random.Generator,
        bucket: int,
        seconds: npt.NDArray[np.int64],
        keys: npt.NDArray[np.int64],
        stream: int,
        window: tuple[float, float] | None = None,
    ) -> list[Intent]:
        n = len(keys)
        if n == 0:
            return []
        p = self._params
        # One draw matrix per kind keeps numpy call overhead per bucket, not per arrival.
        uniforms = rng.random((n, _U_COLS))
        normals = rng.standard_normal((n, _Z_COLS))
        ts_all = np.round(seconds + uniforms[:, _U_OFFSET], 3).tolist()
        u_group = uniforms[:, _U_GROUP].tolist()
        stream_all = (uniforms[:, _U_STREAM] < p["stream_ratio"][keys]).tolist()
        if self._token_shape is None:
            in_all = _lognormal_ints(
                p["in_mu"][keys], p["in_sigma"][keys], normals[:, _Z_IN], _MAX_INPUT_TOKENS
            )
            out_all = _lognormal_ints(
                p["out_mu"][keys], p["out_sigma"][keys], normals[:, _Z_OUT], _MAX_OUTPUT_TOKENS
            )
        else:
            in_ratio, out_ratio = self._token_shape.token_ratios(rng, n)
            in_all = _scaled_ints(p["in_mu"][keys], in_ratio, _MAX_INPUT_TOKENS)
            out_all = _scaled_ints(p["out_mu"][keys], out_ratio, _MAX_OUTPUT_TOKENS)
        lengths = np.clip(
            np.rint(np.exp(p["calls_mu"][keys] + p["calls_sigma"][keys] * normals[:, _Z_CALLS])),
            1,
            p["max_calls"][keys],
        ).tolist()
        hashes = rng.integers(0, 2**62, n).tolist()
        u_all = uniforms.tolist()
        z_all = normals.tolist()
        out: list[Intent] = []
        idx = 0
        prefix = self._trace_id(bucket, stream, 0)[:-6]
        for i, k in enumerate(keys.tolist()):
            ts = ts_all[i]
            if window is not None and not window[0] <= ts < window[1]:
                continue
            names, cdf = self._group_cdf[k]
            group = names[0] if len(names) == 1 else names[bisect.bisect_right(cdf, u_group[i])]
            wf = self._workflows[k]
            if not wf.agent:
                out.append(
                    Intent(
                        ts,
                        f"{prefix}{idx:06x}",
                        k,
                        group,
                        None,
                        f"{hashes[i]:016x}",
                        None,
                        stream_all[i],
                        in_all[i],
                        out_all[i],
                        u_all[i],
                        z_all[i],
                    )
                )
                idx += 1
                continue
            length = int(lengths[i])
            session = f"sess-{prefix[12:]}{idx:06x}"
            more = length - 1
            gaps = rng.lognormal(wf.call_gap_s.mu, wf.call_gap_s.sigma, more)
            calls_ts = [ts, *np.round(ts + np.cumsum(gaps), 3).tolist()]
            calls_u = [u_all[i], *rng.random((more, _U_COLS)).tolist()]
            more_z = rng.standard_normal((more, _Z_COLS))
            calls_z = [z_all[i], *more_z.tolist()]
            calls_out = [out_all[i], *self._session_outputs(rng, wf, more_z[:, _Z_OUT])]
            calls_hash = [hashes[i], *rng.integers(0, 2**62, more).tolist()]
            for c in range(length):
                # The last call of a session is the final answer; the others request a tool.
                tool = (
                    wf.tools[int(calls_u[c][_U_TOOL] * len(wf.tools))]
                    if wf.tools and c < more
                    else None
                )
                out.append(
                    Intent(
                        calls_ts[c],
                        f"{prefix}{idx:06x}",
                        k,
                        group,
                        session,
                        f"{calls_hash[c]:016x}",
                        tool,
                        stream_all[i],
                        min(in_all[i] + c * wf.context_growth, _MAX_INPUT_TOKENS),
                        calls_out[c],
                        calls_u[c],
                        calls_z[c],
                    )
                )
                idx += 1
        return out


def _scaled_ints(mu: npt.ArrayLike, ratio: npt.NDArray[np.float64], cap: int) -> list[int]:
    """A workflow's median size (``exp(mu)``) times a trace request's size over its median."""
    values = np.exp(np.asarray(mu)) * ratio
    result: list[int] = np.clip(values, 1, cap).astype(np.int64).tolist()
    return result


def _lognormal_ints(
    mu: npt.ArrayLike, sigma: npt.ArrayLike, z: npt.NDArray[np.float64], cap: int
) -> list[int]:
    values = np.exp(np.asarray(mu) + np.asarray(sigma) * z)
    result: list[int] = np.clip(values, 1, cap).astype(np.int64).tolist()
    return result
