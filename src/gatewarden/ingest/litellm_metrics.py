"""LiteLLM's ``/metrics`` names and labels -> frame samples per aggregation level.

Checked against a real 1.106.2 scrape. What each level's columns come from:

=====================  ==========================================================================
provider, model,       ``requests`` = ``litellm_deployment_total_requests_total``; ``errors`` =
requested_model,       ``litellm_deployment_failure_responses_total`` with an HTTP status >= 500
global                 or 429 (what the provider did; ``requested_model`` is LiteLLM's
                       ``model_group``, the group the call was routed for); ``rejected`` (global
                       only) = the same counter's ``RouterRateLimitError`` (no deployment left);
                       ``ttft_p50/p95`` from ``litellm_llm_api_time_to_first_token_metric``
                       (streaming calls only) and ``latency_p95`` from
                       ``litellm_llm_api_latency_metric`` bucket increases (PromQL's
                       ``histogram_quantile``, in ms); ``cost``, ``input_tokens``,
                       ``output_tokens`` from ``litellm_spend_metric_total`` and
                       ``litellm_{input,output}_tokens_metric_total``.
team, api_key          client requests: ``litellm_proxy_total_requests_metric_total``;
                       ``litellm_proxy_failed_requests_metric_total`` split into ``errors``
                       (provider exceptions, named ``Provider.Class``) and ``rejected`` (the
                       proxy's own: auth, budget, rate limits); cost and tokens as above.
requested_model,       ``fallbacks`` = successful + failed ``litellm_deployment_*_fallbacks_total``
global, team, api_key  by the client's ``requested_model``.
provider,              ``cooldowns`` = ``litellm_deployment_cooled_down_total``: deployments the
requested_model,       router took out of rotation (``allowed_fails`` reached). The series names
global                 the model group in ``litellm_model_name`` (the router passes the
                       deployment's ``model_name``), so it counts for the group, not a model.
=====================  ==========================================================================

LiteLLM writes ``"None"`` or ``""`` for a missing label; such series are left out of the levels
that need the label. A key is named by its alias, else by LiteLLM's hash of it (never the key).
``litellm_deployment_state`` (0 healthy, 1 partial, 2 outage) passes through as a raw gauge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gatewarden.aggregate import LEVELS
from gatewarden.ingest.prom_parse import Scrape
from gatewarden.ingest.prom_rates import Deltas, histogram_quantile
from gatewarden.ingest.sample_frames import frame_sample
from gatewarden.models import Sample

Labels = Mapping[str, str]
#: prom labels -> scope value of one scope label (None = missing)
Getter = Callable[[Labels], str | None]

_MISSING = frozenset({"", "None"})


class MetricMap(Protocol):
    """How one gateway's exposition becomes frame samples."""

    def frame_samples(self, deltas: Deltas) -> list[Sample]: ...

    def gauges(self, scrape: Scrape) -> list[Sample]: ...


def label(name: str) -> Getter:
    def get(labels: Labels) -> str | None:
        value = labels.get(name)
        return None if value is None or value in _MISSING else value

    return get


def first(*getters: Getter) -> Getter:
    def get(labels: Labels) -> str | None:
        for getter in getters:
            value = getter(labels)
            if value is not None:
                return value
        return None

    return get


@dataclass(frozen=True)
class CounterRule:
    """Increases of ``series`` (filtered by ``where``) summed into ``metric`` of ``levels``."""

    series: str
    metric: str
    levels: tuple[str, ...]
    where: Callable[[Labels], bool] | None = None


@dataclass(frozen=True)
class HistogramRule:
    """Bucket increases of ``series`` -> quantiles (``{metric: q}``) times ``scale``."""

    series: str
    quantiles: Mapping[str, float]
    levels: tuple[str, ...]
    scale: float = 1000.0  # LiteLLM observes seconds; frames hold milliseconds


@dataclass(frozen=True)
class PromMap:
    """A metric map: scope getters per level label, counter and histogram rules, gauges."""

    scope: Mapping[str, Getter]
    counters: Sequence[CounterRule]
    histograms: Sequence[HistogramRule]
    gauge_names: frozenset[str] = frozenset()
    #: per-series overrides of ``scope`` (e.g. ``model`` is ``litellm_model_name`` on
    #: deployment series but ``model`` on latency series)
    scope_overrides: Mapping[str, Mapping[str, Getter]] | None = None

    def _scope(self, series: str, level: str, labels: Labels) -> dict[str, str] | None:
        overrides = (self.scope_overrides or {}).get(series, {})
        scope: dict[str, str] = {}
        for name in LEVELS[level]:
            value = overrides.get(name, self.scope[name])(labels)
            if value is None:
                if level == "api_key" and name == "team":
                    continue  # a key without a team is still a key
                return None
            scope[name] = value
        return scope

    def frame_samples(self, deltas: Deltas) -> list[Sample]:
        sums: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for rule in self.counters:
            for inc in deltas.of(rule.series):
                if rule.where is not None and not rule.where(inc.labels):
                    continue
                for level in rule.levels:
                    scope = self._scope(rule.series, level, inc.labels)
                    if scope is not None:
                        key = (level, rule.metric, tuple(sorted(scope.items())))
                        sums[key] = sums.get(key, 0.0) + inc.value
        self._zero_fill(sums)
        out = [frame_sample(lv, m, dict(sc), v, deltas.ts) for (lv, m, sc), v in sums.items()]
        if deltas.window > 0:
            rates = [(k, v / deltas.window) for k, v in sums.items() if k[1] == "requests"]
            out.extend(frame_sample(lv, "rps", dict(sc), v, deltas.ts) for (lv, _, sc), v in rates)
        for hist in self.histograms:
            out.extend(self._quantiles(hist, deltas))
        return out

    def _zero_fill(self, sums: dict[tuple[str, str, tuple[tuple[str, str], ...]], float]) -> None:
        """LiteLLM creates a failure or fallback series on its first increment, so a scope
        with requests and no such series had none: 0, not "unknown"."""
        served = [(level, scope) for level, metric, scope in sums if metric == "requests"]
        for rule in self.counters:
            if rule.metric == "requests":
                continue
            for level, scope in served:
                if level in rule.levels:
                    sums.setdefault((level, rule.metric, scope), 0.0)

    def _quantiles(self, rule: HistogramRule, deltas: Deltas) -> list[Sample]:
        buckets: dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]] = {}
        for inc in deltas.of(rule.series):
            try:
                bound = float(inc.labels.get("le", ""))
            except ValueError:
                continue
            for level in rule.levels:
                scope = self._scope(rule.series, level, inc.labels)
                if scope is not None:
                    cell = buckets.setdefault((level, tuple(sorted(scope.items()))), {})
                    cell[bound] = cell.get(bound, 0.0) + inc.value
        out: list[Sample] = []
        for (level, items), cell in buckets.items():
            if cell.get(float("inf"), 0.0) <= 0:
                continue  # no observation this interval: no percentile (not a zero)
            for metric, q in rule.quantiles.items():
                value = histogram_quantile(q, list(cell.items())) * rule.scale
                out.append(frame_sample(level, metric, dict(items), value, deltas.ts))
        return out

    def gauges(self, scrape: Scrape) -> list[Sample]:
        return [s for s in scrape.samples if s.name in self.gauge_names]


def _status(labels: Labels) -> int | None:
    try:
        return int(labels.get("exception_status", ""))
    except ValueError:
        return None


def provider_error(labels: Labels) -> bool:
    """A failure the provider answered with 5xx or 429 (not the router's own refusal)."""
    if labels.get("exception_class") == "RouterRateLimitError":
        return False
    status = _status(labels)
    return status is not None and (status >= 500 or status == 429)


def router_rejection(labels: Labels) -> bool:
    return labels.get("exception_class") == "RouterRateLimitError"


def provider_exception(labels: Labels) -> bool:
    """LiteLLM names provider exceptions ``Provider.Class`` (``Openai.RateLimitError``) and
    its own bare (``RouterRateLimitError``, ``ProxyException``, ``BudgetExceededError``)."""
    return "." in labels.get("exception_class", "") and provider_error(labels)


def proxy_rejection(labels: Labels) -> bool:
    return not provider_exception(labels)


_DEPLOYMENT = ("global", "provider", "model", "requested_model")
_CLIENT = ("team", "api_key")
_FALLBACK = ("global", "requested_model", "team", "api_key")
_SPEND = (*_DEPLOYMENT, *_CLIENT)
_COOLDOWN = ("global", "provider", "requested_model")
_DEP_MODEL = {"model": label("litellm_model_name"), "requested_model": label("model_group")}
_LAT_GROUP = {"requested_model": label("model_group")}
_COOLED_GROUP = {"requested_model": label("litellm_model_name")}

LITELLM = PromMap(
    scope={
        "provider": label("api_provider"),
        "model": label("model"),
        "requested_model": label("requested_model"),
        "team": first(label("team_alias"), label("team")),
        "api_key": first(label("api_key_alias"), label("hashed_api_key")),
        "workflow": lambda labels: None,
    },
    scope_overrides={
        "litellm_deployment_total_requests_total": _DEP_MODEL,
        "litellm_deployment_failure_responses_total": _DEP_MODEL,
        "litellm_llm_api_time_to_first_token_metric_bucket": _LAT_GROUP,
        "litellm_llm_api_latency_metric_bucket": _LAT_GROUP,
        "litellm_deployment_cooled_down_total": _COOLED_GROUP,
    },
    counters=(
        CounterRule("litellm_deployment_total_requests_total", "requests", _DEPLOYMENT),
        CounterRule(
            "litellm_deployment_failure_responses_total", "errors", _DEPLOYMENT, provider_error
        ),
        CounterRule(
            "litellm_deployment_failure_responses_total", "rejected", ("global",), router_rejection
        ),
        CounterRule("litellm_proxy_total_requests_metric_total", "requests", _CLIENT),
        CounterRule(
            "litellm_proxy_failed_requests_metric_total", "errors", _CLIENT, provider_exception
        ),
        CounterRule(
            "litellm_proxy_failed_requests_metric_total", "rejected", _CLIENT, proxy_rejection
        ),
        CounterRule("litellm_deployment_successful_fallbacks_total", "fallbacks", _FALLBACK),
        CounterRule("litellm_deployment_failed_fallbacks_total", "fallbacks", _FALLBACK),
        CounterRule("litellm_deployment_cooled_down_total", "cooldowns", _COOLDOWN),
        CounterRule("litellm_spend_metric_total", "cost", _SPEND),
        CounterRule("litellm_input_tokens_metric_total", "input_tokens", _SPEND),
        CounterRule("litellm_output_tokens_metric_total", "output_tokens", _SPEND),
    ),
    histograms=(
        HistogramRule(
            "litellm_llm_api_time_to_first_token_metric_bucket",
            {"ttft_p50": 0.5, "ttft_p95": 0.95},
            _SPEND,
        ),
        HistogramRule("litellm_llm_api_latency_metric_bucket", {"latency_p95": 0.95}, _SPEND),
    ),
    gauge_names=frozenset({"litellm_deployment_state"}),
)
