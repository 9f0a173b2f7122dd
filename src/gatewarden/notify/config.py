"""Notifier configuration and the factories that build notifiers and the Slack endpoint from it.

Config files name where secrets live (an environment variable, or a file such as a mounted
Kubernetes secret), never the secrets themselves, so a config can be committed and shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field
from slack_sdk import WebClient
from starlette.routing import BaseRoute

from gatewarden.errors import ConfigError
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.slack import (
    DEFAULT_BASE_URL,
    ApproverDirectory,
    ApproverGroups,
    RenderOptions,
    ReplayGuard,
    RequestVerifier,
    RouteRule,
    SlackGroupMap,
    SlackInteractions,
    SlackNotifier,
    SocketModeListener,
    slack_routes,
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
        description="show Approve/Deny/Snooze buttons and take their clicks "
        "(POST /slack/interactions, or Socket Mode)",
    )
    socket_mode: bool = Field(
        default=False,
        description="take clicks over Socket Mode (no public endpoint, no signing secret) "
        "instead of POST /slack/interactions",
    )
    app_token_env: str = Field(
        default="GATEWARDEN_SLACK_APP_TOKEN",
        min_length=1,
        description="env var with the app-level token (xapp-…, scope connections:write) "
        "for Socket Mode",
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


def _from_env(env: Mapping[str, str], name: str, field: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError([f"notify.slack.{field}: environment variable {name} is not set"])
    return value


def _token(cfg: SlackConfig, env: Mapping[str, str]) -> str:
    return _from_env(env, cfg.token_env, "token_env")


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


def build_directory(
    cfg: NotifyConfig, env: Mapping[str, str], wall_clock: Clock, *, timeout: int = 2
) -> ApproverDirectory | None:
    """Slack user-group lookups for approvals, or None when Slack is off.

    One directory (one cache) serves the engine, the Slack interactions and the console. Its
    calls use a short timeout and no retries: they sit inside a tick or near Slack's 3 s answer,
    and a failed lookup only means "not a member" for now.
    """
    s = cfg.slack
    if s is None:
        return None
    client = WebClient(token=_token(s, env), base_url=s.base_url, timeout=timeout)
    client.retry_handlers = []
    return ApproverDirectory(client, wall_clock, ttl_s=s.usergroup_ttl_s)


def build_interactions(
    cfg: NotifyConfig,
    env: Mapping[str, str],
    store: Store,
    clock: Clock,
    *,
    wall_clock: Clock,
    directory: ApproverDirectory | None = None,
    timeout: int = 2,
) -> SlackInteractions | None:
    """The Slack interactions handler, or None when Slack is off or not interactive.

    ``clock`` stamps the recorded decisions (the daemon's timeline, simulated or not);
    ``wall_clock`` checks Slack's request timestamps and expires the user-group cache, which
    are real time whatever the daemon runs on. Over HTTP, mount it with
    ``create_app(status, extra_routes=slack_routes(handler))``; with ``socket_mode`` it has no
    verifier (there is no endpoint) and :func:`build_socket_mode` feeds it. Its Slack calls
    (ephemeral replies, modals) use a short timeout: they sit near the 3 s answer.
    """
    s = cfg.slack
    if s is None or not s.interactive:
        return None
    verifier = None
    if not s.socket_mode:
        replay = ReplayGuard(store, wall_clock)
        verifier = RequestVerifier(signing_secret(s, env), wall_clock, replay)
    client = WebClient(token=_token(s, env), base_url=s.base_url, timeout=timeout)
    client.retry_handlers = []  # an interaction is answered now or not at all
    if directory is None:
        directory = build_directory(cfg, env, wall_clock, timeout=timeout)
        assert directory is not None  # Slack is configured
    return SlackInteractions(
        store,
        clock,
        verifier,
        client,
        directory,
        team_id=s.team_id,
        snooze_s=float(s.snooze_s),
    )


def build_socket_mode(
    cfg: NotifyConfig, env: Mapping[str, str], interactions: SlackInteractions | None
) -> SocketModeListener | None:
    """The Socket Mode listener (not connected yet: ``start()`` it), or None when off."""
    s = cfg.slack
    if s is None or not s.socket_mode or interactions is None:
        return None
    app_token = _from_env(env, s.app_token_env, "app_token_env")
    return SocketModeListener(interactions, app_token, base_url=s.base_url)


@dataclass
class SlackParts:
    """What the daemon wires from ``notify.slack``: one user-group directory (one cache) behind
    the engine's approver groups, the interactions handler and the console's approver rule."""

    approver_groups: ApproverGroups
    live_groups: SlackGroupMap | None = None
    interactions: SlackInteractions | None = None
    socket_mode: SocketModeListener | None = None

    def http_routes(self) -> list[BaseRoute]:
        """``POST /slack/interactions``, unless interactions are off or come by Socket Mode.
        Slack's request signature is its authentication, not the web token."""
        if self.interactions is None or self.interactions.verifier is None:
            return []
        return slack_routes(self.interactions)

    def start(self) -> None:
        if self.socket_mode is not None:
            self.socket_mode.start()  # clicks arrive over Slack's WebSocket from now on

    def close(self) -> None:
        if self.socket_mode is not None:
            self.socket_mode.close()


def build_slack(
    cfg: NotifyConfig,
    configured_groups: Mapping[str, list[str]],
    env: Mapping[str, str],
    store: Store,
    clock: Clock,
    wall_clock: Clock,
) -> SlackParts:
    """Everything interactive about Slack, from the config (ConfigError when a secret is
    missing). Without Slack, approver groups are the configured ones only. ``clock`` stamps
    decisions; ``wall_clock`` checks request timestamps and expires the user-group cache."""
    directory = build_directory(cfg, env, wall_clock)
    live = SlackGroupMap(directory) if directory is not None else None
    interactions = build_interactions(
        cfg, env, store, clock, wall_clock=wall_clock, directory=directory
    )
    return SlackParts(
        approver_groups=ApproverGroups(configured_groups, live),
        live_groups=live,
        interactions=interactions,
        socket_mode=build_socket_mode(cfg, env, interactions),
    )
