"""Which keys carry a workflow's traffic: what ``throttle_workflow`` limits.

A workflow is a label of the request log, not an object of the gateway: LiteLLM can only limit
keys and teams. So a workflow is throttled through the keys that carried its calls lately --
the biggest spenders first, at most the action's ``max_keys`` (its blast radius) -- and the
engine writes them into the action before planning it, so the persisted intent (and its
inverse, each key's previous limits) names every key changed. A key shared with other
workflows is throttled for those too: the preview lists the keys so an approver sees it.

The window is kept in memory, one small table per tick; after a restart it fills again from
the next ticks (an action waiting for it retries with backoff). Within one run, the keys the
run's first ``throttle_workflow`` of a workflow chose are reused by its later ones, so "throttle
then block" acts on the same keys.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import pandas as pd

from gatewarden.models import GatewayAction
from gatewarden.remediate.runlog import RunLog

#: ticks of traffic remembered (5 minutes at the default 15 s tick)
WINDOW_TICKS = 20
_COLUMNS = ("workflow", "api_key", "cost_usd")


class WorkflowTraffic:
    """Requests and spend per (workflow, key) over the last ``ticks`` ticks."""

    def __init__(self, ticks: int = WINDOW_TICKS) -> None:
        self._ticks: deque[dict[tuple[str, str], tuple[int, float]]] = deque(maxlen=ticks)

    def observe(self, records: pd.DataFrame) -> None:
        """Remember one tick's records (an empty tick counts: it ages the window)."""
        table: dict[tuple[str, str], tuple[int, float]] = {}
        if not records.empty and all(c in records.columns for c in _COLUMNS):
            rows = records.loc[records["workflow"].notna(), list(_COLUMNS)]
            if not rows.empty:
                grouped = rows.groupby(["workflow", "api_key"], sort=False, observed=True)
                stats = grouped["cost_usd"].agg(["size", "sum"])
                for (workflow, key), n, cost in zip(
                    stats.index, stats["size"], stats["sum"], strict=True
                ):
                    table[(str(workflow), str(key))] = (int(n), float(cost))
        self._ticks.append(table)

    def keys_of(self, workflow: str, limit: int) -> list[str]:
        """The keys that carried ``workflow``, biggest spend (then most calls) first."""
        totals: dict[str, tuple[int, float]] = {}
        for table in self._ticks:
            for (wf, key), (n, cost) in table.items():
                if wf == workflow:
                    seen = totals.get(key, (0, 0.0))
                    totals[key] = (seen[0] + n, seen[1] + cost)
        ranked = sorted(totals, key=lambda k: (-totals[k][1], -totals[k][0], k))
        return ranked[:limit]


def _chosen_before(run: RunLog, workflow: str) -> list[str] | None:
    for index in sorted(run.steps):
        intended = run.steps[index].intended
        action = intended.payload.get("action") if intended is not None else None
        if not isinstance(action, Mapping) or action.get("type") != "throttle_workflow":
            continue
        params = action.get("params")
        if isinstance(params, Mapping) and params.get("workflow") == workflow:
            keys = params.get("keys")
            if isinstance(keys, list) and keys:
                return [str(k) for k in keys]
    return None


def with_keys(action: GatewayAction, run: RunLog, traffic: WorkflowTraffic) -> GatewayAction:
    """``action`` with its ``keys`` filled in when it is a ``throttle_workflow`` without them;
    unchanged when none can be found (planning then refuses it, saying why)."""
    if action.type != "throttle_workflow" or action.params.get("keys"):
        return action
    workflow = str(action.params.get("workflow", ""))
    raw_limit = action.params.get("max_keys", 5)
    limit = raw_limit if isinstance(raw_limit, int) and raw_limit > 0 else 5
    keys = _chosen_before(run, workflow) or traffic.keys_of(workflow, limit)
    if not keys:
        return action
    return action.model_copy(update={"params": {**action.params, "keys": keys[:limit]}})


__all__ = ["WINDOW_TICKS", "WorkflowTraffic", "with_keys"]
