"""Prometheus exposition with LiteLLM's own metric and label names (checked against a real
1.106.2 ``/metrics/`` scrape), cumulative since simulator start and derived from the records.

Counters are accumulated as records are released (``ts < now``), so a scrape is always
consistent with the request log up to the same instant. Label semantics follow LiteLLM: on
deployment-level metrics ``model_group``/``requested_model`` is the group the call was routed
for (a fallback call reports its fallback group); on ``litellm_proxy_*`` and the fallback
counters ``requested_model`` is what the client asked for.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from gatewarden.simulator.catalog import Catalog
from gatewarden.simulator.router import exception_class

Record = dict[str, Any]
Labels = tuple[str, ...]


def _names(text: str) -> Labels:
    return tuple(text.split())


# fmt: off
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0, 420.0, 600.0)
PER_TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                     10.0)
# fmt: on
NONE = "None"
#: Label values a single-tenant proxy without a database reports.
_CONSTANT = {
    "client_ip": "127.0.0.1",
    "user_agent": "gatewarden-sim/0.1",
    "route": "/v1/chat/completions",
    "user": "default_user_id",
    "end_user": NONE,
    "org_alias": NONE,
    "org_id": NONE,
    "user_email": NONE,
    "service_tier": NONE,
}
#: Gateway-answered failures the client sees, as LiteLLM labels them.
_GATEWAY_EXC = {
    "key_blocked": "ProxyException",
    "rate_limited": "RateLimitError",
    "budget_exceeded": "BudgetExceededError",
    "router_rate_limit": "RouterRateLimitError",
}

# Label names exactly as in the real scrape (LiteLLM emits them sorted).
_PROXY_TOTAL = _names(
    "api_key_alias api_provider client_ip end_user hashed_api_key model_id org_alias org_id "
    "requested_model route status_code team team_alias user user_agent user_email"
)
_PROXY_FAILED = _names(
    "api_key_alias api_provider client_ip end_user exception_class exception_status "
    "hashed_api_key model_id org_alias org_id requested_model route team team_alias user "
    "user_agent user_email"
)
_SPEND = _names(
    "api_key_alias api_provider client_ip end_user hashed_api_key model model_id org_alias "
    "org_id requested_model service_tier team team_alias user user_agent user_email"
)
_LATENCY = _names(
    "api_key_alias api_provider end_user hashed_api_key model model_group model_id org_alias "
    "org_id requested_model service_tier team team_alias user"
)
_TOKENS = _names(
    "api_key_alias api_provider end_user hashed_api_key model model_id org_alias org_id "
    "requested_model team team_alias user user_email"
)
_DEP = _names(
    "api_base api_key_alias api_provider client_ip hashed_api_key litellm_model_name "
    "model_group model_id requested_model team team_alias user_agent"
)
_DEP_FAILED = _names(
    "api_base api_key_alias api_provider client_ip exception_class exception_status "
    "hashed_api_key litellm_model_name model_group model_id requested_model team team_alias "
    "user_agent"
)
_FALLBACK = _names(
    "api_key_alias exception_class exception_status fallback_model hashed_api_key model_id "
    "requested_model team team_alias"
)
_COOLED = _names("api_base api_provider exception_status litellm_model_name model_id")
_PER_TOKEN = _names(
    "api_base api_key_alias api_provider hashed_api_key litellm_model_name model_group "
    "model_id org_alias org_id team team_alias"
)

#: name (exposed with ``_total``) -> (help, label names)
COUNTERS: dict[str, tuple[str, Labels]] = {
    "litellm_proxy_total_requests_metric": (
        "Total number of requests made to the proxy server - track number of client side requests",
        _PROXY_TOTAL,
    ),
    "litellm_proxy_failed_requests_metric": (
        "Total number of failed responses from proxy - the client did not get a success "
        "response from litellm proxy",
        _PROXY_FAILED,
    ),
    "litellm_spend_metric": (
        "Total spend on LLM requests",
        _SPEND,
    ),
    "litellm_input_tokens_metric": ("Total number of input tokens from LLM requests", _TOKENS),
    "litellm_output_tokens_metric": ("Total number of output tokens from LLM requests", _TOKENS),
    "litellm_total_tokens_metric": (
        "Total number of input + output tokens from LLM requests",
        _TOKENS,
    ),
    "litellm_deployment_success_responses": (
        "LLM Deployment Analytics - Total number of successful LLM API calls via litellm",
        _DEP,
    ),
    "litellm_deployment_failure_responses": (
        "LLM Deployment Analytics - Total number of failed LLM API calls for a specific LLM "
        "deploymeny. exception_status is the status of the exception from the llm api",
        _DEP_FAILED,
    ),
    "litellm_deployment_total_requests": (
        "LLM Deployment Analytics - Total number of LLM API calls via litellm - success + failure",
        _DEP,
    ),
    "litellm_deployment_successful_fallbacks": (
        "LLM Deployment Analytics - Number of successful fallback requests from primary model "
        "-> fallback model",
        _FALLBACK,
    ),
    "litellm_deployment_failed_fallbacks": (
        "LLM Deployment Analytics - Number of failed fallback requests from primary model -> "
        "fallback model",
        _FALLBACK,
    ),
    "litellm_deployment_cooled_down": (
        "LLM Deployment Analytics - Number of times a deployment has been cooled down by LiteLLM "
        "load balancing logic. exception_status is the status of the exception that caused the "
        "deployment to be cooled down",
        _COOLED,
    ),
}
#: name -> (help, label names, bucket bounds)
HISTOGRAMS: dict[str, tuple[str, Labels, tuple[float, ...]]] = {
    "litellm_request_total_latency_metric": (
        "End-to-end latency (seconds) for a request to LiteLLM Proxy Server",
        _LATENCY,
        LATENCY_BUCKETS,
    ),
    "litellm_llm_api_latency_metric": (
        "Total latency (seconds) for a models LLM API call",
        _LATENCY,
        LATENCY_BUCKETS,
    ),
    "litellm_llm_api_time_to_first_token_metric": (
        "Time to first token for a models LLM API call",
        _LATENCY,
        LATENCY_BUCKETS,
    ),
    "litellm_deployment_latency_per_output_token": (
        "LLM Deployment Analytics - Latency per output token",
        _PER_TOKEN,
        PER_TOKEN_BUCKETS,
    ),
}
STATE = "litellm_deployment_state"
STATE_LABELS = _names("api_base api_provider litellm_model_name model_id")
STATE_HELP = (
    "LLM Deployment Analytics - The state of the deployment: 0 = healthy, 1 = partial outage, "
    "2 = complete outage"
)


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * (size + 1)
        self.total = 0.0


class MetricsAccumulator:
    """Cumulative LiteLLM-style metrics, fed one released record at a time."""

    def __init__(self, catalog: Catalog) -> None:
        self._counters: dict[str, dict[Labels, float]] = {name: {} for name in COUNTERS}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {name: {} for name in HISTOGRAMS}
        self._hashed = {k.alias: k.hashed for k in catalog.keys}
        group_of = catalog.group_of()
        #: (provider, served model) -> deployment id, group, api_base, exception prefix
        self._deps: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        self._state: dict[Labels, float] = {}
        for d in catalog.deployments:
            provider = catalog.provider(d.provider)
            group = group_of.get(d.id, d.model)
            self._deps[(d.provider, d.model)] = (
                d.id,
                group,
                provider.api_base,
                provider.exception_prefix,
            )
            self._state[(provider.api_base, d.provider, d.model, d.id)] = 0.0
        self._failures: dict[str, deque[float]] = {}
        self._cooldown_until: dict[str, float] = {}
        self.allowed_fails = catalog.router.allowed_fails
        self.cooldown_time = catalog.router.cooldown_time

    def _inc(self, name: str, ctx: dict[str, str], value: float = 1.0) -> None:
        labels = tuple(ctx[n] for n in COUNTERS[name][1])
        series = self._counters[name]
        series[labels] = series.get(labels, 0.0) + value

    def _observe(self, name: str, ctx: dict[str, str], value: float) -> None:
        _, names, bounds = HISTOGRAMS[name]
        labels = tuple(ctx[n] for n in names)
        hist = self._histograms[name].get(labels)
        if hist is None:
            hist = self._histograms[name][labels] = _Histogram(len(bounds))
        hist.counts[bisect.bisect_left(bounds, value)] += 1
        hist.total += value

    def observe(self, rec: Record, *, final: bool, previous: Record | None) -> None:
        """Fold one record in. ``final``: it is the client's answer (last call of its trace);
        ``previous``: the failed call this fallback call replaces."""
        alias, status = rec["api_key"], rec["status"]
        ok = status < 400
        dep = self._deps.get((rec["provider"], rec["model"]))
        exc_class, exc_status = self._exception(rec, dep)
        team = rec.get("team") or NONE
        ctx = _CONSTANT | {
            "api_key_alias": alias,
            "hashed_api_key": self._hashed.get(alias, alias),
            "team": team,
            "team_alias": team,
            "exception_class": exc_class,
            "exception_status": exc_status,
        }
        if dep is not None or rec["error"] == "router_rate_limit":
            # A router-side rejection is counted against the group with empty deployment labels.
            dep_id, group, api_base, _ = dep or ("", rec["model"], "", "")
            provider, model = (rec["provider"], rec["model"]) if dep else ("", "")
            ctx |= {
                "api_base": api_base,
                "api_provider": provider,
                "litellm_model_name": model,
                "model": model,
                "model_group": group,
                "model_id": dep_id,
                "requested_model": group,
            }
            self._inc("litellm_deployment_total_requests", ctx)
            if ok:
                self._inc("litellm_deployment_success_responses", ctx)
                self._success(rec, ctx)
            else:
                self._inc("litellm_deployment_failure_responses", ctx)
            if dep is not None:
                self._deployment_health(rec, ctx, ok)
            if rec["fallback"] and previous is not None:
                prev = self._exception(
                    previous, self._deps.get((previous["provider"], previous["model"]))
                )
                name = f"litellm_deployment_{'successful' if ok else 'failed'}_fallbacks"
                self._inc(
                    name,
                    ctx
                    | {
                        "exception_class": prev[0],
                        "exception_status": prev[1],
                        "fallback_model": group,
                        "model_id": NONE,
                        "requested_model": rec["requested_model"],
                    },
                )
        if final:
            ctx |= {
                "api_provider": rec["provider"] if dep else NONE,
                "model_id": dep[0] if dep and ok else NONE,
                "requested_model": rec["requested_model"],
                "status_code": str(status),
            }
            self._inc("litellm_proxy_total_requests_metric", ctx)
            if not ok:
                self._inc("litellm_proxy_failed_requests_metric", ctx)

    def _exception(self, rec: Record, dep: tuple[str, str, str, str] | None) -> tuple[str, str]:
        status = rec["status"]
        if status < 400:
            return NONE, NONE
        if dep is None:
            exc = _GATEWAY_EXC.get(rec["error"] or "", "ProxyException")
            # LiteLLM reports no HTTP status for router-side rate limiting.
            return exc, NONE if exc == "RouterRateLimitError" else str(status)
        return exception_class(dep[3], status), str(status)

    def _success(self, rec: Record, ctx: dict[str, str]) -> None:
        latency = rec["latency_ms"] / 1000.0
        self._observe("litellm_request_total_latency_metric", ctx, latency)
        self._observe("litellm_llm_api_latency_metric", ctx, latency)
        if rec["ttft_ms"] is not None:
            self._observe("litellm_llm_api_time_to_first_token_metric", ctx, rec["ttft_ms"] / 1e3)
        if rec["output_tokens"] > 0:
            per_token = latency / rec["output_tokens"]
            self._observe("litellm_deployment_latency_per_output_token", ctx, per_token)
        self._inc("litellm_spend_metric", ctx, rec["cost_usd"])
        self._inc("litellm_input_tokens_metric", ctx, rec["input_tokens"])
        self._inc("litellm_output_tokens_metric", ctx, rec["output_tokens"])
        self._inc("litellm_total_tokens_metric", ctx, rec["input_tokens"] + rec["output_tokens"])

    def _deployment_health(self, rec: Record, ctx: dict[str, str], ok: bool) -> None:
        """LiteLLM's last-event-wins deployment state, and a cooldown once a deployment fails
        more than ``allowed_fails`` times in a minute (router settings)."""
        dep_id, ts = ctx["model_id"], rec["ts"]
        state_key = tuple(ctx[n] for n in STATE_LABELS)
        if ok:
            self._state[state_key] = 0.0
            return
        fails = self._failures.setdefault(dep_id, deque())
        fails.append(ts)
        while fails and fails[0] <= ts - 60.0:
            fails.popleft()
        if len(fails) > self.allowed_fails and ts >= self._cooldown_until.get(dep_id, 0.0):
            self._cooldown_until[dep_id] = ts + self.cooldown_time
            # In the real scrape the cooled-down series names the model group.
            self._inc(
                "litellm_deployment_cooled_down", ctx | {"litellm_model_name": ctx["model_group"]}
            )
            self._state[state_key] = 2.0
        else:
            self._state[state_key] = 1.0

    # -- exposition ---------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        for name, (doc, labels) in COUNTERS.items():
            counter = CounterMetricFamily(name, doc, labels=list(labels))
            for values, total in self._counters[name].items():
                counter.add_metric(list(values), total)
            yield counter
        for name, (doc, labels, bounds) in HISTOGRAMS.items():
            hist = HistogramMetricFamily(name, doc, labels=list(labels))
            for values, h in self._histograms[name].items():
                hist.add_metric(list(values), _cumulative(bounds, h.counts), h.total)
            yield hist
        state = GaugeMetricFamily(STATE, STATE_HELP, labels=list(STATE_LABELS))
        for values, value in self._state.items():
            state.add_metric(list(values), value)
        yield state

    def exposition(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return bytes(generate_latest(registry))


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    acc = 0
    for bound, count in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        acc += count
        out.append((bound, float(acc)))
    return out
