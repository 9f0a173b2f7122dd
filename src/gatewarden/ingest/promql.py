"""Read a gateway's metrics from a Prometheus server (``/api/v1/query_range``).

For users whose gateway is already scraped: each configured query fills one column of one
level frame, e.g. ::

    - name: model-errors
      level: model
      metric: errors
      query: sum by (api_provider, litellm_model_name) (increase(
               litellm_deployment_failure_responses_total{exception_status=~"5..|429"}[1m]))
      labels: {provider: api_provider, model: litellm_model_name}

Every pull asks for ``[since, until]`` at ``step`` and keeps, per result series, the newest
point: the frame value of this tick (older points were the previous ticks'). Results become
frame samples (see :mod:`gatewarden.ingest.sample_frames`). Transport failures and 5xx raise
:class:`SourceError` (the window is asked for again next time); a query Prometheus rejects
(4xx, ``"status": "error"``) is a config problem, counted and reported, never fatal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatewarden.aggregate import LEVELS, METRICS
from gatewarden.errors import InputError, SourceError
from gatewarden.ingest.health import Figure
from gatewarden.ingest.request_log import empty_frame
from gatewarden.ingest.sample_frames import frame_sample
from gatewarden.models import Sample
from gatewarden.protocols import Batch


class PromQLQuery(BaseModel):
    """One query; ``labels`` maps scope labels to result labels (``provider: api_provider``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    level: str
    metric: str
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value not in LEVELS:
            raise ValueError(f"unknown level {value!r}; expected one of {', '.join(LEVELS)}")
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; expected one of {', '.join(METRICS)}")
        return value

    def scope(self, metric: dict[str, str]) -> dict[str, str] | None:
        """The scope of one result series; None when it lacks a label the level needs."""
        scope: dict[str, str] = {}
        for label in LEVELS[self.level]:
            value = metric.get(self.labels.get(label, label))
            if value in (None, "", "None"):
                if self.level == "api_key" and label == "team":
                    continue
                return None
            scope[label] = str(value)
        return scope


class PromQLSource:
    def __init__(
        self,
        base_url: str,
        queries: Sequence[PromQLQuery],
        *,
        step: float = 15.0,
        since: float | None = None,
        lookback: float = 300.0,
        headers: dict[str, str] | None = None,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        name: str = "promql",
    ) -> None:
        self.name = name
        self.queries = list(queries)
        self.step = step
        self.lookback = lookback
        self.cursor = since
        self._client = client or httpx.Client(
            base_url=base_url, timeout=timeout, headers=headers or {}
        )

    def pull(self, until: float) -> Batch:
        # After an outage of the source, catch up at most ``lookback`` seconds.
        if self.cursor is None:
            start = until - self.step
        else:
            start = max(self.cursor, until - self.lookback)
        samples: list[Sample] = []
        problems: list[str] = []
        for query in self.queries:
            try:
                samples.extend(self._run(query, start, until))
            except _QueryRejected as exc:
                problems.append(f"{self.name}: query {query.name!r}: {exc}")
        self.cursor = until
        return Batch(
            records=empty_frame(), samples=samples, malformed=len(problems), problems=problems
        )

    def _run(self, query: PromQLQuery, start: float, end: float) -> list[Sample]:
        params: dict[str, str | float] = {
            "query": query.query,
            "start": repr(start),
            "end": repr(end),
            "step": self.step,
        }
        try:
            response = self._client.get("/api/v1/query_range", params=params)
        except httpx.HTTPError as exc:
            raise SourceError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise SourceError(f"{self.name}: HTTP {response.status_code} from Prometheus")
        try:
            body = response.json()
        except json.JSONDecodeError as exc:
            raise _QueryRejected(f"HTTP {response.status_code}, not JSON") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise _QueryRejected(f"HTTP {response.status_code}: {str(error)[:200]}")
        data = body.get("data")
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            raise _QueryRejected("expected a matrix result")
        return self._samples(query, data.get("result"))

    def _samples(self, query: PromQLQuery, result: Any) -> list[Sample]:
        samples: list[Sample] = []
        for series in result if isinstance(result, list) else []:
            point = _newest(series)
            if point is None:
                continue
            metric = series.get("metric") or {}
            if not isinstance(metric, dict):
                continue  # a garbled series (Prometheus sends an object, maybe empty)
            scope = query.scope({str(k): str(v) for k, v in metric.items()})
            if scope is not None:
                samples.append(frame_sample(query.level, query.metric, scope, point[1], point[0]))
        return samples

    def health_details(self, now: float) -> dict[str, Figure]:
        lag = None if self.cursor is None else now - self.cursor
        return {"cursor": self.cursor, "cursor_lag_s": lag}

    def close(self) -> None:
        self._client.close()


class _QueryRejected(InputError):
    """Prometheus refused or garbled one query's answer (internal to this module)."""


def _newest(series: Any) -> tuple[float, float] | None:
    """The newest finite ``[ts, "value"]`` point of a matrix series."""
    if not isinstance(series, dict):
        return None
    values = series.get("values")
    for point in reversed(values if isinstance(values, list) else []):
        try:
            ts, value = float(point[0]), float(point[1])
        except (TypeError, ValueError, LookupError):
            continue  # LookupError: a point that is an object, or too short
        if math.isfinite(value):
            return ts, value
    return None
