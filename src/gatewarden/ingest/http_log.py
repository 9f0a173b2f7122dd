"""Pull request records over HTTP in the request-log contract (the simulator's endpoint, or any
gateway-side exporter that serves ``GET <path>?since=TS&until=TS`` as JSON Lines)."""

from __future__ import annotations

import logging
import math

import httpx

from gatewarden.errors import SourceError
from gatewarden.ingest.request_log import parse_lines
from gatewarden.protocols import Batch

log = logging.getLogger(__name__)


class HttpRequestLogSource:
    def __init__(
        self,
        base_url: str,
        *,
        path: str = "/gatewarden/requests",
        since: float = 0.0,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        name: str = "http_request_log",
    ) -> None:
        self.name = name
        self.path = path
        self.cursor = since
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout)

    def pull(self, until: float) -> Batch:
        if until <= self.cursor:
            return parse_lines([])
        try:
            response = self._client.get(
                self.path, params={"since": repr(self.cursor), "until": repr(until)}
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # The cursor stays put: the next pull asks for the missed window again.
            raise SourceError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        batch = parse_lines(response.text.splitlines(), origin=self.name)
        self.cursor = until
        return batch

    def checkpoint(self) -> str:
        """Where the next pull starts; stored after each completed tick."""
        return repr(self.cursor)

    def restore(self, checkpoint: str) -> None:
        try:
            cursor = float(checkpoint)
        except ValueError:
            cursor = math.nan
        if not math.isfinite(cursor):
            # A damaged state row must not stop the daemon: keep the configured start.
            log.warning("%s: ignoring unreadable checkpoint %r", self.name, checkpoint[:80])
            return
        self.cursor = cursor

    def close(self) -> None:
        self._client.close()
