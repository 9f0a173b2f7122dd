"""Builders of the daemon's outside-facing parts from its config: sources, the gateway
adapter, the store and the HA elector. Kept apart from :mod:`gatewarden.daemon` so commands
that only need a store or a gateway (``report``, ``undo``, ``silence``) do not import the
scheduler and every stage."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping

from gatewarden.config import (
    DaemonConfig,
    HttpRequestLogSourceConfig,
    JsonlSourceConfig,
    LiteLLMSpendLogSourceConfig,
    OtlpSourceConfig,
    PrometheusSourceConfig,
    PromQLSourceConfig,
    SecretRef,
)
from gatewarden.gateways import LiteLLMAdmin
from gatewarden.gateways.config import build_gateway as compose_gateway
from gatewarden.ha.leader import LeaderElector, ttl_for
from gatewarden.ingest import HttpRequestLogSource, JsonlTailSource, PrometheusScrapeSource
from gatewarden.ingest.litellm_metrics import LITELLM
from gatewarden.ingest.litellm_spend import LiteLLMSpendLogSource
from gatewarden.ingest.otlp_server import OtlpReceiver
from gatewarden.ingest.promql import PromQLSource
from gatewarden.protocols import Clock, GatewayAdmin, Source, Store
from gatewarden.store import SQLiteStore

__all__ = ["build_elector", "build_gateway", "build_sources", "open_store"]

log = logging.getLogger(__name__)


def _bearer(token: SecretRef | None, env: Mapping[str, str], what: str) -> dict[str, str] | None:
    return {"Authorization": f"Bearer {token.resolve(env, what)}"} if token else None


def build_sources(
    config: DaemonConfig,
    *,
    since: float,
    env: Mapping[str, str],
    clock: Clock,
    closers: list[Callable[[], None]],
) -> list[Source]:
    sources: list[Source] = []
    for sc in config.sources:
        if isinstance(sc, HttpRequestLogSourceConfig):
            sources.append(
                HttpRequestLogSource(
                    sc.url, path=sc.path, since=since, timeout=sc.timeout_s, name=sc.name
                )
            )
        elif isinstance(sc, PrometheusSourceConfig):
            sources.append(
                PrometheusScrapeSource(
                    sc.url,
                    timeout=sc.timeout_s,
                    name=sc.name,
                    metric_map=None if sc.raw else LITELLM,
                    headers=_bearer(sc.bearer_token, env, f"sources.{sc.name}.bearer_token"),
                )
            )
        elif isinstance(sc, JsonlSourceConfig):
            sources.append(JsonlTailSource(sc.path, name=sc.name))
        elif isinstance(sc, OtlpSourceConfig):
            receiver = OtlpReceiver(
                name=sc.name,
                max_buffer=sc.max_buffer,
                max_body=int(sc.max_body_mb * 2**20),
                clock=clock,
            )
            log.info("OTLP receiver on %s/v1/traces", receiver.serve(sc.host, sc.port))
            closers.append(receiver.close)
            sources.append(receiver)
        elif isinstance(sc, LiteLLMSpendLogSourceConfig):
            key = sc.master_key.resolve(env, f"sources.{sc.name}.master_key")
            sources.append(
                LiteLLMSpendLogSource(
                    sc.url,
                    key,
                    path=sc.path,
                    since=since,
                    lookback_s=sc.lookback_s,
                    timeout=sc.timeout_s,
                    name=sc.name,
                )
            )
        elif isinstance(sc, PromQLSourceConfig):
            sources.append(
                PromQLSource(
                    sc.url,
                    sc.queries,
                    step=sc.step_s,
                    lookback=sc.lookback_s,
                    since=since,
                    headers=_bearer(sc.bearer_token, env, f"sources.{sc.name}.bearer_token"),
                    timeout=sc.timeout_s,
                    name=sc.name,
                )
            )
    return sources


def build_gateway(config: DaemonConfig, env: Mapping[str, str]) -> GatewayAdmin:
    g = config.gateway
    primary: GatewayAdmin
    if g.type == "litellm_config" and g.config_file is not None:
        primary = g.config_file.build()
    else:
        key = g.master_key.resolve(env, "gateway.master_key")
        primary = LiteLLMAdmin(g.base_url, key, timeout=g.timeout_s)
    # Generic http actions go to their own adapter when hosts are allow-listed.
    return compose_gateway(primary, g.http, env)


def open_store(config: DaemonConfig, *, application_name: str = "gatewarden") -> Store:
    if config.store.backend == "postgres" and config.store.dsn:
        from gatewarden.store.postgres import PostgresStore  # optional dependency

        return PostgresStore(
            config.store.dsn, schema=config.store.pg_schema, application_name=application_name
        )
    return SQLiteStore(config.store.path)


def build_elector(config: DaemonConfig, store: Store, clock: Clock) -> LeaderElector:
    ha = config.ha
    holder = ha.holder or f"{socket.gethostname()}:{os.getpid()}"
    ttl = ha.ttl_s or ttl_for(config.tick_seconds)
    # Refuse to act when the lease would lapse before a gateway call could finish.
    margin = ha.margin_s if ha.margin_s is not None else min(config.gateway.timeout_s, ttl / 2)
    return LeaderElector(store, ha.lease, holder, ttl, clock, margin_s=margin)
