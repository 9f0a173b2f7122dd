"""Crash safety: SIGKILL the real daemon at every dangerous point of a two-incident run and
restart it each time. Nothing is lost and nothing reaches the gateway twice.

The daemon runs as a subprocess (`gatewarden run`) on a simulated clock anchored to the same
wall-clock origin as the simulator served from this test, so restarts share one timeline.
Each incarnation is told (GATEWARDEN_CRASHPOINTS) to SIGKILL itself at one named point: after
an approval is requested, after an action's intent is stored, after the gateway call but
before its outcome is stored, between pipeline stages. A point not reached in time is a
plain SIGKILL from the test, at whatever the daemon was doing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from gatewarden.clock import ScaledClock
from gatewarden.models import EventType, IncidentStatus
from gatewarden.projections import incidents_from_events
from gatewarden.simulator import Scenario, Simulator, SimulatorServer
from gatewarden.simulator.faults import ProviderOutage
from gatewarden.store import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
SPEED = 60.0
CRASH_PLAN = [
    "tick.after_correlate:12",
    "approval.after_request",
    "action.after_intent",
    "action.after_apply",
    "tick.after_remediate:3",
    "approval.after_request",
    "action.after_intent",
    "action.after_apply",
]


def scenario() -> Scenario:
    return Scenario(
        name="kill-test",
        seed=3,
        duration_s=2700,
        base_rps=8,
        faults=[
            ProviderOutage(start=600, duration=720, provider="openai", error_rate=0.5),
            ProviderOutage(start=1800, duration=600, provider="azure", error_rate=0.5),
        ],
    )


def write_config(tmp: Path, url: str, start: float, origin: float) -> Path:
    path = tmp / "gw.yaml"
    path.write_text(
        f"""
tick_seconds: 15
clock: {{type: scaled, start: {start}, origin: {origin}, speed: {SPEED}}}
sources: [{{type: http_request_log, url: "{url}", timeout_s: 2}}]
gateway: {{base_url: "{url}", master_key: {{env: SIM_KEY}}, timeout_s: 2}}
store: {{path: state/gw.db}}
detectors_dir: {REPO / "detectors"}
playbooks_dir: {REPO / "playbooks"}
reports_dir: reports
remediate: {{demo_auto_approve: true}}
notify: {{console: true}}
web: {{enabled: false}}
"""
    )
    return path


def done(db: Path) -> bool:
    if not db.exists():
        return False
    store = SQLiteStore(db)
    try:
        finished = store.events(types=[EventType.PLAYBOOK_FINISHED])
        incidents = [i for i in incidents_from_events(store.events()) if i.merged_into is None]
        return len(finished) >= 2 and all(i.status is IncidentStatus.RESOLVED for i in incidents)
    finally:
        store.close()


def test_sigkill_anywhere_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    sc = scenario()
    origin = time.time() + 1.0
    clock = ScaledClock(sc.start, SPEED, origin=origin)
    sim = Simulator(sc, clock)
    db = tmp_path / "state" / "gw.db"
    logs = tmp_path / "daemon.log"
    with SimulatorServer(sim) as server:
        config = write_config(tmp_path, server.url, sc.start, origin)
        env = {**os.environ, "SIM_KEY": sc.master_key}
        env.pop("GATEWARDEN_CRASHPOINTS", None)
        killed = 0
        plan: list[str | None] = [*CRASH_PLAN, None]
        for crash in plan:
            run_env = {**env, "GATEWARDEN_CRASHPOINTS": crash} if crash else env
            with logs.open("a") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "gatewarden.cli", "run", "--config", str(config)],
                    env=run_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=tmp_path,
                )
                deadline = time.monotonic() + (240 if crash is None else 25)
                while proc.poll() is None and time.monotonic() < deadline:
                    if crash is None and done(db):
                        break
                    time.sleep(0.25)
                if proc.poll() is None:
                    # Not reached in time (or the final run finished): kill it here.
                    proc.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
                    proc.wait(timeout=30)
                if crash is not None:
                    assert proc.returncode == -signal.SIGKILL
                    killed += 1
        calls = [c for c in sim.state.admin_calls() if c.method == "POST"]
    assert killed == len(CRASH_PLAN)
    assert done(db), logs.read_text()[-3000:]
    store = SQLiteStore(db)
    events = store.events()
    store.close()
    incidents = [i for i in incidents_from_events(events) if i.merged_into is None]
    providers = Counter(i.scope.get("provider") for i in incidents)
    # Zero lost incidents: one per fault, none duplicated by a restart.
    assert providers["openai"] == 1 and providers["azure"] == 1, incidents
    finished = [e for e in events if e.type is EventType.PLAYBOOK_FINISHED]
    assert [e.payload["state"] for e in finished] == ["succeeded", "succeeded"]
    # Zero lost approvals: every request was granted and acted on.
    requested = {
        (e.run_id, e.payload["step"]) for e in events if e.type is EventType.APPROVAL_REQUESTED
    }
    granted = {
        (e.run_id, e.payload["step"]) for e in events if e.type is EventType.APPROVAL_GRANTED
    }
    assert requested and requested <= granted
    # Zero lost notifications: everything queued was delivered.
    queued = {e.key for e in events if e.type is EventType.NOTIFICATION_QUEUED}
    delivered = {
        e.payload["message_id"] for e in events if e.type is EventType.NOTIFICATION_DELIVERED
    }
    assert queued and len(delivered) >= len(queued)
    # Zero duplicate gateway actions: each distinct call reached the simulator once.
    counts = Counter((c.path, str(c.body)) for c in calls)
    assert counts and all(n == 1 for n in counts.values()), counts
