"""The gateway's topology, learned from its own traffic, and which alert explains which.

Scopes alone say that ``{provider: openai, model: gpt-4o}`` sits inside ``{provider: openai}``.
They cannot say that a fallback storm on model group ``gpt-4o`` or an error burst on key
``search-prod`` is caused by openai failing: that is only visible in the requests themselves
(whose failures were served by whom). ``Topology`` answers those questions from the records of
the current tick, and remembers the stable facts (model -> provider, key -> team, session ->
workflow) it has seen.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from gatewarden.aggregate import GATEWAY_PROVIDER
from gatewarden.models import scope_key

#: Scope labels that are record columns (a scope may also carry e.g. ``source``).
_COLUMNS = ("provider", "model", "requested_model", "team", "api_key", "workflow", "session_id")


def nested(inner: Mapping[str, str], outer: Mapping[str, str]) -> bool:
    """``inner`` lies inside ``outer``: it carries every label of ``outer`` with equal values."""
    return bool(outer) and inner != outer and all(inner.get(k) == v for k, v in outer.items())


class _TickColumns:
    """The current tick's records as numpy arrays, label columns factorised once: a share
    question is then a few integer comparisons instead of pandas string masks (which cost
    ~4 ms per question at a few thousand rows, and an outage asks hundreds)."""

    def __init__(self, records: pd.DataFrame) -> None:
        self.n = len(records)
        self.codes: dict[str, npt.NDArray[np.intp]] = {}
        self.index: dict[str, dict[str, int]] = {}
        for label in _COLUMNS:
            if label not in records.columns:
                continue
            codes, uniques = pd.factorize(records[label].to_numpy(dtype=object))
            self.codes[label] = codes
            self.index[label] = {str(value): i for i, value in enumerate(uniques)}
        status = records["status"].to_numpy(dtype=np.int64)
        gateway = (records["provider"] == GATEWAY_PROVIDER).to_numpy(dtype=bool)
        self.failed = ((status >= 500) | (status == 429)) & ~gateway
        self.primary_failed = self.failed & ~records["fallback"].to_numpy(dtype=bool)
        self.streamed = ~np.isnan(records["ttft_ms"].to_numpy(dtype=np.float64, na_value=np.nan))
        self.cost = records["cost_usd"].to_numpy(dtype=np.float64)

    def mask(self, scope: Mapping[str, str]) -> npt.NDArray[np.bool_] | None:
        """Rows inside ``scope``; None when a label is not a record column."""
        inside = np.ones(self.n, dtype=bool)
        for label, value in scope.items():
            if label not in self.codes:
                return None
            code = self.index[label].get(value)
            if code is None:
                return np.zeros(self.n, dtype=bool)
            inside &= self.codes[label] == code
        return inside


class Topology:
    def __init__(self) -> None:
        self.model_provider: dict[str, str] = {}
        self.key_team: dict[str, str] = {}
        self.session_workflow: dict[str, str] = {}
        self._records = pd.DataFrame()
        self._columns: _TickColumns | None = None
        self._shares: dict[tuple[str, str, str], float] = {}

    def observe(self, records: pd.DataFrame) -> None:
        """Remember this tick's records (for share questions) and the stable edges they show."""
        self._records = records
        self._columns = None  # built on the first share question of the tick
        self._shares.clear()
        if records.empty:
            return
        for child, parent, table in (
            ("model", "provider", self.model_provider),
            ("api_key", "team", self.key_team),
            ("session_id", "workflow", self.session_workflow),
        ):
            pairs = records[[child, parent]].dropna().drop_duplicates(child, keep="last")
            table.update(zip(pairs[child].astype(str), pairs[parent].astype(str), strict=True))

    def share(self, scope: Mapping[str, str], cause: Mapping[str, str], *, kind: str) -> float:
        """Share of the symptom scope's relevant traffic that went through ``cause``'s scope.

        Relevant = failed calls for error/fallback symptoms (who failed them?), streaming calls
        for TTFT, spend for cost, and all calls for traffic. 0.0 when nothing is known.
        """
        key = (scope_key(scope), scope_key(cause), kind)
        if key not in self._shares:
            self._shares[key] = self._share(scope, cause, kind)
        return self._shares[key]

    def _share(self, scope: Mapping[str, str], cause: Mapping[str, str], kind: str) -> float:
        if self._records.empty:
            return 0.0
        if self._columns is None:
            self._columns = _TickColumns(self._records)
        columns = self._columns
        rows = columns.mask(scope)
        inside = columns.mask(cause)
        if rows is None or inside is None:
            return 0.0
        weights: npt.NDArray[np.float64]
        if kind == "error_rate":
            # Gateway-side rejections never reached a provider: they are not its failures.
            weights = (rows & columns.failed).astype(np.float64)
        elif kind == "fallback_storm":
            weights = (rows & columns.primary_failed).astype(np.float64)
        elif kind == "ttft":
            weights = (rows & columns.streamed).astype(np.float64)
        elif kind == "cost":
            weights = np.where(rows, columns.cost, 0.0)
        else:
            weights = rows.astype(np.float64)
        total = float(weights.sum())
        if total <= 0:
            return 0.0
        return float(weights[inside].sum()) / total

    def parent_of(self, scope: Mapping[str, str]) -> dict[str, str]:
        """Learned parents of a scope's labels (a key's team, a session's workflow...)."""
        parents: dict[str, str] = {}
        if "model" in scope and scope["model"] in self.model_provider:
            parents["provider"] = self.model_provider[scope["model"]]
        if "api_key" in scope and scope["api_key"] in self.key_team:
            parents["team"] = self.key_team[scope["api_key"]]
        if "session_id" in scope and scope["session_id"] in self.session_workflow:
            parents["workflow"] = self.session_workflow[scope["session_id"]]
        return parents
