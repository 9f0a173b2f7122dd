"""Gateway adapter settings: allow-listed secrets, building the router, config-file paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gatewarden.errors import ConfigError
from gatewarden.gateways.config import (
    HttpActionSettings,
    LiteLLMConfigFileSettings,
    SecretSource,
    build_gateway,
)
from gatewarden.gateways.http_action import HttpActionGateway
from gatewarden.gateways.litellm_config import LiteLLMConfigFile
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.gateways.router import GatewayRouter


def test_secrets_come_from_their_env_var_or_file_only(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    assert SecretSource(env="KONG").resolve({"KONG": "from-env"}, "x") == "from-env"
    assert SecretSource(file=tmp_path / "token").resolve({}, "x") == "from-file"
    with pytest.raises(ConfigError, match="expected env var KONG"):
        SecretSource(env="KONG").resolve({"OTHER": "v"}, "gateway.http.secrets.kong")
    with pytest.raises(ConfigError, match="cannot read secret file"):
        SecretSource(file=tmp_path / "missing").resolve({}, "x")
    with pytest.raises(ValidationError, match="exactly one of env, file"):
        SecretSource(env="A", file=tmp_path / "token")


def test_http_adapter_is_only_routed_when_hosts_are_allowed() -> None:
    primary = InMemoryGateway()
    assert build_gateway(primary, HttpActionSettings(), {}) is primary
    assert build_gateway(primary, None, {}) is primary
    settings = HttpActionSettings.model_validate(
        {"allowed_hosts": ["kong:8001"], "secrets": {"kong_token": {"env": "KONG"}}}
    )
    routed = build_gateway(primary, settings, {"KONG": "t0ken"})
    assert isinstance(routed, GatewayRouter)
    assert routed.adapter_for("block_key") is primary
    http = routed.adapter_for("http")
    assert isinstance(http, HttpActionGateway) and http.allowed_hosts == {"kong:8001"}
    assert "t0ken" not in repr(routed) and "t0ken" not in repr(http)
    with pytest.raises(ConfigError):
        build_gateway(primary, settings, {})


def test_config_file_settings_resolve_relative_paths(tmp_path: Path) -> None:
    settings = LiteLLMConfigFileSettings(
        path=Path("litellm.yaml"),
        reload_command=["systemctl", "restart", "litellm"],
        health_url="http://127.0.0.1:4000",
    ).resolved(tmp_path)
    assert settings.path == tmp_path / "litellm.yaml"
    adapter = settings.build()
    assert isinstance(adapter, LiteLLMConfigFile) and adapter.path == tmp_path / "litellm.yaml"
    with pytest.raises(ValidationError):
        LiteLLMConfigFileSettings(path=Path("x"), reload_command=[], health_url="http://h")
