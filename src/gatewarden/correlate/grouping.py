"""Which alerts share a cause. Topology chains: provider > model; requested_model;
team > api_key; workflow > session_id. Two scopes are related when they agree on the most
general label of a chain they both carry (same provider, same team, same workflow, ...)."""

from __future__ import annotations

from collections.abc import Mapping

from gatewarden.models import SCOPE_LABELS

#: Labels that identify a shared parent, most general first.
PARENT_LABELS: tuple[str, ...] = ("provider", "requested_model", "team", "workflow")

#: Position of a scope in the topology: lower = higher up (a better root-cause candidate).
_DEPTH = {label: i for i, label in enumerate(SCOPE_LABELS)}


def related(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """True when the two scopes nest or share a parent group and contradict on no label.

    ``{provider: openai}`` and ``{provider: openai, model: gpt-4o}`` nest; two keys of team
    ``a`` share a parent; ``{provider: openai, requested_model: g}`` and ``{provider: azure,
    requested_model: g}`` do not (they disagree on the provider).
    """
    shared = set(a) & set(b)
    if not shared or any(a[k] != b[k] for k in shared):
        return False
    return a == b or set(a) <= set(b) or set(b) <= set(a) or bool(shared & set(PARENT_LABELS))


def siblings(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Two different scopes under one parent: same labels, equal on every parent label they
    carry (at least one), different below it. ``{provider: openai, model: gpt-4o}`` and
    ``{provider: openai, model: gpt-4o-mini}`` are siblings; two keys of one team too.
    :func:`related` says no to these (they contradict on the child label)."""
    if a == b or set(a) != set(b):
        return False
    parents = set(a) & set(PARENT_LABELS)
    return bool(parents) and all(a[k] == b[k] for k in parents)


def topology_rank(scope: Mapping[str, str]) -> tuple[int, int]:
    """Sort key: fewer labels and more general labels rank first."""
    depth = min((_DEPTH.get(k, len(_DEPTH)) for k in scope), default=len(_DEPTH))
    return (len(scope), depth)


def describe(kind: str, scope: Mapping[str, str]) -> str:
    where = ", ".join(f"{k}={v}" for k, v in scope.items()) or "all traffic"
    return f"{kind.replace('_', ' ')} on {where}"
