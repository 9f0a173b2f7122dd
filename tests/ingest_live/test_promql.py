"""PromQL query_range source against a fake Prometheus HTTP API (httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import ValidationError

from gatewarden.errors import SourceError
from gatewarden.ingest.promql import PromQLQuery, PromQLSource
from gatewarden.ingest.sample_frames import frames_from_samples

ERRORS = PromQLQuery(
    name="model-errors",
    level="model",
    metric="errors",
    query='sum by (api_provider, litellm_model_name) (increase(x{exception_status=~"5.."}[1m]))',
    labels={"provider": "api_provider", "model": "litellm_model_name"},
)
REQUESTS = ERRORS.model_copy(
    update={
        "name": "model-requests",
        "metric": "requests",
        "query": "sum by (api_provider, litellm_model_name) (increase(y[1m]))",
    }
)


def matrix(*series: tuple[dict[str, str], list[list[object]]]) -> dict[str, object]:
    result = [{"metric": m, "values": v} for m, v in series]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


class FakePrometheus:
    def __init__(self) -> None:
        self.calls: list[httpx.Request] = []
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.status != 200:
            return httpx.Response(self.status, text="down")
        query = request.url.params["query"]
        gpt = {"api_provider": "openai", "litellm_model_name": "gpt-4o"}
        if query == "broken(":
            body = {"status": "error", "errorType": "bad_data", "error": "parse error at char 8"}
            return httpx.Response(400, json=body)
        if "exception_status" in query:
            # Two points in the window: the newest is this tick's; NaN points are skipped.
            return httpx.Response(
                200,
                json=matrix(
                    (gpt, [[100, "1"], [115, "3"], [130, "NaN"]]),
                    ({"api_provider": "openai"}, [[115, "2"]]),  # lacks the model label
                ),
            )
        return httpx.Response(200, json=matrix((gpt, [[115, "40"]])))


def source(fake: FakePrometheus, *queries: PromQLQuery) -> PromQLSource:
    client = httpx.Client(base_url="http://prom:9090", transport=httpx.MockTransport(fake))
    return PromQLSource("http://prom:9090", list(queries), step=15, client=client)


def test_query_range_results_become_frame_cells() -> None:
    fake = FakePrometheus()
    batch = source(fake, ERRORS, REQUESTS).pull(130.0)
    frame = frames_from_samples(batch.samples, window=15)["model"]
    row = frame.loc["provider=openai,model=gpt-4o"]
    assert (row["errors"], row["requests"], row["error_rate"]) == (3.0, 40.0, 3 / 40)
    params = fake.calls[0].url.params
    assert (params["start"], params["end"], params["step"]) == ("115.0", "130.0", "15")
    assert batch.malformed == 0


def test_windows_follow_the_cursor_and_catch_up_at_most_lookback() -> None:
    fake = FakePrometheus()
    src = source(fake, REQUESTS)
    src.pull(130.0)
    src.pull(145.0)
    assert fake.calls[-1].url.params["start"] == "130.0"
    fake.status = 503
    with pytest.raises(SourceError, match="503"):
        src.pull(160.0)
    fake.status = 200
    src.pull(1000.0)  # long outage: only the last lookback (300 s) is asked for
    assert fake.calls[-1].url.params["start"] == "700.0"


def test_a_rejected_query_is_counted_not_fatal() -> None:
    fake = FakePrometheus()
    bad = REQUESTS.model_copy(update={"name": "bad", "query": "broken("})
    batch = source(fake, bad, REQUESTS).pull(130.0)
    assert batch.malformed == 1 and "parse error" in batch.problems[0]
    assert len(batch.samples) == 1


def test_transport_failure_is_a_source_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.Client(base_url="http://prom", transport=httpx.MockTransport(refuse))
    with pytest.raises(SourceError, match="ConnectError"):
        PromQLSource("http://prom", [REQUESTS], client=client).pull(1.0)


def test_queries_are_validated() -> None:
    with pytest.raises(ValidationError, match="unknown level"):
        PromQLQuery(name="q", query="up", level="nope", metric="errors")
    with pytest.raises(ValidationError, match="unknown metric"):
        PromQLQuery(name="q", query="up", level="model", metric="nope")
    assert json.loads(ERRORS.model_dump_json())["labels"]["provider"] == "api_provider"


def test_garbled_series_in_a_valid_answer_are_skipped_not_raised() -> None:
    gpt = {"api_provider": "openai", "litellm_model_name": "gpt-4o"}
    garbled = [
        {"metric": ["not", "an", "object"], "values": [[115, "9"]]},
        {"metric": gpt, "values": [{"ts": 115, "value": "9"}]},  # a point that is an object
        {"metric": gpt, "values": [[115, "5"]]},
    ]
    answer = {"status": "success", "data": {"resultType": "matrix", "result": garbled}}
    client = httpx.Client(
        base_url="http://prom",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=answer)),
    )
    batch = PromQLSource("http://prom", [ERRORS], client=client).pull(130.0)
    assert [(s.labels, s.value) for s in batch.samples] == [
        ({"provider": "openai", "model": "gpt-4o"}, 5.0)
    ]
