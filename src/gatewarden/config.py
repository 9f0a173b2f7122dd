"""The daemon config (one YAML file), validated by pydantic; secrets come from env or files.

Relative paths in the file are resolved against the file's own directory, like Prometheus'
``rule_files``, so a config works whatever the working directory of the daemon.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gatewarden.correlate.config import CorrelateConfig
from gatewarden.errors import ConfigError
from gatewarden.gateways.config import HttpActionSettings, LiteLLMConfigFileSettings, SecretSource
from gatewarden.ingest.promql import PromQLQuery
from gatewarden.notify.config import NotifyConfig
from gatewarden.yamlconfig import load_model

#: Where a secret lives: an environment variable or a file (e.g. a mounted k8s secret).
SecretRef = SecretSource


class _Section(BaseModel):
    # inf/NaN are never meaningful settings (tick_seconds: .inf would never tick).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class HttpRequestLogSourceConfig(_Section):
    type: Literal["http_request_log"]
    name: str = "request_log"
    url: str = Field(description="base URL serving GET <path>?since=&until= as JSON Lines")
    path: str = "/gatewarden/requests"
    timeout_s: float = Field(default=5.0, gt=0)


class PrometheusSourceConfig(_Section):
    """A gateway's /metrics; LiteLLM's counters and histograms become per-tick frame values."""

    type: Literal["prometheus"]
    name: str = "metrics"
    url: str = Field(description="full URL of the gateway's /metrics")
    timeout_s: float = Field(default=10.0, gt=0)
    bearer_token: SecretRef | None = None
    raw: bool = Field(default=False, description="raw samples only, no LiteLLM mapping")


class OtlpSourceConfig(_Section):
    """An OTLP/HTTP trace receiver (POST /v1/traces) mapping GenAI spans to request records."""

    type: Literal["otlp"]
    name: str = "otlp"
    host: str = "127.0.0.1"
    port: int = Field(default=4318, ge=0, le=65535)
    max_buffer: int = Field(default=200_000, ge=1)
    max_body_mb: float = Field(default=16, gt=0)


class LiteLLMSpendLogSourceConfig(_Section):
    """LiteLLM's spend logs (/spend/logs/v2; the proxy needs its database)."""

    type: Literal["litellm_spend_logs"]
    name: str = "litellm_spend"
    url: str
    master_key: SecretRef = SecretRef(env="GATEWARDEN_GATEWAY_MASTER_KEY")
    path: str = "/spend/logs/v2"
    lookback_s: float = Field(default=120, ge=0)
    timeout_s: float = Field(default=10, gt=0)


class PromQLSourceConfig(_Section):
    """Prometheus' HTTP API, for gateways that are already scraped."""

    type: Literal["promql"]
    name: str = "promql"
    url: str
    step_s: float = Field(default=15, gt=0)
    lookback_s: float = Field(default=300, gt=0)
    bearer_token: SecretRef | None = None
    timeout_s: float = Field(default=10, gt=0)
    queries: list[PromQLQuery] = Field(min_length=1)


class JsonlSourceConfig(_Section):
    type: Literal["jsonl"]
    name: str = "jsonl"
    path: Path


SourceConfig = Annotated[
    HttpRequestLogSourceConfig
    | PrometheusSourceConfig
    | JsonlSourceConfig
    | OtlpSourceConfig
    | LiteLLMSpendLogSourceConfig
    | PromQLSourceConfig,
    Field(discriminator="type"),
]


class GatewayConfig(_Section):
    """``litellm``: the proxy's admin API (needs its database). ``litellm_config``: a proxy
    without a database, changed by rewriting its config file and reloading it."""

    type: Literal["litellm", "litellm_config"] = "litellm"
    base_url: str = "http://127.0.0.1:4000"
    master_key: SecretRef = SecretRef(env="GATEWARDEN_GATEWAY_MASTER_KEY")
    timeout_s: float = Field(default=5.0, gt=0)
    config_file: LiteLLMConfigFileSettings | None = None
    http: HttpActionSettings = HttpActionSettings()

    @model_validator(mode="after")
    def _config_file_when_needed(self) -> GatewayConfig:
        if self.type == "litellm_config" and self.config_file is None:
            raise ValueError("type litellm_config needs config_file {path, reload_command, ...}")
        return self


class StoreConfig(_Section):
    """``sqlite`` (embedded default, one daemon) or ``postgres`` (HA: several daemons)."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Path = Path("var/gatewarden.db")
    dsn: str | None = Field(
        default=None,
        description="postgresql://user@host:5432/db or 'host=... dbname=... user=...'; the "
        "password comes from PGPASSWORD or ~/.pgpass, never from this file",
    )
    pg_schema: str = Field(default="gatewarden", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> StoreConfig:
        if self.backend == "postgres":
            if not self.dsn:
                raise ValueError("backend postgres needs dsn: postgresql://user@host:port/db")
            if "://" in self.dsn:
                userinfo = self.dsn.split("://", 1)[1].split("/", 1)[0].split("@", 1)
                has_password = len(userinfo) == 2 and ":" in userinfo[0]
            else:
                has_password = "password" in self.dsn.lower()
            if has_password:
                raise ValueError("no password in dsn: use PGPASSWORD or ~/.pgpass")
        return self


class HAConfig(_Section):
    """Several daemons on one PostgreSQL store: one leads (lease + fencing token), the others
    keep detecting and take over within two ticks when the leader stops renewing."""

    enabled: bool = False
    lease: str = "gatewarden.leader"
    holder: str | None = Field(default=None, description="unique per replica; hostname:pid")
    ttl_s: float | None = Field(default=None, gt=0, description="default 1.5 x tick_seconds")
    margin_s: float | None = Field(
        default=None, ge=0, description="refuse to act this close to lease expiry"
    )


class RemediateConfig(_Section):
    kill_switch: bool = Field(default=False, description="true = never touch the gateway")
    max_actions_per_hour: int = Field(default=20, ge=0)
    max_keys_blocked: int = Field(default=5, ge=0)
    demo_auto_approve: bool = Field(
        default=False, description="grant every approval automatically (demo only; labelled)"
    )
    approver_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="group:NAME in playbook approvers -> approver ids"
    )


class WebConfig(_Section):
    """The daemon's HTTP surface: /healthz, /readyz, /metrics open; the rest needs the token."""

    enabled: bool = True
    host: str = Field(default="127.0.0.1", description="bind address; loopback by default")
    port: int = Field(default=9464, ge=0, le=65535)
    token: SecretRef | None = Field(
        default=None, description="bearer token for console/admin endpoints (env or file)"
    )


#: Shorter console tokens are refused: a token is all that stands between a browser and a
#: decision that changes the gateway's routing.
MIN_CONSOLE_TOKEN = 16


class ConsoleConfig(_Section):
    """Who may decide in the incident console: each person has their own token.

    A decision is recorded as the user whose token made it, checked against the step's
    approvers with the same rule as Slack; ``web.token`` opens the console view-only.
    """

    users: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="approver id (as playbooks name it, e.g. a Slack user id) -> where that "
        "person's console token lives (env or file)",
    )

    @field_validator("users")
    @classmethod
    def _ids(cls, users: dict[str, SecretRef]) -> dict[str, SecretRef]:
        for user in users:
            if not user or len(user) > 128 or any(c.isspace() for c in user):
                raise ValueError(f"console user id {user!r}: 1-128 characters, no spaces")
        return users

    def resolved(self, base: Path) -> ConsoleConfig:
        users = {user: ref.resolved(base) for user, ref in self.users.items()}
        return self.model_copy(update={"users": users})

    def tokens(self, env: Mapping[str, str], *, shared: str | None) -> dict[str, str]:
        """user id -> token; ConfigError names the users concerned, never a token."""
        out = {u: ref.resolve(env, f"console.users.{u}").strip() for u, ref in self.users.items()}
        problems = [
            f"console.users.{u}: token shorter than {MIN_CONSOLE_TOKEN} characters"
            for u, t in out.items()
            if len(t) < MIN_CONSOLE_TOKEN
        ]
        problems += [
            f"console.users.{u}: same token as web.token (which only views)"
            for u, t in out.items()
            if shared is not None and t == shared
        ]
        holders: dict[str, list[str]] = {}
        for user, token in out.items():
            holders.setdefault(token, []).append(user)
        problems += [
            f"console.users: {', '.join(sorted(users))} share one token"
            for users in holders.values()
            if len(users) > 1
        ]
        if problems:
            raise ConfigError(problems)
        return out


class ClockConfig(_Section):
    """``system`` in production. ``scaled`` runs simulated time (demos, drills, crash tests):
    simulated ``start`` at wall-clock ``origin``, ``speed`` times faster from there."""

    type: Literal["system", "scaled"] = "system"
    start: float = 0.0
    origin: float = 0.0
    speed: float = Field(default=1.0, gt=0)


class DaemonConfig(_Section):
    tick_seconds: float = Field(default=15.0, gt=0)
    clock: ClockConfig = ClockConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sources: list[SourceConfig] = Field(default_factory=list)
    gateway: GatewayConfig = GatewayConfig()
    store: StoreConfig = StoreConfig()
    detectors_dir: Path = Path("detectors")
    playbooks_dir: Path = Path("playbooks")
    reports_dir: Path = Path("var/reports")
    correlate: CorrelateConfig = CorrelateConfig()
    remediate: RemediateConfig = RemediateConfig()
    notify: NotifyConfig = NotifyConfig()
    web: WebConfig = WebConfig()
    console: ConsoleConfig = ConsoleConfig()
    ha: HAConfig = HAConfig()

    @model_validator(mode="after")
    def _ha_needs_postgres(self) -> DaemonConfig:
        if self.ha.enabled:
            if self.store.backend != "postgres":
                raise ValueError("ha.enabled needs store.backend: postgres (a shared store)")
            ttl = self.ha.ttl_s
            if ttl is not None and not self.tick_seconds < ttl < 2 * self.tick_seconds:
                raise ValueError("ha.ttl_s must lie between one and two tick_seconds")
        return self

    def console_tokens(self, env: Mapping[str, str]) -> dict[str, str]:
        """``console.users`` resolved (user id -> token), checked against ``web.token``."""
        shared = self.web.token.resolve(env, "web.token") if self.web.token else None
        return self.console.tokens(env, shared=shared)

    def resolved(self, base: Path) -> DaemonConfig:
        """Copy with every relative path made relative to ``base``."""

        def fix(p: Path) -> Path:
            return p if p.is_absolute() else (base / p)

        sources = [
            s.model_copy(update={"path": fix(s.path)}) if isinstance(s, JsonlSourceConfig) else s
            for s in self.sources
        ]
        gateway = self.gateway.model_copy(
            update={
                "master_key": self.gateway.master_key.resolved(base),
                "http": self.gateway.http.resolved(base),
                "config_file": self.gateway.config_file.resolved(base)
                if self.gateway.config_file
                else None,
            }
        )
        notify = self.notify
        slack = notify.slack
        if slack is not None and slack.signing_secret_file is not None:
            secret_file = fix(slack.signing_secret_file)
            notify = notify.model_copy(
                update={"slack": slack.model_copy(update={"signing_secret_file": secret_file})}
            )
        web = self.web
        if web.token is not None:
            web = web.model_copy(update={"token": web.token.resolved(base)})
        return self.model_copy(
            update={
                "sources": sources,
                "store": self.store.model_copy(update={"path": fix(self.store.path)}),
                "detectors_dir": fix(self.detectors_dir),
                "playbooks_dir": fix(self.playbooks_dir),
                "reports_dir": fix(self.reports_dir),
                "gateway": gateway,
                "web": web,
                "console": self.console.resolved(base),
                "notify": notify,
            }
        )


def load_config(path: Path) -> DaemonConfig:
    """Read and validate the daemon config; ConfigError lists every problem with its line."""
    return load_model(path, DaemonConfig).resolved(path.parent.resolve())


def config_json_schema() -> str:
    return json.dumps(DaemonConfig.model_json_schema(), indent=2)


def environ() -> Mapping[str, str]:
    return os.environ
