"""Hand-built alert streams and the records behind them."""

from __future__ import annotations

from typing import Any

import pandas as pd

from gatewarden.correlate import CorrelateStage
from gatewarden.ingest.request_log import records_frame
from gatewarden.models import Alert, Evidence, Severity
from gatewarden.protocols import Tick


def alert(kind: str, ts: float, severity: Severity = Severity.WARNING, **scope: str) -> Alert:
    ev = Evidence(metric=kind, observed=0.4, expected=0.01, score=12.0, window_s=15)
    return Alert(kind=kind, scope=scope, detector="t", ts=ts, severity=severity, evidence=ev)


def calls(n: int, ts: float, **fields: Any) -> list[dict[str, Any]]:
    base: dict[str, Any] = {
        "api_key": "k0",
        "team": "t0",
        "workflow": "w0",
        "provider": "openai",
        "model": "gpt-4o",
        "requested_model": "gpt-4o",
        "status": 200,
        "latency_ms": 900.0,
        "ttft_ms": None,
        "input_tokens": 100,
        "output_tokens": 50,
        "cost_usd": 0.001,
        "fallback": False,
        "retries": 0,
        "session_id": None,
    }
    return [
        {**base, **fields, "ts": ts + i * 0.01, "request_id": f"{ts}-{i}-{id(fields)}"}
        for i in range(n)
    ]


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return records_frame(rows)


def tick(
    stage: CorrelateStage,
    now: float,
    alerts: list[Alert],
    clear: set[str] | None = None,
    records: pd.DataFrame | None = None,
) -> Tick:
    t = Tick(
        now=now,
        start=now - 15,
        records=records if records is not None else frame([]),
        alerts=alerts,
        clear=clear or set(),
    )
    stage.run(t)
    return t
