"""Executes intents the way a LiteLLM proxy would: auth, key limits, routing, fallbacks.

Everything random was drawn when the intent was generated, so the outcome depends only on the
intent, the gateway state at ``intent.ts`` and the faults active then. Each LLM call becomes its
own record; a fallback call shares the trace id and request-id prefix of the call it replaces.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from gatewarden.simulator.catalog import Catalog
from gatewarden.simulator.faults import (
    ActiveFault,
    CostSpike,
    FallbackStorm,
    ProviderOutage,
    TtftDegradation,
)
from gatewarden.simulator.gateway_state import DeploymentSettings, GatewayState, RoutingView
from gatewarden.simulator.traffic import ATTEMPTS, U_PER_ATTEMPT, Z_PER_ATTEMPT, Intent

Record = dict[str, Any]

#: Status mix of the background error rate every deployment has.
BASE_STATUSES: dict[int, float] = {500: 0.5, 503: 0.25, 429: 0.25}
_EXCEPTION = {429: "RateLimitError", 500: "InternalServerError", 503: "ServiceUnavailableError"}
_WINDOW_S = 60.0
#: Proxy-side overhead added to every call (auth, hooks, logging), in ms.
_OVERHEAD_MS = 4.0


def exception_class(prefix: str, status: int) -> str:
    """LiteLLM's exception class label, e.g. ``Openai.RateLimitError``."""
    return f"{prefix}.{_EXCEPTION.get(status, 'APIError')}"


@dataclass(frozen=True, slots=True)
class _Dep:
    id: str
    provider: str
    model: str
    prefix: str
    price_in: float
    price_out: float
    ttft_mu: float
    ttft_sigma: float
    tok_mu: float
    tok_sigma: float
    error_rate: float


class _Window:
    """Requests and tokens in the trailing minute (LiteLLM's rpm/tpm limits are per minute)."""

    __slots__ = ("entries", "tokens")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.tokens = 0

    def prune(self, ts: float) -> None:
        horizon = ts - _WINDOW_S
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            self.tokens -= entries.popleft()[1]

    def add(self, ts: float, tokens: int) -> None:
        self.entries.append((ts, tokens))
        self.tokens += tokens

    def over(self, ts: float, rpm: int | None, tpm: int | None) -> bool:
        self.prune(ts)
        return (rpm is not None and len(self.entries) >= rpm) or (
            tpm is not None and self.tokens >= tpm
        )


class Router:
    def __init__(self, catalog: Catalog, state: GatewayState) -> None:
        self.catalog = catalog
        self.state = state
        self.faults: list[ActiveFault] = []
        self.spend: dict[str, float] = {}
        #: spend per team (LiteLLM checks a team's max_budget against it)
        self.team_spend: dict[str, float] = {}
        self._keys = [(k.alias, k.team, k.workflow) for k in catalog.keys]
        self._deps = {
            d.id: _Dep(
                d.id,
                d.provider,
                d.model,
                catalog.provider(d.provider).exception_prefix,
                d.input_price_per_m / 1e6,
                d.output_price_per_m / 1e6,
                d.ttft_ms.mu,
                d.ttft_ms.sigma,
                d.per_token_ms.mu,
                d.per_token_ms.sigma,
                d.error_rate,
            )
            for d in catalog.deployments
        }
        self._key_windows: dict[str, _Window] = {}
        # Always kept (not only while a team is limited): LiteLLM counts a team's usage in the
        # current minute whether or not a limit was set before it.
        self._team_windows: dict[str, _Window] = {}
        self._dep_windows: dict[str, _Window] = {d: _Window() for d in self._deps}
        self._view: RoutingView | None = None
        self._active_bucket = -1
        self._active: list[ActiveFault] = []

    def add_fault(self, fault: ActiveFault) -> None:
        self.faults.append(fault)
        self._active_bucket = -1

    def _faults_at(self, ts: float) -> list[ActiveFault]:
        bucket = int(ts)
        if bucket != self._active_bucket:
            self._active_bucket = bucket
            self._active = [f for f in self.faults if f.start < bucket + 1 and f.end > bucket]
        return [f for f in self._active if f.start <= ts < f.end] if self._active else []

    # -- the request path ---------------------------------------------------------------------

    def execute(self, it: Intent) -> list[Record]:
        view = self._view
        if view is None or view.version != self.state.version:
            view = self._view = self.state.view()
        alias = self._keys[it.key][0]
        settings = view.keys[alias]
        if settings.blocked:
            return [self._gateway(it, it.ts, 401, "key_blocked", it.group, 0)]
        if settings.max_budget is not None and self.spend.get(alias, 0.0) >= settings.max_budget:
            return [self._gateway(it, it.ts, 400, "budget_exceeded", it.group, 0)]
        window = self._key_windows.get(alias)
        if window is None:
            window = self._key_windows[alias] = _Window()
        if window.over(it.ts, settings.rpm_limit, settings.tpm_limit):
            return [self._gateway(it, it.ts, 429, "rate_limited", it.group, 0)]
        team_window = self._team_windows.get(settings.team)
        if team_window is None:
            team_window = self._team_windows[settings.team] = _Window()
        team = view.teams.get(settings.team) if view.teams else None
        if team is not None:
            if team.blocked:
                return [self._gateway(it, it.ts, 401, "team_blocked", it.group, 0)]
            spent = self.team_spend.get(team.team_id, 0.0)
            if team.max_budget is not None and spent >= team.max_budget:
                return [self._gateway(it, it.ts, 400, "budget_exceeded", it.group, 0)]
            if team_window.over(it.ts, team.rpm_limit, team.tpm_limit):
                return [self._gateway(it, it.ts, 429, "rate_limited", it.group, 0)]
        else:
            team_window.prune(it.ts)  # keep an unlimited team's window short

        groups = (it.group, *view.fallbacks.get(it.group, ()))
        ts = it.ts
        records: list[Record] = []
        for attempt, group in enumerate(groups):
            dep = self._pick(view, group, ts, it.u[min(attempt, ATTEMPTS - 1) * U_PER_ATTEMPT])
            if dep is None:
                # LiteLLM's RouterRateLimitError: no deployment of the group has capacity left.
                rec = self._gateway(it, ts, 429, "router_rate_limit", group, attempt)
            else:
                rec = self._call(it, ts, dep, attempt)
            records.append(rec)
            if rec["status"] < 400:
                break
            ts = round(ts + rec["latency_ms"] / 1000.0, 3)
        rec = records[-1]
        used = rec["input_tokens"] + rec["output_tokens"]  # only the last call can succeed
        window.add(it.ts, used)
        team_window.add(it.ts, used)
        return records

    def _pick(
        self, view: RoutingView, group: str, ts: float, u: float
    ) -> DeploymentSettings | None:
        """Lowest ``order`` among deployments under their rpm/tpm; weighted among equals."""
        best: list[DeploymentSettings] = []
        for d in view.candidates.get(group, ()):
            if best and d.order > best[0].order:
                break
            if (d.rpm is not None or d.tpm is not None) and self._dep_windows[d.id].over(
                ts, d.rpm, d.tpm
            ):
                continue
            best.append(d)
        if len(best) <= 1:
            return best[0] if best else None
        cdf: list[float] = []
        total = 0.0
        for d in best:
            total += d.weight
            cdf.append(total)
        return best[min(bisect.bisect_right(cdf, u * total), len(best) - 1)]

    def _call(self, it: Intent, ts: float, settings: DeploymentSettings, attempt: int) -> Record:
        dep = self._deps[settings.id]
        a = min(attempt, ATTEMPTS - 1)
        u_err, u_status = it.u[a * U_PER_ATTEMPT + 1], it.u[a * U_PER_ATTEMPT + 2]
        z_ttft, z_tok = it.z[a * Z_PER_ATTEMPT], it.z[a * Z_PER_ATTEMPT + 1]
        ok_prob = 1.0 - dep.error_rate
        statuses, worst = BASE_STATUSES, dep.error_rate
        ttft_factor = out_factor = price_factor = 1.0
        alias, team, workflow = self._keys[it.key]
        for f in self._faults_at(ts) if self.faults else ():
            fault = f.fault
            if isinstance(fault, ProviderOutage | FallbackStorm):
                if isinstance(fault, ProviderOutage):
                    hit = fault.provider == dep.provider and fault.model in (None, dep.model)
                else:
                    hit = f.deployment == dep.id
                if hit:
                    ok_prob *= 1.0 - fault.error_rate
                    if fault.error_rate > worst:
                        statuses, worst = fault.statuses, fault.error_rate
            elif isinstance(fault, TtftDegradation):
                if fault.provider == dep.provider and fault.model in (None, dep.model):
                    ttft_factor *= fault.factor
            elif isinstance(fault, CostSpike):
                if fault.model is not None:
                    if fault.model == dep.model:
                        price_factor *= fault.price_factor
                elif fault.workflow == workflow or fault.api_key == alias:
                    out_factor *= fault.output_factor
        # Only deployments with rpm/tpm limits need their trailing-minute usage.
        limited = settings.rpm is not None or settings.tpm is not None
        dep_window = self._dep_windows[dep.id] if limited else None
        if u_err < 1.0 - ok_prob:
            status = _pick_status(statuses, u_status)
            median_ms = 80.0 if status == 429 else 600.0
            latency = math.exp(math.log(median_ms) + 0.6 * z_ttft) + _OVERHEAD_MS
            if dep_window is not None:
                dep_window.add(ts, 0)
            return self._record(
                it,
                ts,
                dep.provider,
                dep.model,
                status,
                exception_class(dep.prefix, status),
                latency,
                None,
                0,
                0,
                0.0,
                attempt,
            )
        out_tokens = max(1, int(it.output_tokens * out_factor))
        ttft = math.exp(dep.ttft_mu + dep.ttft_sigma * z_ttft) * ttft_factor
        per_token = math.exp(dep.tok_mu + dep.tok_sigma * z_tok)
        latency = ttft + per_token * (out_tokens - 1) + _OVERHEAD_MS
        cost = (it.input_tokens * dep.price_in + out_tokens * dep.price_out) * price_factor
        self.spend[alias] = self.spend.get(alias, 0.0) + cost
        self.team_spend[team] = self.team_spend.get(team, 0.0) + cost
        if dep_window is not None:
            dep_window.add(ts, it.input_tokens + out_tokens)
        return self._record(
            it,
            ts,
            dep.provider,
            dep.model,
            200,
            None,
            latency,
            ttft if it.stream else None,
            it.input_tokens,
            out_tokens,
            cost,
            attempt,
        )

    def _gateway(
        self, it: Intent, ts: float, status: int, error: str, group: str, attempt: int
    ) -> Record:
        """A request the proxy itself answered: no provider call, no tokens, no cost.
        ``model`` is the model group the proxy was asked to route."""
        latency = 2.0 + 3.0 * it.u[-1]
        return self._record(
            it, ts, "gateway", group, status, error, latency, None, 0, 0, 0.0, attempt
        )

    def _record(
        self,
        it: Intent,
        ts: float,
        provider: str,
        model: str,
        status: int,
        error: str | None,
        latency: float,
        ttft: float | None,
        in_tok: int,
        out_tok: int,
        cost: float,
        attempt: int,
    ) -> Record:
        alias, team, workflow = self._keys[it.key]
        return {
            "ts": ts,
            "request_id": f"chatcmpl-{it.trace_id}" + (f"-fb{attempt}" if attempt else ""),
            "trace_id": it.trace_id,
            "session_id": it.session_id,
            "api_key": alias,
            "team": team,
            "workflow": workflow,
            "provider": provider,
            "model": model,
            "requested_model": it.group,
            "status": status,
            "error": error,
            "latency_ms": round(latency, 2),
            "ttft_ms": None if ttft is None else round(ttft, 2),
            "input_tokens": in_tok,
            "output_tokens": out_tok,
            "cost_usd": round(cost, 9),
            "fallback": attempt > 0,
            "retries": 0,
            "prompt_hash": it.prompt_hash,
            "tool": it.tool,
        }


def _pick_status(statuses: dict[int, float], u: float) -> int:
    total = sum(statuses.values())
    acc = 0.0
    for status, share in statuses.items():
        acc += share / total
        if u < acc:
            return status
    return next(reversed(statuses))
