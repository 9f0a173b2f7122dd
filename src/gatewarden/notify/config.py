"""Notifier configuration and the factory that builds notifiers from it.

Config files name the *environment variable* holding the Slack token, never the token itself, so
a config can be committed and shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field

from gatewarden.errors import ConfigError
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.slack import DEFAULT_BASE_URL, SlackNotifier
from gatewarden.protocols import Notifier


class SlackConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token_env: str = Field(
        default="GATEWARDEN_SLACK_TOKEN", min_length=1, description="env var with the bot token"
    )
    channel: str = Field(min_length=1, description="channel id (preferred) or #name")
    base_url: str = DEFAULT_BASE_URL


class NotifyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    console: bool = True
    slack: SlackConfig | None = None


def build_notifiers(cfg: NotifyConfig, env: Mapping[str, str], stream: TextIO) -> list[Notifier]:
    """Notifiers in delivery order (console first: it cannot fail for remote reasons)."""
    notifiers: list[Notifier] = []
    if cfg.console:
        notifiers.append(ConsoleNotifier(stream))
    if cfg.slack is not None:
        token = env.get(cfg.slack.token_env, "").strip()
        if not token:
            raise ConfigError(
                [f"notify.slack.token_env: environment variable {cfg.slack.token_env} is not set"]
            )
        notifiers.append(SlackNotifier(token, cfg.slack.channel, base_url=cfg.slack.base_url))
    return notifiers
