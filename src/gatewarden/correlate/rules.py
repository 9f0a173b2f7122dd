"""Which alert explains which: the rules behind grouping, inhibition and root-cause ranking.

A rule says: an alert of ``source_kinds`` explains an alert of ``target_kinds`` when their
scopes stand in ``relation``; with ``inhibit`` the explained alert attaches to the cause's
incident without paging (Alertmanager's inhibition, but decided by topology, not labels only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gatewarden.correlate.topology import Topology, nested

Relation = Literal["nested", "contains", "share"]


class InhibitRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    source_kinds: tuple[str, ...]
    target_kinds: tuple[str, ...]
    relation: Relation = Field(
        description="nested: target inside source scope (learned parents count); "
        "contains: source inside target scope (a key explains its team); "
        "share: most of the target's relevant traffic went through the source's scope"
    )
    min_share: float = Field(default=0.5, gt=0, le=1)
    inhibit: bool = True


DEFAULT_RULES: tuple[InhibitRule, ...] = (
    # A provider (or model) failing explains its models', keys' and groups' failures...
    InhibitRule(source_kinds=("error_rate",), target_kinds=("error_rate",), relation="nested"),
    InhibitRule(source_kinds=("error_rate",), target_kinds=("error_rate",), relation="share"),
    # ...and the fallback storms of groups whose primary calls it failed.
    InhibitRule(source_kinds=("error_rate",), target_kinds=("fallback_storm",), relation="share"),
    InhibitRule(source_kinds=("ttft",), target_kinds=("ttft",), relation="nested"),
    InhibitRule(source_kinds=("ttft",), target_kinds=("ttft",), relation="share"),
    # A price change on one model explains the cost alerts of workflows spending on it.
    InhibitRule(source_kinds=("cost",), target_kinds=("cost",), relation="nested"),
    InhibitRule(source_kinds=("cost",), target_kinds=("cost",), relation="share"),
    # A looping session explains its workflow's / key's spend and rate; both stay visible.
    InhibitRule(
        source_kinds=("agent_loop",),
        target_kinds=("cost", "traffic"),
        relation="share",
        inhibit=False,
    ),
    # One leaked key explains its team's surge.
    InhibitRule(source_kinds=("traffic",), target_kinds=("traffic",), relation="contains"),
)


@dataclass(frozen=True)
class Explanation:
    reason: str
    inhibit: bool


def _where(scope: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in scope.items()) or "all traffic"


#: Labels of the serving side: what a provider, a model or a model group did.
_SERVING_LABELS = frozenset({"provider", "model", "requested_model"})


def _client_explains_provider(cause: Mapping[str, str], symptom: Mapping[str, str]) -> bool:
    """A key, team, workflow or session cannot make a provider fail or slow down, even when in
    one tick most of the provider's few failures went through it (the tail of an outage)."""
    return bool(_SERVING_LABELS & set(symptom)) and not _SERVING_LABELS & set(cause)


def explain(
    cause: tuple[str, Mapping[str, str]],
    symptom: tuple[str, Mapping[str, str]],
    topology: Topology,
    rules: tuple[InhibitRule, ...] = DEFAULT_RULES,
) -> Explanation | None:
    """Does the ``cause`` alert (kind, scope) explain the ``symptom`` alert? First rule wins."""
    cause_kind, cause_scope = cause
    kind, scope = symptom
    if cause_scope == scope and cause_kind == kind:
        return None
    widened = {**topology.parent_of(scope), **scope}  # a key's learned team counts as its scope
    for rule in rules:
        if cause_kind not in rule.source_kinds or kind not in rule.target_kinds:
            continue
        if rule.relation == "nested" and nested(widened, cause_scope):
            return Explanation(f"inside {cause_kind} on {_where(cause_scope)}", rule.inhibit)
        if rule.relation == "contains" and nested(dict(cause_scope), scope):
            return Explanation(f"driven by {cause_kind} on {_where(cause_scope)}", rule.inhibit)
        if (
            rule.relation == "share"
            and not nested(dict(cause_scope), scope)
            and not _client_explains_provider(cause_scope, scope)
        ):
            share = topology.share(scope, cause_scope, kind=kind)
            if share >= rule.min_share:
                return Explanation(
                    f"{share:.0%} of its {kind.replace('_', ' ')} traffic went through "
                    f"{_where(cause_scope)} ({cause_kind})",
                    rule.inhibit,
                )
    return None
