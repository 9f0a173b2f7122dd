"""The gatewarden exception tree.

Every error gatewarden raises on purpose derives from :class:`GatewardenError`, so callers can
catch the whole family without a bare ``except Exception``::

    GatewardenError
    ├── ConfigError            a config, detector or playbook file is invalid (file/line/field)
    ├── InputError             one unit of external input is malformed (log line, scrape, payload)
    │   ├── RecordError        a request-log line does not satisfy the request-log contract
    │   ├── ScrapeError        a metrics exposition cannot be parsed
    │   └── OtlpPayloadError   an OTLP export cannot be decoded (gatewarden.ingest.otlp)
    ├── SourceError            a source could not be pulled (unreachable, timeout, HTTP error)
    ├── StoreError             the event store failed (I/O, schema version, constraint)
    │   └── LeaseLostError     this replica no longer holds the leadership lease (fencing)
    ├── GatewayError           a gateway admin call failed
    │   ├── GatewayUnavailable transient: connection error, timeout, 5xx, 429 (retry with backoff)
    │   └── GatewayRejected    permanent: 4xx other than 429 (do not retry)
    ├── NotifyError            a notifier could not deliver
    │   ├── NotifyRetryable    transient (rate limit, outage): the outbox retries later
    │   └── NotifyRejected     permanent: the message itself is refused
    └── PlaybookError          a playbook run cannot proceed (bad template, unknown action)

Input errors are counted and survived by the stage that meets them; they never stop the daemon.
"""

from __future__ import annotations


class GatewardenError(Exception):
    """Base class of every error gatewarden raises on purpose."""


class ConfigError(GatewardenError):
    """A configuration file is invalid.

    ``problems`` lists one human-readable line per problem, each prefixed with
    ``file:line: field:`` where those are known.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) if self.problems else "invalid configuration")


class InputError(GatewardenError):
    """One unit of external input is malformed."""


class RecordError(InputError):
    """A request-log line does not satisfy the request-log contract."""


class ScrapeError(InputError):
    """A metrics exposition cannot be parsed."""


class SourceError(GatewardenError):
    """A source could not be pulled."""


class StoreError(GatewardenError):
    """The event store failed."""


class LeaseLostError(StoreError):
    """This replica does not hold the leadership lease; it must not act."""


class GatewayError(GatewardenError):
    """A gateway admin call failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class GatewayUnavailable(GatewayError):
    """Transient gateway failure (connection, timeout, 5xx, 429): retry with backoff."""


class GatewayRejected(GatewayError):
    """Permanent gateway refusal (4xx other than 429): retrying will not help."""


class NotifyError(GatewardenError):
    """A notifier could not deliver a message."""


class NotifyRetryable(NotifyError):
    """Transient delivery failure; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class NotifyRejected(NotifyError):
    """Permanent delivery failure: the message is refused as it is."""


class PlaybookError(GatewardenError):
    """A playbook run cannot proceed."""
