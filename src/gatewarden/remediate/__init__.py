"""Remediation: YAML playbooks run against incidents through a gateway's admin API."""

from gatewarden.remediate.approvals import ApprovalRefused, DemoAutoApprover, record_decision
from gatewarden.remediate.engine import RemediateStage
from gatewarden.remediate.language import Playbook, load_playbooks, playbook_json_schema
from gatewarden.remediate.verify import MetricsView

__all__ = [
    "ApprovalRefused",
    "DemoAutoApprover",
    "MetricsView",
    "Playbook",
    "RemediateStage",
    "load_playbooks",
    "playbook_json_schema",
    "record_decision",
]
