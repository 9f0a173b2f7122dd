"""Slack: Block Kit incident threads, charts, signed approve/deny/snooze interactions (HTTP or
Socket Mode)."""

from gatewarden.notify.slack.api import DEFAULT_BASE_URL, map_api_error
from gatewarden.notify.slack.blocks import RenderOptions, build_blocks, fallback_text
from gatewarden.notify.slack.directory import ApproverDirectory, ApproverGroups, SlackGroupMap
from gatewarden.notify.slack.interactions import Outcome, SlackInteractions, slack_routes
from gatewarden.notify.slack.notifier import METADATA_EVENT, SlackNotifier, split_ref
from gatewarden.notify.slack.routing import Router, RouteRule
from gatewarden.notify.slack.signing import ReplayGuard, RequestVerifier
from gatewarden.notify.slack.snooze import snooze_incident
from gatewarden.notify.slack.socket_mode import SocketModeListener

__all__ = [
    "DEFAULT_BASE_URL",
    "METADATA_EVENT",
    "ApproverDirectory",
    "ApproverGroups",
    "Outcome",
    "RenderOptions",
    "ReplayGuard",
    "RequestVerifier",
    "RouteRule",
    "Router",
    "SlackGroupMap",
    "SlackInteractions",
    "SlackNotifier",
    "SocketModeListener",
    "build_blocks",
    "fallback_text",
    "map_api_error",
    "slack_routes",
    "snooze_incident",
    "split_ref",
]
