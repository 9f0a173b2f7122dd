"""Notifications: events become messages, persisted in an outbox, delivered to console and Slack."""

from gatewarden.notify.config import (
    NotifyConfig,
    SlackConfig,
    SlackParts,
    build_directory,
    build_interactions,
    build_notifiers,
    build_slack,
    build_socket_mode,
)
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.incident import SeriesSource
from gatewarden.notify.messages import build_message, message_id, root_message_id
from gatewarden.notify.outbox import NotifyStage, Reconciler, Selective, Updater
from gatewarden.notify.slack import (
    RouteRule,
    SlackInteractions,
    SlackNotifier,
    slack_routes,
    snooze_incident,
)

__all__ = [
    "ConsoleNotifier",
    "NotifyConfig",
    "NotifyStage",
    "Reconciler",
    "RouteRule",
    "Selective",
    "SeriesSource",
    "SlackConfig",
    "SlackInteractions",
    "SlackNotifier",
    "SlackParts",
    "Updater",
    "build_directory",
    "build_interactions",
    "build_message",
    "build_notifiers",
    "build_slack",
    "build_socket_mode",
    "message_id",
    "root_message_id",
    "slack_routes",
    "snooze_incident",
]
