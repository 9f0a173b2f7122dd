"""Client calls: an inference request executed by the simulator's own router at its ``now``.

A client call becomes a :class:`~gatewarden.simulator.traffic.Intent`, like a generated
arrival, so it meets the same gateway state (blocked keys, key rpm/tpm limits and budgets,
deployment order, fallbacks) and the same faults (provider outages, TTFT degradation, cost
spikes). Its records go into the simulator's release queue, so they reach the request log and
``/metrics`` once sim time passes their ``ts``, exactly as generated records do.

Determinism: a call's random draws come from its own RNG, seeded by (scenario seed, a stream
tag, the call's number). Generated traffic is seeded per bucket and per fault and never sees
client calls, so its records for a seed stay byte-identical with client calls interleaved,
except through the gateway state they share on purpose: a client call counts against its
key's rpm/tpm limit and budget and against deployment rpm/tpm, as a real call would.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from gatewarden.simulator.router import Record
from gatewarden.simulator.sim import Simulator
from gatewarden.simulator.traffic import ATTEMPTS, U_PER_ATTEMPT, Z_PER_ATTEMPT, Intent

#: Tags client-call RNG seeds, apart from traffic's (seed, bucket[, ...]) seeds.
_RNG_STREAM = 0xC11E47
#: Client call ids fill the bucket field of a generated trace id with f's: no epoch bucket
#: reaches 0xFFFFFFFFFF, so a client id never equals a generated one.
_ID_BUCKET = "f" * 10
_MAX_OUTPUT_TOKENS = 16_000


@dataclass(frozen=True, slots=True)
class ChatCall:
    """What a client asked for, already authenticated and validated."""

    alias: str
    group: str
    stream: bool
    input_tokens: int
    max_output_tokens: int | None
    prompt_hash: str
    session_id: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The records of one client call (one per hop: primary, then fallbacks), in order, with
    the model group and deployment of each hop (deployment None when the proxy answered)."""

    records: tuple[Record, ...]
    groups: tuple[str, ...]
    deployments: tuple[str | None, ...]

    @property
    def final(self) -> Record:
        """The hop whose answer the client gets (what the metrics count as the answer)."""
        return self.records[-1]

    @property
    def ok(self) -> bool:
        return bool(self.final["status"] < 400)

    @property
    def started(self) -> float:
        return float(self.records[0]["ts"])

    @property
    def duration_ms(self) -> float:
        """Simulated time from the call's arrival to its answer, across every hop."""
        final = self.final
        span_ms = (float(final["ts"]) - self.started) * 1000.0
        return round(span_ms + float(final["latency_ms"]), 2)


class ClientCalls:
    """Executes client calls against one simulator; use :func:`client_calls` to get it."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._count = 0
        self._tag = f"{sim.scenario.seed & 0xFFFFFFFFFFFF:012x}"
        catalog = sim.catalog
        self._output = {k.alias: catalog.workflow(k.workflow).output_tokens for k in catalog.keys}
        group_of = catalog.group_of()
        self._served = {
            (d.provider, d.model): (d.id, group_of.get(d.id, d.model)) for d in catalog.deployments
        }

    def execute(self, call: ChatCall) -> Outcome:
        with self.sim.lock:
            # Everything generated before now has run, so the router's state (key windows,
            # spend, faults) is as a call arriving now would find it.
            now = self.sim.sync()
            number = self._count
            self._count += 1
            rng = np.random.default_rng((self.sim.scenario.seed, _RNG_STREAM, number))
            # The router reads per-hop draws and u[-1]; the extra z draws the answer's length.
            u = rng.random(ATTEMPTS * U_PER_ATTEMPT + 1).tolist()
            z = rng.standard_normal(ATTEMPTS * Z_PER_ATTEMPT + 1).tolist()
            dist = self._output[call.alias]
            drawn = min(max(math.exp(dist.mu + dist.sigma * z[-1]), 1.0), _MAX_OUTPUT_TOKENS)
            output = int(drawn)
            if call.max_output_tokens is not None:
                output = min(output, call.max_output_tokens)
            intent = Intent(
                # Generated timestamps are whole milliseconds; so is this one.
                ts=round(now, 3),
                trace_id=f"{self._tag}{_ID_BUCKET}{number:010x}",
                key=self.sim.traffic.key_index(call.alias),
                group=call.group,
                session_id=call.session_id,
                prompt_hash=call.prompt_hash,
                tool=None,
                stream=call.stream,
                input_tokens=call.input_tokens,
                output_tokens=output,
                u=u,
                z=z,
            )
            records = self.sim.router.execute(intent)
            if call.trace_id is not None:
                # The request ids stay the simulator's (unique); the trace is the client's.
                for rec in records:
                    rec["trace_id"] = call.trace_id
            self.sim.submit(records)
        hops = [self._hop(r) for r in records]
        return Outcome(
            records=tuple(records),
            groups=tuple(g for g, _ in hops),
            deployments=tuple(d for _, d in hops),
        )

    def _hop(self, rec: Record) -> tuple[str, str | None]:
        served = self._served.get((rec["provider"], rec["model"]))
        if served is None:
            # Answered by the proxy itself: the router puts the model group in ``model``.
            return str(rec["model"]), None
        return served[1], served[0]


_REGISTRY: weakref.WeakKeyDictionary[Simulator, ClientCalls] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def client_calls(sim: Simulator) -> ClientCalls:
    """The one :class:`ClientCalls` of ``sim``: two apps over one simulator must share the
    call counter, or they would reuse RNG streams and request ids."""
    with _REGISTRY_LOCK:
        calls = _REGISTRY.get(sim)
        if calls is None:
            calls = _REGISTRY[sim] = ClientCalls(sim)
        return calls
