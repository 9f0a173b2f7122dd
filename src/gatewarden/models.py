"""Frozen domain models shared by every stage.

``Event`` is the source of truth: incident state, the Slack message, the console and the report are
all projections of the append-only event log (see :mod:`gatewarden.projections`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Scope labels, most general first within each topology chain
#: (provider > model; requested_model; team > api_key; workflow > session_id).
SCOPE_LABELS: tuple[str, ...] = (
    "provider",
    "model",
    "requested_model",
    "team",
    "api_key",
    "workflow",
    "session_id",
)

#: Detector kinds (the vocabulary of ``backtest`` output and playbook matchers).
ALERT_KINDS: tuple[str, ...] = (
    "ttft",
    "error_rate",
    "cost",
    "agent_loop",
    "fallback_storm",
    "traffic",
    "gateway_unreachable",
)


def scope_key(scope: Mapping[str, str]) -> str:
    """Canonical text form of a scope: ``provider=openai,model=gpt-4o`` in SCOPE_LABELS order."""
    order = {label: i for i, label in enumerate(SCOPE_LABELS)}
    items = sorted(scope.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    return ",".join(f"{k}={v}" for k, v in items)


def fingerprint(kind: str, scope: Mapping[str, str]) -> str:
    """Stable identity of an alert: the same kind on the same scope is the same alert."""
    digest = hashlib.sha256(f"{kind}|{scope_key(scope)}".encode()).hexdigest()
    return digest[:16]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


#: Largest integer a records frame's int64 columns hold.
INT64_MAX = 2**63 - 1


class RequestRecord(BaseModel):
    """One LLM call, as the request-log contract (JSON Lines) describes it.

    Unknown extra fields are ignored so gateways can log more than we read.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    ts: float
    request_id: str = Field(min_length=1)
    trace_id: str | None = None
    session_id: str | None = None
    api_key: str = Field(min_length=1, description="key alias, never the secret")
    team: str | None = None
    workflow: str | None = None
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1, description="the model that served")
    requested_model: str = Field(min_length=1)
    status: int = Field(ge=100, le=599)
    error: str | None = None
    latency_ms: float = Field(ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)
    # Counts live in int64 frame columns: a larger one is a malformed record, not a crash.
    input_tokens: int = Field(ge=0, le=INT64_MAX)
    output_tokens: int = Field(ge=0, le=INT64_MAX)
    cost_usd: float = Field(ge=0)
    fallback: bool = False
    retries: int = Field(default=0, ge=0, le=INT64_MAX)
    prompt_hash: str | None = None
    tool: str | None = None

    @field_validator("ts", "latency_ms", "cost_usd")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @property
    def failed(self) -> bool:
        return self.status >= 400


class Sample(_Frozen):
    """One value of one metric series at one instant (from a scrape or PromQL)."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    ts: float
    value: float


class Evidence(_Frozen):
    """Why an alert fired: enough for a human to check the claim."""

    metric: str
    observed: float
    expected: float
    score: float
    window_s: float
    volume: float = 0.0
    detail: str = ""
    sample_ids: tuple[str, ...] = ()


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class Alert(_Frozen):
    """A detector's claim that one series of one kind is anomalous."""

    kind: str
    scope: dict[str, str]
    detector: str
    ts: float
    severity: Severity = Severity.WARNING
    evidence: Evidence

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.kind, self.scope)


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Incident(_Frozen):
    """Projection of an incident's events (never stored as such)."""

    id: str
    status: IncidentStatus
    kinds: tuple[str, ...]
    scope: dict[str, str]
    severity: Severity
    opened_at: float
    resolved_at: float | None = None
    acknowledged_at: float | None = None
    mitigated_at: float | None = None
    root_cause: str | None = Field(default=None, description="fingerprint of the root-cause alert")
    alerts: tuple[str, ...] = Field(default=(), description="fingerprints of member alerts")
    title: str = ""
    merged_into: str | None = Field(
        default=None, description="set when a later cause absorbed this incident into another"
    )


class RunState(StrEnum):
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    DENIED = "denied"
    DRY_RUN = "dry_run"

    @property
    def finished(self) -> bool:
        return self not in (RunState.RUNNING, RunState.WAITING_APPROVAL)


class ActionRun(_Frozen):
    """Projection of one playbook run against one incident."""

    id: str
    incident_id: str
    playbook: str
    state: RunState
    step: int = 0
    started_at: float
    updated_at: float
    mode: str = "approve"


class ApprovalDecision(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    EXPIRED = "expired"


class Approval(_Frozen):
    """A human (or the demo's labelled auto-approver) deciding on an approval step."""

    run_id: str
    step: int
    decision: ApprovalDecision
    by: str
    at: float
    reason: str = ""


class EventType(StrEnum):
    ALERT_FIRED = "alert.fired"
    ALERT_UPDATED = "alert.updated"
    ALERT_RESOLVED = "alert.resolved"
    ALERT_GROUPED = "alert.grouped"
    ALERT_INHIBITED = "alert.inhibited"
    ALERT_SILENCED = "alert.silenced"
    SILENCE_CREATED = "silence.created"
    SILENCE_EXPIRED = "silence.expired"
    INCIDENT_OPENED = "incident.opened"
    INCIDENT_SEVERITY = "incident.severity_changed"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
    INCIDENT_MITIGATED = "incident.mitigated"
    INCIDENT_REOPENED = "incident.reopened"
    INCIDENT_RESOLVED = "incident.resolved"
    NOTIFICATION_QUEUED = "notification.queued"
    NOTIFICATION_DELIVERED = "notification.delivered"
    NOTIFICATION_FAILED = "notification.failed"
    PLAYBOOK_STARTED = "playbook.started"
    PLAYBOOK_FINISHED = "playbook.finished"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_GRANTED = "approval.granted"
    APPROVAL_DENIED = "approval.denied"
    APPROVAL_EXPIRED = "approval.expired"
    ACTION_INTENDED = "action.intended"
    ACTION_APPLIED = "action.applied"
    ACTION_FAILED = "action.failed"
    ACTION_ROLLED_BACK = "action.rolled_back"
    VERIFICATION_PASSED = "verification.passed"
    VERIFICATION_FAILED = "verification.failed"
    REPORT_WRITTEN = "report.written"


class Event(_Frozen):
    """One appended fact. ``seq`` is assigned by the store; ``key`` makes an append idempotent:
    a second event with the same key is not stored (the first one wins)."""

    seq: int | None = None
    ts: float
    type: EventType
    incident_id: str | None = None
    run_id: str | None = None
    key: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


class GatewayAction(_Frozen):
    """A typed request to change the gateway, e.g. ``block_key`` with ``{"key": "team-a-1"}``."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)


class ActionPlan(_Frozen):
    """An action made concrete against the gateway's current state, before anything changes.

    ``inverse`` is computed from the state observed *before* the change and persisted with the
    intent, so a rollback after a crash restores what was really there.
    """

    action: GatewayAction
    inverse: GatewayAction | None
    preview: str = ""


class ActionOutcome(_Frozen):
    ok: bool
    status: int | None = None
    detail: str = ""
    response: dict[str, Any] = Field(default_factory=dict)


class Message(_Frozen):
    """One notification, persisted in the outbox before delivery. ``id`` is its idempotency key."""

    id: str
    incident_id: str | None
    ts: float
    kind: str
    severity: Severity = Severity.WARNING
    title: str
    text: str = ""
    fields: dict[str, str] = Field(default_factory=dict)
    thread_of: str | None = Field(default=None, description="message id whose thread this joins")
    actions: tuple[dict[str, str], ...] = ()


class Delivery(_Frozen):
    ok: bool
    ref: str | None = Field(default=None, description="notifier's handle, e.g. Slack channel:ts")
    detail: str = ""
