"""User-edited settings of the gateway adapters, and building the GatewayAdmin from them.

The daemon config nests these under ``gateway`` (see the README)::

    gateway:
      type: litellm_config          # litellm (admin API, default) | litellm_config (file)
      config_file:
        path: /etc/litellm/config.yaml
        reload_command: [systemctl, restart, litellm]
        health_url: http://127.0.0.1:4000
      http:
        allowed_hosts: [kong-admin.internal:8001]
        secrets:
          kong_token: {env: KONG_ADMIN_TOKEN}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatewarden.errors import ConfigError
from gatewarden.gateways.http_action import HttpActionGateway
from gatewarden.gateways.litellm_config import LiteLLMConfigFile
from gatewarden.gateways.router import with_http
from gatewarden.protocols import GatewayAdmin


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class SecretSource(_Section):
    """Where one allow-listed secret comes from: an environment variable or a file."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env, file")
        return self

    def resolved(self, base: Path) -> SecretSource:
        if self.file is None or self.file.is_absolute():
            return self
        return self.model_copy(update={"file": base / self.file})

    def resolve(self, env: Mapping[str, str], what: str) -> str:
        if self.file is not None:
            try:
                return self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError([f"{what}: cannot read secret file {self.file}: {exc}"]) from exc
        value = env.get(self.env or "")
        if not value:
            raise ConfigError([f"{what}: secret not set (expected env var {self.env})"])
        return value


class HttpActionSettings(_Section):
    """The generic ``http`` action. Nothing is allowed until hosts are listed."""

    allowed_hosts: list[str] = Field(
        default_factory=list, description="host or host:port an http action may call"
    )
    secrets: dict[str, SecretSource] = Field(
        default_factory=dict, description="name -> source; playbooks use {{ secrets.name }}"
    )
    timeout_s: float = Field(default=5.0, gt=0)

    def resolved(self, base: Path) -> HttpActionSettings:
        secrets = {name: source.resolved(base) for name, source in self.secrets.items()}
        return self.model_copy(update={"secrets": secrets})

    def build(self, env: Mapping[str, str]) -> HttpActionGateway | None:
        if not self.allowed_hosts:
            return None
        secrets = {
            name: source.resolve(env, f"gateway.http.secrets.{name}")
            for name, source in self.secrets.items()
        }
        return HttpActionGateway(
            secrets=secrets, allowed_hosts=self.allowed_hosts, timeout=self.timeout_s
        )


class LiteLLMConfigFileSettings(_Section):
    """A LiteLLM proxy without a database, changed through its YAML config."""

    path: Path = Field(description="the proxy's config.yaml (relative: to the daemon config)")
    reload_command: list[str] = Field(
        min_length=1, description="argv run after each rewrite, e.g. [systemctl, restart, litellm]"
    )
    health_url: str = Field(description="proxy base URL serving /health/liveliness, readiness")
    reload_timeout_s: float = Field(default=120.0, gt=0)
    health_attempts: int = Field(default=30, ge=1)
    health_interval_s: float = Field(default=2.0, ge=0)
    settle_s: float = Field(default=0.0, ge=0, description="wait before the first health check")

    def resolved(self, base: Path) -> LiteLLMConfigFileSettings:
        path = self.path if self.path.is_absolute() else base / self.path
        return self.model_copy(update={"path": path})

    def build(self) -> LiteLLMConfigFile:
        return LiteLLMConfigFile(
            self.path,
            reload_command=self.reload_command,
            health_url=self.health_url,
            reload_timeout_s=self.reload_timeout_s,
            health_attempts=self.health_attempts,
            health_interval_s=self.health_interval_s,
            settle_s=self.settle_s,
        )


def build_gateway(
    primary: GatewayAdmin, http: HttpActionSettings | None, env: Mapping[str, str]
) -> GatewayAdmin:
    """``primary`` (LiteLLMAdmin or LiteLLMConfigFile), with ``http`` actions routed to the HTTP
    adapter when hosts are configured."""
    return with_http(primary, http.build(env) if http is not None else None)


__all__ = [
    "HttpActionSettings",
    "LiteLLMConfigFileSettings",
    "SecretSource",
    "build_gateway",
]
