"""Notifications: events become messages, persisted in an outbox, delivered to console and Slack."""

from gatewarden.notify.config import NotifyConfig, SlackConfig, build_notifiers
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.messages import build_message, message_id, root_message_id
from gatewarden.notify.outbox import NotifyStage, Reconciler
from gatewarden.notify.slack import SlackNotifier

__all__ = [
    "ConsoleNotifier",
    "NotifyConfig",
    "NotifyStage",
    "Reconciler",
    "SlackConfig",
    "SlackNotifier",
    "build_message",
    "build_notifiers",
    "message_id",
    "root_message_id",
]
