"""The failover's impact preview: the share of the model group's recent traffic that moves,
computed from real aggregation frames, and shown in Slack and the console."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import httpx

from gatewarden.aggregate import SeriesHistory
from gatewarden.aggregate.frames import aggregate
from gatewarden.clock import VirtualClock
from gatewarden.console import console_routes
from gatewarden.gateways import InMemoryGateway
from gatewarden.gateways.traffic import TrafficPreviewGateway
from gatewarden.httpserve import ThreadedServer
from gatewarden.ingest.request_log import records_frame
from gatewarden.models import Event, EventType, GatewayAction, RequestRecord
from gatewarden.notify.approval_view import approval_message, approval_views
from gatewarden.notify.messages import build_message
from gatewarden.notify.slack import RenderOptions, build_blocks
from gatewarden.store.sqlite import SQLiteStore
from gatewarden.web import create_app
from tests.console.test_console import _status
from tests.notify.slackkit import approval_gate

T0 = 1_748_937_600.0
TICK = 15.0


def _record(i: int, provider: str, model: str, group: str, status: int = 200) -> RequestRecord:
    return RequestRecord(
        ts=T0 + i * 0.01,
        request_id=f"req-{provider}-{model}-{i}",
        api_key="search-prod",
        team="search",
        provider=provider,
        model=model,
        requested_model=group,
        status=status,
        latency_ms=420.0,
        ttft_ms=180.0,
        input_tokens=900,
        output_tokens=120,
        cost_usd=0.002,
    )


def _history(ticks: int, per_tick: dict[tuple[str, str, str], int]) -> SeriesHistory:
    """``ticks`` real per-tick frames, each from ``per_tick[(provider, model, group)]`` calls
    (every fifth openai call failing, as in an outage: failed calls are traffic too)."""
    history = SeriesHistory()
    for t in range(ticks):
        records = [
            _record(i, provider, model, group, 503 if provider == "openai" and i % 5 == 0 else 200)
            for (provider, model, group), n in per_tick.items()
            for i in range(n)
        ]
        start = T0 + t * TICK
        frame = records_frame(r.model_copy(update={"ts": start + r.ts - T0}) for r in records)
        history.push(start + TICK, aggregate(frame, start=start, end=start + TICK))
    return history


def _gateway(*extra: dict[str, Any]) -> InMemoryGateway:
    return InMemoryGateway.build(
        deployments=[
            {"id": "oa-4o", "model_name": "gpt-4o", "model": "openai/gpt-4o", "order": 1},
            {"id": "az-4o", "model_name": "gpt-4o", "model": "azure/gpt-4o", "order": 2},
            *extra,
        ]
    )


FAILOVER = GatewayAction(type="failover_provider", params={"provider": "openai"})
TRAFFIC = {("openai", "gpt-4o", "gpt-4o"): 63, ("azure", "gpt-4o", "gpt-4o"): 37}


def test_the_preview_says_how_much_of_the_group_s_recent_traffic_moves() -> None:
    # 30 ticks kept; the preview counts the last 20 (5 minutes of 15 s ticks).
    history = _history(30, {**TRAFFIC, ("anthropic", "claude-sonnet-4-5", "claude-sonnet"): 50})
    assert _gateway().plan(FAILOVER).preview == "will move model group gpt-4o from openai to azure"
    plan = TrafficPreviewGateway(_gateway(), history).plan(FAILOVER)
    assert plan.preview == (
        "will move model group gpt-4o from openai to azure: "
        "63 % of its traffic in the last 5 min (1,260 of 2,000 requests)"
    )
    assert plan.action == _gateway().plan(FAILOVER).action  # only the words change


def test_several_groups_each_get_their_share_and_a_short_history_says_so() -> None:
    history = _history(
        4,
        {
            **TRAFFIC,
            ("openai", "gpt-4o-mini", "gpt-4o-mini"): 9,
            ("azure", "gpt-4o-mini", "gpt-4o-mini"): 1,
        },
    )
    mini = [
        {"id": "oa-mini", "model_name": "gpt-4o-mini", "model": "openai/gpt-4o-mini", "order": 1},
        {"id": "az-mini", "model_name": "gpt-4o-mini", "model": "azure/gpt-4o-mini", "order": 2},
    ]
    plan = TrafficPreviewGateway(_gateway(*mini), history).plan(FAILOVER)
    assert plan.preview == (
        "will move model groups gpt-4o, gpt-4o-mini from openai to azure: "
        "63 % of gpt-4o's traffic, 90 % of gpt-4o-mini's traffic in the last 1 min"
    )


def test_no_share_is_claimed_when_it_cannot_be_told_apart_or_there_is_no_traffic() -> None:
    # Another group (with nowhere else to go) is served by the same openai/gpt-4o: its calls
    # are in the same series, so gpt-4o's share cannot be told from the frames.
    shared = {"id": "oa-4o-b", "model_name": "gpt-4o-batch", "model": "openai/gpt-4o", "order": 1}
    history = _history(5, TRAFFIC)
    plan = TrafficPreviewGateway(_gateway(shared), history).plan(FAILOVER)
    assert plan.preview == "will move model group gpt-4o from openai to azure"
    quiet = TrafficPreviewGateway(_gateway(), SeriesHistory()).plan(FAILOVER)
    assert quiet.preview == "will move model group gpt-4o from openai to azure"


def test_a_model_group_failover_previews_its_primary_s_share() -> None:
    history = _history(20, TRAFFIC)
    action = GatewayAction(type="failover_model_group", params={"model_group": "gpt-4o"})
    plan = TrafficPreviewGateway(_gateway(), history).plan(action)
    assert plan.preview == (
        "will move model group gpt-4o from oa-4o to az-4o: "
        "63 % of its traffic in the last 5 min (1,260 of 2,000 requests)"
    )


def test_the_console_shows_the_preview(tmp_path: Path) -> None:
    """The console's timeline shows the intent's preview (Slack: ``test_slack_daemon``)."""
    plan = TrafficPreviewGateway(_gateway(), _history(20, TRAFFIC)).plan(FAILOVER)
    store = SQLiteStore(str(tmp_path / "events.db"))
    approval_gate(store, approvers=["U1"], incident_id="inc-1", run_id="inc-1:pf", t0=T0)
    store.append(
        [
            Event(
                ts=T0 + 30,
                type=EventType.ACTION_INTENDED,
                incident_id="inc-1",
                run_id="inc-1:pf",
                key="action:inc-1:pf:1",
                payload={
                    "step": 1,
                    "action": plan.action.model_dump(mode="json"),
                    "inverse": None,
                    "preview": plan.preview,
                },
            )
        ]
    )
    token = "view-token-0123456789"
    routes = console_routes(store, VirtualClock(T0 + 60), token)
    with ThreadedServer(create_app(_status, extra_routes=routes), name="preview") as server:
        page = httpx.get(
            f"{server.url}/console/incidents/inc-1", headers={"Authorization": f"Bearer {token}"}
        )
    assert page.status_code == 200
    assert html.escape(plan.preview, quote=True) in page.text
    assert "63 % of its traffic in the last 5 min (1,260 of 2,000 requests)" in page.text


def test_a_preview_carried_by_the_approval_request_is_shown_before_anyone_decides(
    tmp_path: Path,
) -> None:
    """When the request carries the plan's preview, the gate in Slack and the console's pending
    approval show it, so approvers see what they let happen."""
    plan = TrafficPreviewGateway(_gateway(), _history(20, TRAFFIC)).plan(FAILOVER)
    scratch = SQLiteStore(":memory:")
    events = approval_gate(scratch, approvers=["U1"], incident_id="inc-1", run_id="inc-1:pf")
    asked = events[-1]
    events[-1] = asked.model_copy(update={"payload": {**asked.payload, "preview": plan.preview}})
    store = SQLiteStore(str(tmp_path / "events.db"))
    stored = store.append([e.model_copy(update={"seq": None}) for e in events])
    gate = build_message(stored[-1])
    assert gate is not None and gate.text == plan.preview
    blocks = build_blocks(approval_message(approval_views(stored)[0]), options=RenderOptions())
    assert plan.preview in json.dumps(blocks)
    token = "view-token-0123456789"
    routes = console_routes(store, VirtualClock(T0 + 60), token)
    with ThreadedServer(create_app(_status, extra_routes=routes), name="preview") as server:
        page = httpx.get(
            f"{server.url}/console/incidents/inc-1", headers={"Authorization": f"Bearer {token}"}
        ).text
    shown = html.escape(plan.preview, quote=True)
    assert f'<p class="preview">If approved: {shown}</p>' in page
    assert f"<dt>Preview</dt><dd>{shown}</dd>" in page  # and in the timeline
