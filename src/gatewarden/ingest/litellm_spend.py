"""Pull LiteLLM's spend logs (one row per request; needs the proxy's database) as records.

``GET /spend/logs/v2?start_date=..&end_date=..&page=..&page_size=..`` with the master key
(the older ``/spend/logs`` is deprecated upstream: unpaginated, capped at 10k rows and only
day-granular for date ranges). Field names are the ``LiteLLM_SpendLogs`` table's (1.106.2):

==================  ============================================================================
record              spend-log row
==================  ============================================================================
ts                  ``startTime``
request_id          ``request_id``
session_id          ``session_id``
api_key             ``metadata.user_api_key_alias``, else ``api_key`` (LiteLLM's hash of the key)
team                ``metadata.user_api_key_team_alias``, else ``team_id``
provider / model    ``custom_llm_provider`` (else ``metadata.error_information.llm_provider``)
                    / ``model``
requested_model     ``metadata.original_model_group``, else ``model_group``, else ``model``
status / error      ``status`` "success" -> 200; "failure" -> ``error_information.error_code``
                    (500 when not numeric) / ``error_information.error_class``
latency_ms          ``request_duration_ms``, else ``endTime - startTime``
ttft_ms             ``completionStartTime - startTime`` when before ``endTime`` (LiteLLM sets
                    it to ``endTime`` for non-streaming calls)
tokens / cost       ``prompt_tokens``, ``completion_tokens`` / ``spend``
fallback / retries  ``metadata.attempted_fallbacks > 0`` / ``metadata.attempted_retries``
==================  ============================================================================

``messages`` and ``response`` (prompt and completion text) are never read. LiteLLM writes spend
logs in batches, so every pull looks back ``lookback_s`` and skips request ids already
delivered; a late row counts in the tick it arrives in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from gatewarden.errors import SourceError
from gatewarden.ingest.health import Figure
from gatewarden.ingest.request_log import MAX_PROBLEMS, records_frame
from gatewarden.models import RequestRecord
from gatewarden.protocols import Batch


def _when(raw: object) -> float | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # LiteLLM stores UTC
    return parsed.timestamp()


def _metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    raw = row.get("metadata")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return {}
    return raw if isinstance(raw, dict) else {}


def _text(*values: object) -> str | None:
    for value in values:
        if isinstance(value, str) and value not in ("", "None"):
            return value
    return None


def _number(value: object, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return float(value)
    except ValueError:
        return default


def record_from_spend_log(row: Mapping[str, Any]) -> dict[str, Any]:
    """The request-log contract record of one spend-log row (validate it before use)."""
    meta = _metadata(row)
    error_info = meta.get("error_information") if isinstance(meta, dict) else None
    error_info = error_info if isinstance(error_info, dict) else {}
    start, end = _when(row.get("startTime")), _when(row.get("endTime"))
    first_token = _when(row.get("completionStartTime"))
    failed = row.get("status") == "failure"
    status = 200
    if failed:
        code = _number(error_info.get("error_code"), 500.0)
        status = int(code) if 400 <= code <= 599 else 500
    duration = row.get("request_duration_ms")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        latency = float(duration)
    else:
        latency = max(0.0, ((end or 0.0) - (start or 0.0)) * 1000.0)
    ttft = None
    if start is not None and first_token is not None and end is not None and first_token < end:
        ttft = max(0.0, (first_token - start) * 1000.0)
    model = _text(row.get("model")) or "unknown"
    return {
        "ts": start,
        "request_id": row.get("request_id"),
        "trace_id": _text(row.get("litellm_call_id")),
        "session_id": _text(row.get("session_id")),
        "api_key": _text(meta.get("user_api_key_alias"), row.get("api_key")) or "unknown",
        "team": _text(meta.get("user_api_key_team_alias"), row.get("team_id")),
        "workflow": None,
        "provider": _text(row.get("custom_llm_provider"), error_info.get("llm_provider"))
        or "unknown",
        "model": model,
        "requested_model": _text(meta.get("original_model_group"), row.get("model_group")) or model,
        "status": status,
        "error": (_text(error_info.get("error_class")) or "error") if failed else None,
        "latency_ms": latency,
        "ttft_ms": ttft,
        "input_tokens": int(_number(row.get("prompt_tokens"))),
        "output_tokens": int(_number(row.get("completion_tokens"))),
        "cost_usd": _number(row.get("spend")),
        "fallback": _number(meta.get("attempted_fallbacks")) > 0,
        "retries": int(_number(meta.get("attempted_retries"))),
    }


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


class LiteLLMSpendLogSource:
    """A :class:`~gatewarden.protocols.Source` over ``/spend/logs/v2``."""

    def __init__(
        self,
        base_url: str,
        master_key: str,
        *,
        path: str = "/spend/logs/v2",
        since: float | None = None,
        lookback_s: float = 120.0,
        page_size: int = 1000,
        max_pages: int = 50,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        name: str = "litellm_spend",
    ) -> None:
        self.name = name
        self.path = path
        self.cursor = since
        self.lookback_s = lookback_s
        self.page_size = page_size
        self.max_pages = max_pages
        self._seen: dict[str, float] = {}
        self._headers = {"Authorization": f"Bearer {master_key}"}
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout)

    def _page(self, start: float, until: float, page: int) -> dict[str, Any]:
        params: dict[str, str | int] = {
            "start_date": _utc(start),
            "end_date": _utc(until + 1.0),  # whole seconds, inclusive: rounded up
            "page": page,
            "page_size": self.page_size,
            "sort_by": "startTime",
            "sort_order": "asc",
        }
        try:
            response = self._client.get(self.path, params=params, headers=self._headers)
            response.raise_for_status()
            body = response.json()
        except httpx.HTTPError as exc:
            # Never echo the request (it holds the key); the status and type are enough.
            raise SourceError(f"{self.name}: {type(exc).__name__} from {self.path}") from exc
        except json.JSONDecodeError as exc:
            raise SourceError(f"{self.name}: {self.path} answered non-JSON") from exc
        if isinstance(body, list):  # the deprecated /spend/logs answers a bare list
            return {"data": body, "total_pages": 1}
        if not isinstance(body, dict):
            raise SourceError(f"{self.name}: unexpected answer from {self.path}")
        return body

    def pull(self, until: float) -> Batch:
        cursor = until - self.lookback_s if self.cursor is None else self.cursor
        start = cursor - self.lookback_s
        rows: list[Any] = []
        page, pages = 1, 1
        while page <= min(pages, self.max_pages):
            body = self._page(start, until, page)
            data = body.get("data")
            rows.extend(data if isinstance(data, list) else [])
            pages = int(_number(body.get("total_pages"), 1.0))
            page += 1
        good: list[RequestRecord] = []
        problems: list[str] = []
        malformed = 0
        for row in rows:
            if not isinstance(row, dict) or row.get("request_id") in self._seen:
                continue
            try:
                record = RequestRecord.model_validate(record_from_spend_log(row))
            except ValidationError as exc:
                malformed += 1
                if len(problems) < MAX_PROBLEMS:
                    where = ".".join(str(p) for p in exc.errors()[0]["loc"])
                    problems.append(f"{self.name}: row {row.get('request_id')!r}: {where}")
                continue
            if record.ts >= until:
                continue  # a later pull delivers it
            self._seen[record.request_id] = record.ts
            good.append(record)
        self.cursor = until
        self._seen = {k: ts for k, ts in self._seen.items() if ts >= start - self.lookback_s}
        return Batch(records=records_frame(good), malformed=malformed, problems=problems)

    def health_details(self, now: float) -> dict[str, Figure]:
        lag = None if self.cursor is None else now - self.cursor
        return {"cursor": self.cursor, "cursor_lag_s": lag}

    def close(self) -> None:
        self._client.close()
