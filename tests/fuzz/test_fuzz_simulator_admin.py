"""Hostile requests to the simulator's LiteLLM-shaped admin API: never a 500.

One simulator serves every example (its state changes as the examples block keys, reorder
deployments and set fallbacks, which is part of the point), through starlette's TestClient.
Bodies are shaped like the real ones with hostile values, or arbitrary JSON, or raw bytes;
auth is right, wrong or missing. Every answer is < 500, and every 4xx carries LiteLLM's
``{"error": {"message": ...}}`` body.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewarden.clock import VirtualClock
from gatewarden.simulator import Simulator, create_app
from tests.fuzz.settings import fuzz
from tests.simulator.helpers import MASTER, START, scenario

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx; the client works as is
    from starlette.testclient import TestClient

SIM = Simulator(scenario(duration_s=3600.0), VirtualClock(START))
# hashed tokens (accepted, like the real proxy) and aliases (refused by the key endpoints)
KEYS = [k.hashed for k in SIM.catalog.keys] + [k.alias for k in SIM.catalog.keys]
DEPLOYMENTS = [d.id for d in SIM.state.deployments()]
GROUPS = sorted(SIM.state.groups())

AUTH = st.sampled_from(
    [
        {"Authorization": f"Bearer {MASTER}"},
        {"Authorization": f"Bearer {MASTER}"},
        {"x-litellm-api-key": MASTER},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic " + MASTER},
        {},
    ]
)

# NaN and Infinity included: json.dumps writes them as bare tokens, as a sloppy client would.
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from([*KEYS, *DEPLOYMENTS, *GROUPS, "", "sk-unknown", "general", "../x"]),
)
value = scalar | st.lists(scalar, max_size=4) | st.dictionaries(st.text(max_size=6), scalar)
key_ref = st.sampled_from(KEYS) | scalar


def shaped(path: str) -> st.SearchStrategy[Any]:
    """Bodies with the fields ``path`` reads, holding good or hostile values."""
    if path in ("/key/block", "/key/unblock"):
        return st.fixed_dictionaries({"key": key_ref})
    if path == "/key/update":
        return st.fixed_dictionaries(
            {"key": key_ref},
            optional={"rpm_limit": value, "tpm_limit": value, "max_budget": value},
        )
    if path == "/model/update":
        params = st.fixed_dictionaries({}, optional={"order": value, "rpm": value, "tpm": value})
        return st.fixed_dictionaries(
            {},
            optional={
                "model_info": st.fixed_dictionaries({"id": st.sampled_from(DEPLOYMENTS) | scalar})
                | value,
                "litellm_params": params | value,
            },
        )
    return st.fixed_dictionaries(  # /fallback
        {"model": st.sampled_from(GROUPS) | scalar},
        optional={
            "fallback_models": st.lists(st.sampled_from(GROUPS) | scalar, max_size=3) | value,
            "fallback_type": st.sampled_from(["general", "context_window"]) | scalar,
        },
    )


POSTS = ["/key/block", "/key/unblock", "/key/update", "/model/update", "/fallback"]


@st.composite
def post_request(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(st.sampled_from(POSTS))
    kind = draw(st.sampled_from(["shaped", "shaped", "shaped", "json", "bytes"]))
    if kind == "bytes":
        return path, draw(st.binary(max_size=40))
    body = draw(shaped(path)) if kind == "shaped" else draw(value)
    return path, json.dumps(body).encode()


text_param = st.text(max_size=8)
get_request = st.one_of(
    st.tuples(st.just("/key/info"), st.fixed_dictionaries({"key": st.sampled_from(KEYS)})),
    st.tuples(st.just("/key/info"), st.dictionaries(st.sampled_from(["key", "x"]), text_param)),
    st.tuples(st.just("/model/info"), st.just({})),
    st.tuples(
        (st.sampled_from(GROUPS) | text_param).map(lambda g: "/fallback/" + quote(g, safe="")),
        st.just({}),
    ),
    st.tuples(
        st.just("/gatewarden/requests"),
        # Always an "until" near the start: the whole history would be most of the cost.
        st.fixed_dictionaries(
            {"until": st.sampled_from(["0", "inf", "x", str(START + 30)]) | text_param},
            optional={
                "since": st.sampled_from(["", "0", "-1", "1e309", "nan", "x", str(START)])
                | text_param
            },
        ),
    ),
    st.tuples(st.just("/metrics"), st.just({})),
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(SIM), raise_server_exceptions=False) as c:
        yield c


def check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]


@fuzz(800)
@given(request=post_request(), auth=AUTH, advance=st.sampled_from([0.0, 0.0, 1.0, 5.0]))
def test_admin_posts_never_fail_with_a_500(
    client: TestClient, request: tuple[str, bytes], auth: dict[str, str], advance: float
) -> None:
    SIM.clock.advance(advance)  # let traffic run on whatever the examples did to the state
    path, body = request
    check(client.post(path, content=body, headers=auth))


@fuzz(300)
@given(request=get_request, auth=AUTH, delete=st.booleans())
def test_admin_reads_never_fail_with_a_500(
    client: TestClient, request: tuple[str, dict[str, str]], auth: dict[str, str], delete: bool
) -> None:
    path, params = request
    if delete and path.startswith("/fallback/"):
        check(client.delete(path, headers=auth))
    else:
        check(client.get(path, params=params, headers=auth))


# -- bugs found earlier: their minimal inputs, kept as regression tests ----------------------

AUTHED = {"Authorization": f"Bearer {MASTER}"}


def test_a_nan_budget_is_a_400_and_does_not_poison_the_key() -> None:
    sim = Simulator(scenario(duration_s=600.0), VirtualClock(START))
    with TestClient(create_app(sim), raise_server_exceptions=False) as c:
        key = sim.catalog.keys[0].hashed
        body = '{"key": "%s", "max_budget": NaN}' % key  # noqa: UP031 - JSON with a NaN
        assert c.post("/key/update", content=body, headers=AUTHED).status_code == 400
        assert c.get("/key/info", params={"key": key}, headers=AUTHED).status_code == 200


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"key": ' + "1" * 5000 + "}"])
def test_pathological_json_bodies_are_a_400(client: TestClient, body: str) -> None:
    check(client.post("/key/block", content=body, headers=AUTHED))
