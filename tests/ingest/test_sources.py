"""Sources: JSONL tail across rotation, HTTP pull failures, Prometheus scrape of real output."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from gatewarden.errors import ScrapeError, SourceError
from gatewarden.ingest import (
    HttpRequestLogSource,
    JsonlTailSource,
    PrometheusScrapeSource,
    parse_exposition,
)
from tests.ingest.lines import record_line

FIXTURE = Path(__file__).parent.parent / "fixtures" / "litellm_metrics_excerpt.txt"


def rec(ts: float, rid: str) -> str:
    return record_line(rid, ts)


def test_jsonl_tail_reads_complete_lines_holds_future_and_survives_rotation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "requests.jsonl"
    source = JsonlTailSource(path)
    assert len(source.pull(100).records) == 0  # file does not exist yet: no error
    with path.open("w") as handle:
        handle.write(rec(10, "a") + "\n" + rec(120, "b") + "\n" + rec(20, "c")[:15])
    first = source.pull(100)
    assert first.records["request_id"].tolist() == ["a"]  # b is in the future, c incomplete
    with path.open("a") as handle:
        handle.write(rec(20, "c")[15:] + "\nbroken line\n")
    second = source.pull(200)
    assert sorted(second.records["request_id"]) == ["b", "c"]
    assert second.malformed == 1
    os.rename(path, tmp_path / "requests.jsonl.1")
    path.write_text(rec(210, "d") + "\n")
    assert source.pull(300).records["request_id"].tolist() == ["d"]


def test_http_source_failure_is_a_source_error_and_cursor_stays() -> None:
    calls: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url)
        if len(calls) == 1:
            return httpx.Response(503, text="down")
        return httpx.Response(200, text=rec(5, "a") + "\nnot json\n")

    client = httpx.Client(base_url="http://gw", transport=httpx.MockTransport(handler))
    source = HttpRequestLogSource("http://gw", client=client, since=0.0)
    with pytest.raises(SourceError, match="503"):
        source.pull(15.0)
    batch = source.pull(30.0)
    assert calls[1].params["since"] == "0.0"  # the failed window is asked for again
    assert calls[1].params["until"] == "30.0"
    assert (len(batch.records), batch.malformed) == (1, 1)
    assert source.cursor == 30.0


def test_parse_real_litellm_exposition() -> None:
    samples = parse_exposition(FIXTURE.read_text(), ts=42.0)
    names = {s.name for s in samples}
    assert "litellm_proxy_total_requests_metric_total" in names
    assert "litellm_llm_api_time_to_first_token_metric_bucket" in names
    failed = [s for s in samples if s.name == "litellm_proxy_failed_requests_metric_total"]
    assert failed and {"exception_status", "requested_model", "hashed_api_key"} <= set(
        failed[0].labels
    )
    assert all(s.ts == 42.0 for s in samples)


@pytest.mark.parametrize("garbage", ["{{{ 1 2", 'metric{le="0.1" 1', "x not_a_number"])
def test_garbage_exposition_is_a_scrape_error(garbage: str) -> None:
    with pytest.raises(ScrapeError):
        parse_exposition(garbage, ts=0)


def test_scrape_source_counts_garbage_instead_of_failing() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, text="{{{")))
    batch = PrometheusScrapeSource("http://gw/metrics", client=client).pull(1.0)
    assert batch.malformed == 1 and batch.samples == []


def test_request_log_cursor_survives_a_restart() -> None:
    from gatewarden.clock import VirtualClock
    from gatewarden.pipeline import Pipeline
    from gatewarden.store import SQLiteStore

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["since"])
        return httpx.Response(200, text="")

    def source() -> HttpRequestLogSource:
        client = httpx.Client(base_url="http://gw", transport=httpx.MockTransport(handler))
        return HttpRequestLogSource("http://gw", client=client, since=0.0, name="logs")

    store = SQLiteStore(":memory:")
    clock = VirtualClock(100.0)
    first = Pipeline([source()], [], clock, tick_seconds=15, checkpoints=store)
    first.tick(115.0)
    first.tick(130.0)
    # The daemon restarts much later: it resumes from the last completed tick's cursor.
    second = Pipeline([source()], [], clock, tick_seconds=15, checkpoints=store)
    second.tick(400.0)
    assert asked == ["0.0", "115.0", "130.0"]


def test_a_damaged_request_log_checkpoint_keeps_the_configured_start() -> None:
    from gatewarden.clock import VirtualClock
    from gatewarden.pipeline import Pipeline
    from gatewarden.store import SQLiteStore

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["since"])
        return httpx.Response(200, text="")

    store = SQLiteStore(":memory:")
    store.put_state("source.logs.checkpoint", "not-a-number")
    client = httpx.Client(base_url="http://gw", transport=httpx.MockTransport(handler))
    source = HttpRequestLogSource("http://gw", client=client, since=50.0, name="logs")
    Pipeline([source], [], VirtualClock(100.0), tick_seconds=15, checkpoints=store).tick(115.0)
    assert asked == ["50.0"]
