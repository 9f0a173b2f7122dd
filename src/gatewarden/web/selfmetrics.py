"""gatewarden's own Prometheus metrics, rendered from a status snapshot at scrape time.

A custom collector (rather than module-level gauges updated from every stage) keeps the
stages free of metrics plumbing and makes every scrape consistent with one snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gatewarden.ingest.health import SourceHealth
from gatewarden.web.status import StatusProvider, StatusSnapshot

Family = type[CounterMetricFamily] | type[GaugeMetricFamily]

#: (metric name, kind, help, value of the snapshot)
_SCALARS: tuple[tuple[str, Family, str, Callable[[StatusSnapshot], float]], ...] = (
    ("gatewarden_ticks", CounterMetricFamily, "Pipeline ticks completed", lambda s: s.ticks),
    (
        "gatewarden_tick_duration_seconds",
        GaugeMetricFamily,
        "Duration of the last tick",
        lambda s: s.last_tick_duration_s,
    ),
    (
        "gatewarden_tick_overruns",
        CounterMetricFamily,
        "Ticks that overran their interval",
        lambda s: s.overruns,
    ),
    (
        "gatewarden_records_ingested",
        CounterMetricFamily,
        "Request records ingested",
        lambda s: s.records,
    ),
    (
        "gatewarden_malformed_input",
        CounterMetricFamily,
        "Malformed input units counted",
        lambda s: s.malformed,
    ),
    (
        "gatewarden_detector_series",
        GaugeMetricFamily,
        "Series tracked by detectors",
        lambda s: s.detector_series,
    ),
    (
        "gatewarden_open_incidents",
        GaugeMetricFamily,
        "Incidents currently open",
        lambda s: s.open_incidents,
    ),
    (
        "gatewarden_outbox_depth",
        GaugeMetricFamily,
        "Notifications queued, not delivered",
        lambda s: s.outbox_depth,
    ),
    (
        "gatewarden_action_failures",
        CounterMetricFamily,
        "Gateway actions that failed",
        lambda s: s.action_failures,
    ),
    (
        "gatewarden_store_up",
        GaugeMetricFamily,
        "1 if the store answers",
        lambda s: float(s.store_ok),
    ),
    ("gatewarden_leader", GaugeMetricFamily, "1 if this replica leads", lambda s: float(s.leader)),
)


def _detail(key: str) -> Callable[[SourceHealth, float], float | None]:
    """A figure the source reports itself (absent for sources that do not have it)."""

    def value(health: SourceHealth, now: float) -> float | None:
        figure = health.details.get(key)
        return float(figure) if isinstance(figure, int | float) else None

    return value


#: per-source families: (metric name, kind, help, value; None leaves the source out)
_SOURCE: tuple[tuple[str, Family, str, Callable[[SourceHealth, float], float | None]], ...] = (
    (
        "gatewarden_source_up",
        GaugeMetricFamily,
        "1 if the source's last pull worked (0 before its first pull)",
        lambda h, now: float(h.up),
    ),
    (
        "gatewarden_source_last_success_timestamp_seconds",
        GaugeMetricFamily,
        "When the source was last pulled successfully (absent if never)",
        lambda h, now: h.last_success,
    ),
    (
        "gatewarden_source_lag_seconds",
        GaugeMetricFamily,
        "Seconds since the last good pull (absent if never)",
        lambda h, now: h.lag(now),
    ),
    (
        "gatewarden_source_consecutive_failures",
        GaugeMetricFamily,
        "Failed pulls in a row (3 raise gateway_unreachable)",
        lambda h, now: h.consecutive_failures,
    ),
    (
        "gatewarden_source_failures",
        CounterMetricFamily,
        "Failed pulls per source",
        lambda h, now: h.failures,
    ),
    (
        "gatewarden_source_unexpected_errors",
        CounterMetricFamily,
        "Pulls that raised an unexpected exception (a source bug or unforeseen input)",
        lambda h, now: h.unexpected,
    ),
    ("gatewarden_source_pulls", CounterMetricFamily, "Pulls per source", lambda h, now: h.pulls),
    (
        "gatewarden_source_malformed_input",
        CounterMetricFamily,
        "Malformed input units per source (bad lines, payloads, scrape lines)",
        lambda h, now: h.malformed,
    ),
    (
        "gatewarden_source_records",
        CounterMetricFamily,
        "Request records per source",
        lambda h, now: h.records,
    ),
    (
        "gatewarden_source_stale_scrapes",
        CounterMetricFamily,
        "Scrapes that repeated the previous page or went back in time",
        _detail("stale_scrapes"),
    ),
    (
        "gatewarden_source_counter_resets",
        CounterMetricFamily,
        "Counter resets seen in scrapes (the gateway restarted)",
        _detail("counter_resets"),
    ),
    (
        "gatewarden_source_rejected_payloads",
        CounterMetricFamily,
        "Pushed payloads that could not be decoded",
        _detail("rejected"),
    ),
    (
        "gatewarden_source_dropped_records",
        CounterMetricFamily,
        "Records dropped because the receive buffer was full",
        _detail("dropped"),
    ),
    (
        "gatewarden_source_rotations",
        CounterMetricFamily,
        "Log file rotations followed",
        _detail("rotations"),
    ),
)


class _StatusCollector(Collector):
    def __init__(self, provider: StatusProvider) -> None:
        self._provider = provider

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._provider()
        for name, family, help_text, value in _SCALARS:
            yield family(name, help_text, value=value(s))
        for name, family, help_text, per_source in _SOURCE:
            metric = family(name, help_text, labels=["source"])
            for source in s.sources:
                figure = per_source(source, s.now)
                if figure is not None:
                    metric.add_metric([source.name], figure)
            yield metric


def render_metrics(provider: StatusProvider) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(provider))
    return generate_latest(registry)
