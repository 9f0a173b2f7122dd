"""The whole loop, end to end: simulator on 127.0.0.1 -> daemon (APScheduler) -> failover."""

from __future__ import annotations

import io
from pathlib import Path

from gatewarden.demo import run_demo
from gatewarden.models import EventType
from gatewarden.projections import incidents_from_events
from gatewarden.store import SQLiteStore

REPO = Path(__file__).resolve().parents[2]


def test_demo_closes_the_loop(tmp_path: Path) -> None:
    out = io.StringIO()
    # A huge speed makes the scheduler tick as fast as the pipeline allows; the stepped virtual
    # clock keeps the simulated timeline identical to the real demo's.
    code = run_demo(speed=1e6, workdir=tmp_path / "demo", repo=REPO, out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "demo result: OK" in text
    assert "POST /model/update {'model_info': {'id': 'openai-gpt-4o'}" in text

    store = SQLiteStore(tmp_path / "demo" / "gatewarden.db")
    events = store.events()
    incidents = incidents_from_events(events)
    assert [i.scope for i in incidents] == [{"provider": "openai"}]
    incident = incidents[0]
    fault_start = 1748937600.0 + 40 * 60  # the demo scenario's outage onset
    assert 0 <= incident.opened_at - fault_start <= 90, "detected within 90 s"
    types = [e.type for e in store.events(incident_id=incident.id)]
    order = [
        EventType.INCIDENT_OPENED,
        EventType.APPROVAL_REQUESTED,
        EventType.APPROVAL_GRANTED,
        EventType.ACTION_INTENDED,
        EventType.ACTION_APPLIED,
        EventType.VERIFICATION_PASSED,
        EventType.INCIDENT_MITIGATED,
        EventType.INCIDENT_RESOLVED,
        EventType.REPORT_WRITTEN,
    ]
    positions = [types.index(t) for t in order]
    assert positions == sorted(positions), types
    granted = store.events(incident_id=incident.id, types=[EventType.APPROVAL_GRANTED])
    assert granted[0].payload["by"] == "demo-auto-approver"
    delivered = store.events(types=[EventType.NOTIFICATION_DELIVERED])
    queued = store.events(types=[EventType.NOTIFICATION_QUEUED])
    assert len(delivered) == len(queued) > 0
    report = Path(store.events(types=[EventType.REPORT_WRITTEN])[0].payload["path"])
    body = report.read_text()
    assert incident.id in body and "demo-auto-approver" in body
    assert "sk-sim-master" not in body and "sk-sim-master" not in text
    store.close()
