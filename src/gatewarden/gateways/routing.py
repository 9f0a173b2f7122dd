"""Routing-order arithmetic shared by every adapter: which deployment ``order`` values move
traffic off a provider, a (provider, served model) pair, or a model group's current primary.

LiteLLM routes a model group to the deployments with the lowest ``order`` present; deployments
without an order only take traffic when no deployment of the group has one. Moving traffic off a
deployment is therefore "rank it behind the others", which is what these plans compute. The
adapters only read state and apply the resulting orders, so they all plan identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gatewarden.gateways.traffic import Served, traffic_share
from gatewarden.models import GatewayAction


@dataclass(frozen=True)
class DeploymentView:
    """What routing plans need to know about one deployment."""

    id: str
    model_name: str
    provider: str
    order: int | None
    #: the served model without its provider prefix (``openai/gpt-4o`` -> ``gpt-4o``)
    model: str = ""
    #: the router's per-deployment limits (requests / tokens per minute), None = unlimited
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class FailoverPlan:
    new_orders: dict[str, int | None]
    old_orders: dict[str, int | None]
    groups: list[str]
    from_what: str
    to_what: list[str]
    action_type: str = "failover_provider"
    params: dict[str, str] = field(default_factory=dict)
    #: per moved group, the (provider, served model) pairs of the deployments moved off
    served: dict[str, Served] = field(default_factory=dict)

    def action(self) -> GatewayAction:
        params = {**self.params, "orders": self.new_orders}
        return GatewayAction(type=self.action_type, params=params)

    def inverse(self) -> GatewayAction:
        return GatewayAction(type="set_deployment_orders", params={"orders": self.old_orders})

    def preview(self) -> str:
        """What moves where, and, while planning under :func:`~gatewarden.gateways.traffic.
        recent_traffic`, how much of each group's recent traffic that is."""
        groups = ", ".join(self.groups)
        plural = "model groups" if len(self.groups) > 1 else "model group"
        targets = ", ".join(self.to_what)
        text = f"will move {plural} {groups} from {self.from_what} to {targets}"
        share = traffic_share(self.served)
        return f"{text}: {share}" if share else text

    @property
    def from_provider(self) -> str:  # kept for callers of the provider-only plan
        return self.from_what

    @property
    def to_providers(self) -> list[str]:
        return self.to_what


def provider_of(model: str, custom_provider: str | None = None) -> str:
    """LiteLLM's provider of a deployment: ``custom_llm_provider`` or the ``provider/`` prefix."""
    if custom_provider:
        return custom_provider
    return model.split("/", 1)[0] if "/" in model else model


def served_model(model: str) -> str:
    """The served model of ``litellm_params.model`` without the provider prefix."""
    return model.split("/", 1)[1] if "/" in model else model


def first(deps: Iterable[DeploymentView]) -> list[DeploymentView]:
    """The deployments of one group that currently take its traffic."""
    deps = list(deps)
    orders = [d.order for d in deps if d.order is not None]
    if not orders:
        return deps
    return [d for d in deps if d.order == min(orders)]


def restorable_orders(
    orders: Mapping[str, int | None], deployments: Iterable[DeploymentView]
) -> dict[str, int]:
    """Integer orders with the same routing effect as ``orders`` (ids -> order or None).

    For admin APIs that cannot remove an order: LiteLLM's ``/model/update`` drops a null order
    (it applies params with ``exclude_none``) and the simulator refuses one. A deployment
    without an order is never picked while another of its group has one, so it is equivalent to
    ranking behind all of them; when none has an order, all share traffic, as with order 1 each.
    """
    views = list(deployments)
    group_of = {v.id: v.model_name for v in views}
    out: dict[str, int] = {}
    for dep_id, order in orders.items():
        if order is not None:
            out[dep_id] = order
            continue
        group = group_of.get(dep_id)
        # The group as it will be once ``orders`` are applied, so the restored ranks agree.
        after = [orders.get(v.id, v.order) for v in views if v.model_name == group]
        ordered = [o for o in after if o is not None]
        out[dep_id] = max(ordered) + 1 if ordered else 1
    return out


def _groups(deployments: Iterable[DeploymentView]) -> dict[str, list[DeploymentView]]:
    groups: dict[str, list[DeploymentView]] = {}
    for dep in deployments:
        groups.setdefault(dep.model_name, []).append(dep)
    return groups


@dataclass
class _Moves:
    new: dict[str, int | None]
    old: dict[str, int | None]
    groups: list[str]
    targets: list[str]
    served: dict[str, Served]


def _served(
    groups: dict[str, list[DeploymentView]], moved: Mapping[str, list[DeploymentView]]
) -> dict[str, Served]:
    """Per moved group, the (provider, served model) pairs of its moved deployments, and
    whether another group serves one of them too (then its traffic cannot be told apart)."""
    serving: dict[tuple[str, str], set[str]] = {}
    for name, deps in groups.items():
        for d in deps:
            serving.setdefault((d.provider, d.model), set()).add(name)
    out: dict[str, Served] = {}
    for name, deps in moved.items():
        pairs = tuple(sorted({(d.provider, d.model) for d in deps}))
        shared = any(len(serving[pair]) > 1 for pair in pairs)
        out[name] = Served(pairs=pairs, shared=shared)
    return out


def _move(
    groups: dict[str, list[DeploymentView]],
    is_ours: Callable[[DeploymentView], bool],
    label: Callable[[DeploymentView], str],
) -> _Moves | None:
    """Rank ``is_ours`` deployments behind the rest of their group, in every group where one
    of them is first and another deployment can take over."""
    new: dict[str, int | None] = {}
    old: dict[str, int | None] = {}
    moved: list[str] = []
    taken: dict[str, list[DeploymentView]] = {}
    targets: set[str] = set()
    for name in sorted(groups):
        deps = groups[name]
        ours = [d for d in deps if is_ours(d)]
        others = [d for d in deps if not is_ours(d)]
        if not others or not any(d in ours for d in first(deps)):
            continue
        other_orders = [d.order for d in others if d.order is not None]
        changes: dict[str, int | None] = {}
        if not other_orders:
            # Nobody has an order yet: give the others 1 so ours can rank behind them.
            changes.update({d.id: 1 for d in others})
            other_orders = [1]
        behind = max(other_orders) + 1
        changes.update({d.id: behind for d in ours if d.order is None or d.order < behind})
        for dep in deps:
            if dep.id in changes:
                new[dep.id] = changes[dep.id]
                old[dep.id] = dep.order
        moved.append(name)
        taken[name] = ours
        after = [
            DeploymentView(d.id, d.model_name, d.provider, changes.get(d.id, d.order), d.model)
            for d in deps
        ]
        targets.update(label(d) for d in first(after))
    if not moved:
        return None
    return _Moves(new, old, moved, sorted(targets), _served(groups, taken))


def plan_failover(
    deployments: Iterable[DeploymentView], provider: str, model: str | None = None
) -> FailoverPlan | None:
    """New orders that move traffic off ``provider`` (only its deployments serving ``model``
    when given) in every model group where it is first and another deployment can take over;
    None when no group qualifies."""

    def ours(d: DeploymentView) -> bool:
        return d.provider == provider and (not model or model in (d.model, f"{provider}/{d.model}"))

    if model:
        moves = _move(_groups(deployments), ours, lambda d: f"{d.provider}/{d.model}")
    else:
        moves = _move(_groups(deployments), ours, lambda d: d.provider)
    if moves is None:
        return None
    params = {"provider": provider} | ({"model": model} if model else {})
    source = f"{provider}/{model}" if model else provider
    return FailoverPlan(
        moves.new,
        moves.old,
        moves.groups,
        source,
        moves.targets,
        params=params,
        served=moves.served,
    )


def plan_group_failover(deployments: Iterable[DeploymentView], group: str) -> FailoverPlan | None:
    """New orders that move model group ``group`` off the deployment(s) it routes to first,
    onto its next deployment(s); None when the group has no other deployment."""
    views = list(deployments)
    deps = [d for d in views if d.model_name == group]
    primary = {d.id for d in first(deps)}
    moves = _move({group: deps}, lambda d: d.id in primary, lambda d: d.id)
    if moves is None:
        return None
    # Whether another group shares a served model is a question about every group.
    taken = {group: [d for d in deps if d.id in primary]}
    return FailoverPlan(
        moves.new,
        moves.old,
        moves.groups,
        ", ".join(sorted(primary)),
        moves.targets,
        action_type="failover_model_group",
        params={"model_group": group},
        served=_served(_groups(views), taken),
    )
