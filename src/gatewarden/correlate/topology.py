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

import pandas as pd

#: Scope labels that are record columns (a scope may also carry e.g. ``source``).
_COLUMNS = ("provider", "model", "requested_model", "team", "api_key", "workflow", "session_id")


def nested(inner: Mapping[str, str], outer: Mapping[str, str]) -> bool:
    """``inner`` lies inside ``outer``: it carries every label of ``outer`` with equal values."""
    return bool(outer) and inner != outer and all(inner.get(k) == v for k, v in outer.items())


class Topology:
    def __init__(self) -> None:
        self.model_provider: dict[str, str] = {}
        self.key_team: dict[str, str] = {}
        self.session_workflow: dict[str, str] = {}
        self._records = pd.DataFrame()

    def observe(self, records: pd.DataFrame) -> None:
        """Remember this tick's records (for share questions) and the stable edges they show."""
        self._records = records
        if records.empty:
            return
        for child, parent, table in (
            ("model", "provider", self.model_provider),
            ("api_key", "team", self.key_team),
            ("session_id", "workflow", self.session_workflow),
        ):
            pairs = records[[child, parent]].dropna().drop_duplicates(child, keep="last")
            table.update(zip(pairs[child].astype(str), pairs[parent].astype(str), strict=True))

    def _matching(self, scope: Mapping[str, str]) -> pd.DataFrame:
        frame = self._records
        if frame.empty:
            return frame
        mask = pd.Series(True, index=frame.index)
        for label, value in scope.items():
            if label not in _COLUMNS:
                return frame.iloc[0:0]
            mask &= frame[label] == value
        return frame.loc[mask]

    def share(self, scope: Mapping[str, str], cause: Mapping[str, str], *, kind: str) -> float:
        """Share of the symptom scope's relevant traffic that went through ``cause``'s scope.

        Relevant = failed calls for error/fallback symptoms (who failed them?), streaming calls
        for TTFT, spend for cost, and all calls for traffic. 0.0 when nothing is known.
        """
        frame = self._matching(scope)
        if frame.empty or any(label not in _COLUMNS for label in cause):
            return 0.0
        if kind in ("error_rate", "fallback_storm"):
            # Gateway-side rejections never reached a provider: they are not its failures.
            frame = frame.loc[(frame["status"] >= 500) | (frame["status"] == 429)]
            frame = frame.loc[frame["provider"] != "gateway"]
            if kind == "fallback_storm":
                frame = frame.loc[~frame["fallback"]]
            weights = pd.Series(1.0, index=frame.index)
        elif kind == "ttft":
            frame = frame.loc[frame["ttft_ms"].notna()]
            weights = pd.Series(1.0, index=frame.index)
        elif kind == "cost":
            weights = frame["cost_usd"].astype(float)
        else:
            weights = pd.Series(1.0, index=frame.index)
        total = float(weights.sum())
        if total <= 0:
            return 0.0
        inside = pd.Series(True, index=frame.index)
        for label, value in cause.items():
            inside &= frame[label] == value
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
