"""gatewarden's own Prometheus metrics, rendered from a status snapshot at scrape time.

A custom collector (rather than module-level gauges updated from every stage) keeps the
stages free of metrics plumbing and makes every scrape consistent with one snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

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


class _StatusCollector(Collector):
    def __init__(self, provider: StatusProvider) -> None:
        self._provider = provider

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._provider()
        for name, family, help_text, value in _SCALARS:
            yield family(name, help_text, value=value(s))
        lag = GaugeMetricFamily(
            "gatewarden_source_lag_seconds", "Seconds since the last good pull", labels=["source"]
        )
        failures = CounterMetricFamily(
            "gatewarden_source_failures", "Failed pulls per source", labels=["source"]
        )
        up = GaugeMetricFamily(
            "gatewarden_source_up", "1 if the last pull worked", labels=["source"]
        )
        for source in s.sources:
            source_lag = source.lag(s.now)
            lag.add_metric([source.name], -1.0 if source_lag is None else source_lag)
            failures.add_metric([source.name], source.failures)
            up.add_metric([source.name], 0.0 if source.consecutive_failures else 1.0)
        yield from (lag, failures, up)


def render_metrics(provider: StatusProvider) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(provider))
    return generate_latest(registry)
