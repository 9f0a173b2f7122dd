"""One request-log line of the contract, for the ingest and source-health tests."""

from __future__ import annotations

import json
from typing import Any

MINIMAL: dict[str, Any] = {
    "api_key": "k",
    "provider": "openai",
    "model": "gpt-4o",
    "requested_model": "gpt-4o",
    "status": 200,
    "latency_ms": 5,
    "input_tokens": 1,
    "output_tokens": 1,
    "cost_usd": 0,
}


def record_line(rid: str, ts: float = 10.0) -> str:
    """A minimal valid JSONL record (no trailing newline)."""
    return json.dumps({"ts": ts, "request_id": rid, **MINIMAL})
