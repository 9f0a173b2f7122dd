"""The local incident console served by the daemon on 127.0.0.1 (see :mod:`.app`)."""

from gatewarden.console.app import Console, console_routes
from gatewarden.console.auth import ConsoleAuth
from gatewarden.console.views import PendingApproval, pending_approvals

__all__ = ["Console", "ConsoleAuth", "PendingApproval", "console_routes", "pending_approvals"]
