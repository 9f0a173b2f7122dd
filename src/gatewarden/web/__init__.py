"""The daemon's HTTP surface: health, readiness, self-metrics, and mounted stage routes."""

from gatewarden.web.app import create_app
from gatewarden.web.auth import bearer_ok
from gatewarden.web.status import StatusProvider, StatusSnapshot

__all__ = ["StatusProvider", "StatusSnapshot", "bearer_ok", "create_app"]
