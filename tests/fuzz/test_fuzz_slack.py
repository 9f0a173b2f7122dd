"""Hostile requests to ``POST /slack/interactions``: a clear 4xx or a 200, never an exception.

One handler (the daemon's wiring: ``build_interactions``) serves every example, on a store
holding a real approval gate and incident, with a local Slack stand-in answering the replies
it sends after the answer. Examples are Slack's own payloads (block_actions for each of our
buttons, the reason modal's view_submission) with one node replaced, deleted or joined by a
hostile value, a button ``value`` that is hostile JSON text, payload fields that are not JSON,
arbitrary form bodies and bytes; each is signed correctly, with the wrong secret, with a
garbled signature, or with a stale, future, overflowing or non-numeric timestamp.

The contract: ``handle`` returns 200, 400 (malformed), 401 (unsigned, stale, replayed), 403
(another workspace) or 413 (too large); anything but a 200 records nothing; a request that is
not correctly signed is a 401 whatever its body; and every follow-up job (ephemeral replies,
modals) runs without raising.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from gatewarden.clock import VirtualClock
from gatewarden.notify.config import NotifyConfig, SlackConfig, build_interactions
from gatewarden.notify.slack import SlackInteractions, slack_routes
from gatewarden.notify.slack.interactions import MAX_BODY, Outcome
from gatewarden.notify.slack.modal import reason_modal
from gatewarden.notify.slack.signing import Rejection
from gatewarden.store.sqlite import SQLiteStore
from tests.fuzz.mutation import OPS, mutate, paths
from tests.fuzz.settings import fuzz
from tests.notify.factory import INCIDENT, RUN, T0
from tests.notify.slack_standin import CHANNEL_ID, SlackStandin
from tests.notify.slackkit import (
    SIGNING_SECRET,
    TEAM,
    TOKEN,
    approval_gate,
    block_action,
    signed_headers,
    view_submission,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx; the client works as is
    from starlette.testclient import TestClient

NOW = int(T0 + 100)
GROUP = "S0ONCALL01"
ENV = {"GATEWARDEN_SLACK_TOKEN": TOKEN, "GATEWARDEN_SLACK_SIGNING_SECRET": SIGNING_SECRET}
ANSWERS = {200, 400, 401, 403, 413}


@dataclass
class World:
    store: SQLiteStore
    handler: SlackInteractions
    client: TestClient
    #: Slack's timestamps are judged on the wall clock; each request moves it on a second, so a
    #: re-run example (hypothesis replays a failure to confirm it) is signed anew, not a replay.
    wall: VirtualClock

    def stamp(self) -> int:
        return int(self.wall.advance(1.0))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with SlackStandin(TOKEN, usergroups={GROUP: ["U7", "U8"]}) as slack:
        store = SQLiteStore(str(tmp_path_factory.mktemp("slack-fuzz") / "events.db"))
        approval_gate(store, approvers=["U1", "U2", GROUP], quorum=2)
        clock, wall = VirtualClock(NOW), VirtualClock(NOW)
        cfg = NotifyConfig(
            slack=SlackConfig(channel=CHANNEL_ID, base_url=slack.base_url, team_id=TEAM)
        )
        handler = build_interactions(cfg, ENV, store, clock, wall_clock=wall)
        assert handler is not None
        app = Starlette(routes=slack_routes(handler))
        yield World(store, handler, TestClient(app, raise_server_exceptions=True), wall)
        store.close()


# -- payloads -----------------------------------------------------------------------------------

HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1, 2**63, 10**30, 1.5, 1e308, math.nan, math.inf, -math.inf, "",
    " ", "0", "00", "-1", "1e3", "²", "\u0661", "½", "9" * 5000, "x" * 5000, "\x00", "é" * 20,
    "U1", "U9", GROUP, TEAM, "T0OTHER", RUN, INCIDENT, "approve", "deny", "reason", "snooze",
    "granted", "denied", "block_actions", "view_submission", "gatewarden_decision", [], [None],
    [[[]]], {}, {"id": "U1"}, {"id": ["U1"]}, {"a": {"b": {}}},
    # JSON text, for the fields that hold JSON (button values, the modal's private_metadata)
    "[" * 5000 + "]" * 5000, '{"run_id": "run-1", "step": 1' + "0" * 5000 + "}",
    '{"run_id": "run-1", "step": 0, "channel": null}', '{"run_id": 1, "step": "0"}',
]  # fmt: skip
#: Button values: the JSON text our buttons carry, and what else it could say.
VALUES = [
    json.dumps({"run_id": RUN, "step": "0"}),
    json.dumps({"run_id": RUN, "step": 0}),
    json.dumps({"run_id": RUN, "step": "²"}),  # isdigit() says yes, int() says no
    json.dumps({"run_id": RUN, "step": "9" * 5000}),
    json.dumps({"run_id": RUN, "step": 10**30}),
    json.dumps({"run_id": RUN, "step": -1}),
    json.dumps({"run_id": RUN, "step": True}),
    json.dumps({"run_id": "r" * 4000, "step": 0}),  # too long for a modal's metadata
    json.dumps({"run_id": None, "step": 0}),
    json.dumps({"run_id": [RUN], "step": [0]}),
    json.dumps({"incident_id": INCIDENT}),
    json.dumps({"incident_id": "inc-unknown"}),
    json.dumps({"incident_id": {"x": 1}}),
    '{"step": 1' + "0" * 5000 + "}",  # int literal past 4300 digits
    "[" * 5000 + "]" * 5000,  # nesting past the recursion limit
    '{"run_id": "run-1", "step": NaN}',
    "",
    "null",
    "[]",
    '"text"',
    "{",
    "\udc80",
]


def seeds() -> list[dict[str, Any]]:
    """Slack's payloads for each of our buttons and for the reason modal's submission."""
    out = []
    for user in ["U1", "U2", "U7", "U9"]:
        out.append(block_action("approve", {"run_id": RUN, "step": "0"}, user=user))
        out.append(block_action("deny", {"run_id": RUN, "step": "0"}, user=user))
        out.append(block_action("reason", {"run_id": RUN, "step": "0"}, user=user))
        out.append(block_action("snooze", {"incident_id": INCIDENT}, user=user))
        view = reason_modal(RUN, 0, channel=CHANNEL_ID)
        for decision in ["granted", "denied", "pending", "x"]:
            out.append(view_submission(view, decision, "because", user=user))
    return out


SEEDS = seeds()
METADATA = ("view", "private_metadata")
hostile = st.sampled_from(HOSTILE) | st.text(max_size=8) | st.integers()


@st.composite
def payload(draw: st.DrawFn) -> Any:
    """A real payload with one or two nodes changed, or a button value that is hostile text."""
    doc = draw(st.sampled_from(SEEDS))
    if draw(st.booleans()):  # the JSON text inside the JSON: a button's value, the modal's state
        where = ("actions", 0, "value") if doc["type"] == "block_actions" else METADATA
        doc = mutate(doc, where, "replace", draw(st.sampled_from(VALUES)))
    for _ in range(draw(st.integers(0, 2))):
        node = draw(st.sampled_from(list(paths(doc))))
        doc = mutate(doc, node, draw(st.sampled_from(OPS)), draw(hostile))
    return doc


def form(fields: list[tuple[str, str]]) -> bytes:
    # surrogatepass: a lone surrogate goes out as the (invalid UTF-8) bytes it would be
    return urlencode(fields, errors="surrogatepass").encode()


payload_text = payload().map(json.dumps) | st.sampled_from(VALUES) | st.text(max_size=20)
body = st.one_of(
    payload_text.map(lambda p: form([("payload", p)])),
    st.tuples(payload_text, payload_text).map(lambda p: form([("payload", x) for x in p])),
    payload_text.map(lambda p: f"payload={p}".encode("utf-8", "surrogatepass")),  # not encoded
    st.sampled_from(["", "payload", "payload=", "payload=%", "payload=%FF%FE", "a=b&c", "=&=&"])
    .map(str.encode),
    st.binary(max_size=64),
    st.just(form([("payload", json.dumps(SEEDS[0]) + " " * MAX_BODY)])),  # over the limit
)  # fmt: skip

# -- signatures ---------------------------------------------------------------------------------

#: Timestamp headers, as templates over the current wall time; only ``{now}`` (however it is
#: spelt) is fresh.
STAMPS = ["{now}", " {now} ", "+{now}", "0{now}", "{stale}", "{ahead}", "9" * 400, "-" + "9" * 400,
          "9" * 5000, "", "abc", "1e9", "{now}.5", "-1", "0", "{arabic}"]  # fmt: skip
FRESH = "{now}"


def spell(stamp: str, now: int) -> str:
    arabic = "".join(chr(0x0660 + int(d)) for d in str(now))  # int() reads these digits too
    return stamp.format(now=now, stale=now - 301, ahead=now + 301, arabic=arabic)


SIGNED_OK = "ok"
SIGNATURES = [SIGNED_OK, "wrong-secret", "", "v0=", "v1=abc", "v0=" + "0" * 64, "v0=" + "é" * 64,
              "v0=\x00", "V0=abc", "v0=" + "A" * 10_000]  # fmt: skip


def headers(raw: bytes, stamp: str, signature: str, now: int) -> dict[str, str]:
    try:
        canonical = int(stamp)  # what the verifier signs against
    except ValueError:
        canonical = now
    if signature in (SIGNED_OK, "wrong-secret"):
        secret = SIGNING_SECRET if signature == SIGNED_OK else "not-the-" + SIGNING_SECRET
        out = signed_headers(raw, canonical, secret)
        out["X-Slack-Request-Timestamp"] = stamp
        return out
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def authentic(raw: bytes, stamp: str, signature: str, now: int) -> bool:
    """Correctly signed, fresh and UTF-8: what only Slack can send."""
    try:
        fresh = abs(int(stamp) - now) <= 300
        raw.decode("utf-8")
    except ValueError:
        return False
    return fresh and signature == SIGNED_OK


# -- the contract -------------------------------------------------------------------------------


def check(world: World, raw: bytes, template: str, signature: str) -> Outcome:
    now = world.stamp()
    stamp = spell(template, now)
    before = len(world.store.events())
    outcome = world.handler.handle(raw, headers(raw, stamp, signature, now))
    assert outcome.status in ANSWERS, outcome
    if outcome.body is not None:
        json.dumps(outcome.body)  # a JSON answer Slack can read
    if outcome.status != 200:
        assert outcome.body is not None and outcome.body.get("error"), outcome
        assert len(world.store.events()) == before  # a refusal records nothing
    if len(raw) > MAX_BODY:
        assert outcome.status == 413
    elif not authentic(raw, stamp, signature, now):
        assert outcome.status == 401
        assert outcome.body is not None and outcome.body["error"] in set(Rejection)
    elif outcome.status == 401:
        assert outcome.body == {"error": "replayed"}  # hypothesis may replay an example
    for job in outcome.later:
        job()  # after the answer: must not raise either (failures are logged)
    return outcome


signed_body = st.tuples(body, st.just(FRESH), st.just(SIGNED_OK))
any_request = st.tuples(body, st.sampled_from(STAMPS), st.sampled_from(SIGNATURES))


def test_signed_hostile_payloads_get_a_clear_answer(world: World) -> None:
    answers: Counter[int] = Counter()

    @fuzz(1500)
    @given(request=signed_body)
    def run(request: tuple[bytes, str, str]) -> None:
        answers[check(world, *request).status] += 1

    run()
    assert sum(answers.values()) >= 1500
    # The examples reached every branch: decisions were recorded, not only refused.
    assert {200, 400, 413} <= set(answers), answers
    assert world.handler.recorded["approved"] and world.handler.recorded["denied"]
    assert world.handler.recorded["snoozed"] and world.handler.refused["not_allowed"]


def test_bad_signatures_and_timestamps_are_401_whatever_the_body(world: World) -> None:
    assert world.handler.verifier is not None
    rejections = world.handler.verifier.rejections

    answers: Counter[int] = Counter()

    @fuzz(1000)
    @given(request=any_request)
    def run(request: tuple[bytes, str, str]) -> None:
        answers[check(world, *request).status] += 1

    run()
    assert sum(answers.values()) >= 1000
    assert {"malformed", "stale", "forged"} <= set(rejections), rejections


@fuzz(1000)
@given(request=signed_body | any_request)
def test_the_http_route_answers_4xx_or_200_never_500(
    world: World, request: tuple[bytes, str, str]
) -> None:
    raw, template, signature = request
    now = world.stamp()
    sent = headers(raw, spell(template, now), signature, now)
    # On the wire a header is bytes (servers read them as Latin-1): "é" arrives as one byte.
    wire = {k: v.encode("latin-1", "replace") for k, v in sent.items()}
    answer = world.client.post("/slack/interactions", content=raw, headers=wire)
    assert answer.status_code in ANSWERS, answer.text


# -- inputs that once escaped as raw exceptions --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "action"),
    [
        pytest.param(VALUES[2], "approve", id="step-superscript-digit"),
        pytest.param(VALUES[3], "approve", id="step-past-4300-digits"),
        pytest.param(VALUES[7], "reason", id="run-id-too-long-for-a-modal"),
        pytest.param(VALUES[13], "approve", id="value-int-literal-past-4300-digits"),
        pytest.param(VALUES[14], "approve", id="value-nested-too-deep"),
    ],
)
def test_known_escapes_in_button_values(world: World, value: str, action: str) -> None:
    doc = mutate(block_action(action, {}), ("actions", 0, "value"), "replace", value)
    raw = form([("payload", json.dumps(doc))])
    assert check(world, raw, FRESH, SIGNED_OK).status == 200


@pytest.mark.parametrize(
    "actions", [5, {"action_id": "approve"}, "approve"], ids=["int", "object", "string"]
)
def test_known_escapes_actions_not_a_list(world: World, actions: Any) -> None:
    doc = mutate(block_action("approve", {}), ("actions",), "replace", actions)
    outcome = check(world, form([("payload", json.dumps(doc))]), FRESH, SIGNED_OK)
    assert outcome.status == 400


@pytest.mark.parametrize(
    ("stamp", "signature"),
    [("9" * 400, "v0=abc"), ("-" + "9" * 400, "v0=abc"), (FRESH, "v0=" + "é" * 64)],
    ids=["timestamp-overflows-a-float", "negative-overflow", "non-ascii-signature"],
)
def test_known_escapes_in_headers(world: World, stamp: str, signature: str) -> None:
    raw = form([("payload", json.dumps(SEEDS[0]))])
    assert check(world, raw, stamp, signature).status == 401


def test_payload_nested_too_deep_is_400(world: World) -> None:
    raw = form([("payload", "[" * 5000 + "]" * 5000)])
    assert check(world, raw, FRESH, SIGNED_OK).status == 400


@pytest.mark.parametrize("metadata", [VALUES[13], VALUES[14]], ids=["huge-int", "nested-too-deep"])
def test_known_escapes_in_modal_metadata(world: World, metadata: str) -> None:
    doc = mutate(SEEDS[4], METADATA, "replace", metadata)
    assert doc["type"] == "view_submission"
    assert check(world, form([("payload", json.dumps(doc))]), FRESH, SIGNED_OK).status == 400
