"""The playbook language: one YAML file per playbook, validated into frozen pydantic models.

Example (see ``playbooks/provider-failover.yaml``)::

    name: provider-failover
    mode: approve                 # dry_run | approve | auto
    match: {kinds: [error_rate], scope: {provider: "*"}, min_severity: warning}
    steps:
      - {type: approval, approvers: [U000ONCALL], timeout_s: 600, on_timeout: deny}
      - {type: action, action: failover_provider,
         params: {provider: "{{ incident.scope.provider }}"}}
      - type: verify
        checks: [{metric: error_rate, where: {provider: "{{ incident.scope.provider }}"},
                  below: 0.02, no_data: pass}]
        for_ticks: 3
        timeout_s: 600
    on_failure: rollback          # rollback | stop
    cooldown_s: 1800
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gatewarden.detect.yaml_lines import format_problem, locate
from gatewarden.errors import ConfigError
from gatewarden.gateways.actions import ACTION_PARAMS, HttpParams, param_names
from gatewarden.models import ALERT_KINDS, Incident, Severity
from gatewarden.remediate.templating import check_syntax, iter_strings
from gatewarden.yamlconfig import read_yaml, validation_problems

_NAME = r"^[a-z0-9][a-z0-9_.-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_templates(value: Any) -> Any:
    for text in iter_strings(value):
        check_syntax(text)
    return value


#: a value whose strings are Jinja2 templates, syntax-checked at load time
Templated = Annotated[Any, AfterValidator(_check_templates)]
TemplatedStr = Annotated[str, AfterValidator(_check_templates)]


class Match(_Model):
    """Which incidents a playbook handles. Scope values: ``"*"`` = the label must be present,
    ``re:<regex>`` = full regex match, anything else = exact match."""

    kinds: list[str] = Field(default_factory=list, description="any of these kinds; [] = any")
    scope: dict[str, str] = Field(default_factory=dict)
    min_severity: Severity = Severity.INFO

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in ALERT_KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {unknown}; expected any of {list(ALERT_KINDS)}")
        return kinds

    @field_validator("scope")
    @classmethod
    def _valid_regexes(cls, scope: dict[str, str]) -> dict[str, str]:
        for label, pattern in scope.items():
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise ValueError(f"{label}: invalid regex: {exc}") from None
        return scope

    def matches(self, incident: Incident) -> bool:
        if self.kinds and not set(self.kinds) & set(incident.kinds):
            return False
        if incident.severity.rank < self.min_severity.rank:
            return False
        for label, pattern in self.scope.items():
            value = incident.scope.get(label)
            if value is None:
                return False
            if pattern == "*":
                continue
            if pattern.startswith("re:"):
                if re.fullmatch(pattern[3:], value) is None:
                    return False
            elif value != pattern:
                return False
        return True


#: an approver entry naming a group, resolved from the daemon config's approver groups
GROUP_PREFIX = "group:"


class ApprovalStep(_Model):
    type: Literal["approval"]
    approvers: list[str] = Field(
        min_length=1, description="approver ids, or group:NAME resolved from the daemon config"
    )
    quorum: int = Field(default=1, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)
    on_timeout: Literal["deny", "escalate", "proceed"] = "deny"
    escalate_to: list[str] = Field(
        default_factory=list,
        description="on_timeout escalate: approver ids or group:NAME the approval is handed to",
    )
    escalate_timeout_s: float | None = Field(
        default=None, gt=0, description="how long the escalation approvers have (timeout_s)"
    )

    @model_validator(mode="after")
    def _escalation(self) -> ApprovalStep:
        if self.on_timeout == "escalate" and not self.escalate_to:
            raise ValueError("on_timeout escalate needs escalate_to (who the approval goes to)")
        if self.on_timeout != "escalate" and (self.escalate_to or self.escalate_timeout_s):
            raise ValueError("escalate_to / escalate_timeout_s need on_timeout: escalate")
        return self

    @model_validator(mode="after")
    def _quorum_reachable(self) -> ApprovalStep:
        if any(a.startswith(GROUP_PREFIX) for a in self.approvers):
            return self  # a group's size is only known once resolved (checked at request time)
        if self.quorum > len(set(self.approvers)):
            raise ValueError(f"quorum {self.quorum} exceeds the {len(self.approvers)} approvers")
        return self


class ActionStep(_Model):
    type: Literal["action"]
    action: str
    params: dict[str, Templated] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_action(self) -> ActionStep:
        if self.action not in ACTION_PARAMS:
            raise ValueError(
                f"unknown action {self.action!r}; expected one of {list(ACTION_PARAMS)}"
            )
        required, allowed = param_names(self.action)
        missing = sorted(required - set(self.params))
        extra = sorted(set(self.params) - allowed)
        if missing:
            raise ValueError(f"{self.action} needs param(s) {missing}")
        if extra:
            raise ValueError(f"{self.action} has no param(s) {extra}; allowed: {sorted(allowed)}")
        if self.action == "http":
            # Its structure (method, absolute URL, secrets only in headers) holds whatever the
            # templates render to, so it is checked now rather than at the first incident.
            try:
                HttpParams.model_validate(self.params)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"http params: {where}: {first['msg']}") from None
        return self


class WaitStep(_Model):
    type: Literal["wait"]
    seconds: float = Field(gt=0)


class Check(_Model):
    metric: str = Field(min_length=1)
    where: dict[str, TemplatedStr] = Field(default_factory=dict, description="templated labels")
    level: str | None = None
    below: float | None = None
    above: float | None = None
    no_data: Literal["pass", "fail"] = "fail"

    @model_validator(mode="after")
    def _has_bound(self) -> Check:
        if self.below is None and self.above is None:
            raise ValueError("a check needs 'below' and/or 'above'")
        return self


class VerifyStep(_Model):
    type: Literal["verify"]
    checks: list[Check] = Field(min_length=1)
    for_ticks: int = Field(default=3, ge=1)
    timeout_s: float = Field(default=600.0, gt=0)


class NotifyStep(_Model):
    type: Literal["notify"]
    text: TemplatedStr = Field(min_length=1)


Step = Annotated[
    ApprovalStep | ActionStep | WaitStep | VerifyStep | NotifyStep, Field(discriminator="type")
]
STEP_TYPES: tuple[str, ...] = ("approval", "action", "wait", "verify", "notify")


class Playbook(_Model):
    name: str = Field(pattern=_NAME, max_length=64)
    description: str = ""
    mode: Literal["dry_run", "approve", "auto"] = "approve"
    match: Match = Field(default_factory=Match)
    steps: list[Step] = Field(min_length=1)
    on_failure: Literal["rollback", "stop"] = "rollback"
    cooldown_s: float = Field(default=1800.0, ge=0, description="per playbook and incident scope")
    max_actions_per_hour: int | None = Field(default=None, ge=1)


def playbook_json_schema() -> dict[str, Any]:
    """JSON Schema of a playbook file (for editors and ``check-config``)."""
    return Playbook.model_json_schema()


def load_playbook(path: Path) -> Playbook:
    text, data = read_yaml(path)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError([f"{path}:1: (document): expected a mapping, got {kind}"])
    try:
        return Playbook.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(path, text, data, exc)) from exc


def load_playbooks(directory: Path | str) -> list[Playbook]:
    """Every ``*.yaml``/``*.yml`` playbook in ``directory``, in file-name order.

    Raises ConfigError listing every problem of every file (``file:line: field: message``).
    """
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError([f"{root}: not a directory"])
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    problems: list[str] = []
    playbooks: list[Playbook] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            playbook = load_playbook(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if playbook.name in seen:
            line = locate(path.read_text(encoding="utf-8"), ("name",))
            message = f"duplicate playbook name (also in {seen[playbook.name].name})"
            problems.append(format_problem(path, line, ("name",), message))
            continue
        seen[playbook.name] = path
        playbooks.append(playbook)
    if problems:
        raise ConfigError(problems)
    return playbooks
