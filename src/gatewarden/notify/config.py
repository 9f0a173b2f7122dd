"""Notifier configuration and the factories that build notifiers and the Slack endpoint from it.

Config files name where secrets live (an environment variable, or a file such as a mounted
Kubernetes secret), never the secrets themselves, so a config can be committed and shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field
from slack_sdk import WebClient

from gatewarden.errors import ConfigError
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.slack import (
    DEFAULT_BASE_URL,
    ApproverDirectory,
    RenderOptions,
    ReplayGuard,
    RequestVerifier,
    RouteRule,
    SlackInteractions,
    SlackNotifier,
)
from gatewarden.protocols import Clock, Notifier, Store


class SlackConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token_env: str = Field(
        default="GATEWARDEN_SLACK_TOKEN", min_length=1, description="env var with the bot token"
    )
    channel: str = Field(min_length=1, description="default channel: id (preferred) or #name")
    base_url: str = DEFAULT_BASE_URL
    routes: list[RouteRule] = Field(
        default_factory=list,
        description="ordered rules: the first whose match/min_severity/kinds fit picks the channel",
    )
    interactive: bool = Field(
        default=True,
        description="serve POST /slack/interactions and show Approve/Deny/Snooze buttons",
    )
    signing_secret_env: str = Field(
        default="GATEWARDEN_SLACK_SIGNING_SECRET",
        min_length=1,
        description="env var with the app's signing secret (read when no file is given)",
    )
    signing_secret_file: Path | None = Field(
        default=None, description="file holding the signing secret (wins over the env var)"
    )
    team_id: str | None = Field(default=None, description="accept clicks from this workspace only")
    snooze_s: int = Field(default=3600, ge=0, description="Snooze button length; 0 hides it")
    usergroup_ttl_s: float = Field(default=300.0, gt=0, description="user group cache lifetime")
    reports_url: str | None = Field(
        default=None, description="base URL serving reports_dir, to link reports from Slack"
    )


class NotifyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    console: bool = True
    slack: SlackConfig | None = None
    chart_ticks: int = Field(default=60, ge=2, le=10_000, description="ticks shown in charts")


def _token(cfg: SlackConfig, env: Mapping[str, str]) -> str:
    token = env.get(cfg.token_env, "").strip()
    if not token:
        raise ConfigError(
            [f"notify.slack.token_env: environment variable {cfg.token_env} is not set"]
        )
    return token


def signing_secret(cfg: SlackConfig, env: Mapping[str, str]) -> str:
    """The signing secret from its file or env var; ConfigError names where, never what."""
    if cfg.signing_secret_file is not None:
        try:
            secret = cfg.signing_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ConfigError([f"notify.slack.signing_secret_file: cannot read: {why}"]) from None
        where = f"file {cfg.signing_secret_file}"
    else:
        secret = env.get(cfg.signing_secret_env, "").strip()
        where = f"environment variable {cfg.signing_secret_env}"
    if not secret:
        raise ConfigError(
            [
                f"notify.slack: {where} holds no signing secret "
                "(needed for interactive buttons; set it or use interactive: false)"
            ]
        )
    return secret


def build_notifiers(cfg: NotifyConfig, env: Mapping[str, str], stream: TextIO) -> list[Notifier]:
    """Notifiers in delivery order (console first: it cannot fail for remote reasons)."""
    notifiers: list[Notifier] = []
    if cfg.console:
        notifiers.append(ConsoleNotifier(stream))
    if cfg.slack is not None:
        s = cfg.slack
        options = RenderOptions(
            interactive=s.interactive, snooze_s=float(s.snooze_s), reports_url=s.reports_url
        )
        notifiers.append(
            SlackNotifier(
                _token(s, env), s.channel, base_url=s.base_url, routes=s.routes, options=options
            )
        )
    return notifiers


def build_interactions(
    cfg: NotifyConfig,
    env: Mapping[str, str],
    store: Store,
    clock: Clock,
    *,
    timeout: int = 2,
) -> SlackInteractions | None:
    """The Slack interactivity endpoint's handler, or None when Slack is off or not interactive.

    Mount it with ``create_app(status, extra_routes=slack_routes(handler))``. Its Slack calls
    (user groups, ephemeral replies, modals) use a short timeout: they sit near the 3 s answer.
    """
    s = cfg.slack
    if s is None or not s.interactive:
        return None
    verifier = RequestVerifier(signing_secret(s, env), clock, ReplayGuard(store, clock))
    client = WebClient(token=_token(s, env), base_url=s.base_url, timeout=timeout)
    client.retry_handlers = []  # an interaction is answered now or not at all
    directory = ApproverDirectory(client, clock, ttl_s=s.usergroup_ttl_s)
    return SlackInteractions(
        store,
        clock,
        verifier,
        client,
        directory,
        team_id=s.team_id,
        snooze_s=float(s.snooze_s),
    )
