"""Crash safety: SIGKILL the real daemon at every dangerous point of a two-incident run and
restart it each time. Nothing is lost and nothing reaches the gateway twice.

The daemon runs as a subprocess (`gatewarden run`) on a simulated clock anchored to the same
wall-clock origin as the simulator served from this test, so restarts share one timeline.
Each incarnation is told (GATEWARDEN_CRASHPOINTS) to SIGKILL itself at one named point: after
an approval is requested, after an action's intent is stored, after the gateway call but
before its outcome is stored, after a notification was delivered but before that is recorded,
between pipeline stages. Every planned point must be reached: the incarnation has to die by
its own SIGKILL with the crash point's marker on stderr; one still alive at its deadline is
stopped and fails the test (the plan no longer exercises what it names).
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
from gatewarden.crashpoints import marker
from gatewarden.models import EventType, IncidentStatus
from gatewarden.projections import incidents_from_events
from gatewarden.simulator import Scenario, Simulator, SimulatorServer
from gatewarden.simulator.faults import ProviderOutage
from gatewarden.store import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
SPEED = 60.0
# In timeline order: a point armed after its window has passed is never hit. Each
# notify.after_deliver follows an applied action, whose announcement is then still to go out.
CRASH_PLAN = [
    "tick.after_correlate:12",
    "approval.after_request",
    "action.after_intent",
    "action.after_apply",
    "notify.after_deliver",
    "tick.after_remediate:3",
    "approval.after_request",
    "action.after_intent",
    "action.after_apply",
    "notify.after_deliver:2",
]
CRASH_DEADLINE_S = 60  # real seconds for an incarnation to reach its point (an hour simulated)


def scenario() -> Scenario:
    return Scenario(
        name="kill-test",
        seed=3,
        duration_s=3300,
        base_rps=8,
        faults=[
            ProviderOutage(start=600, duration=720, provider="openai", error_rate=0.5),
            # Late enough that the five restarts planned on the first outage (~2.5 s each, 150 s
            # simulated) are over before it starts, or its approval would go by unplanned.
            ProviderOutage(start=2400, duration=600, provider="azure", error_rate=0.5),
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
        reached: list[str] = []
        plan: list[str | None] = [*CRASH_PLAN, None]
        for crash in plan:
            run_env = {**env, "GATEWARDEN_CRASHPOINTS": crash} if crash else env
            start = logs.stat().st_size if logs.exists() else 0
            with logs.open("a") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "gatewarden.cli", "run", "--config", str(config)],
                    env=run_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=tmp_path,
                )
                deadline = time.monotonic() + (240 if crash is None else CRASH_DEADLINE_S)
                while proc.poll() is None and time.monotonic() < deadline:
                    if crash is None and done(db):
                        break
                    time.sleep(0.25)
                if proc.poll() is None:
                    # The final run finished, or a planned point was not reached in time.
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=30)
            if crash is not None:
                with logs.open("rb") as log_file:
                    log_file.seek(start)
                    output = log_file.read().decode(errors="replace")
                name, _, nth = crash.partition(":")
                assert proc.returncode == -signal.SIGKILL, f"{crash} not reached:\n{output[-3000:]}"
                assert marker(name, int(nth or 1)) in output, f"{crash}: died elsewhere"
                reached.append(crash)
        calls = [c for c in sim.state.admin_calls() if c.method == "POST"]
    assert reached == CRASH_PLAN
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
    # Zero lost notifications, none recorded twice: the deliveries are exactly the queue, by
    # identity (outbox key and message id), each once; nothing failed.
    queued = [e for e in events if e.type is EventType.NOTIFICATION_QUEUED]
    delivered = [e for e in events if e.type is EventType.NOTIFICATION_DELIVERED]
    assert queued
    assert Counter(e.key for e in delivered) == Counter(f"{q.key}:delivered" for q in queued)
    assert {(e.payload["message_id"], e.payload["notifier"]) for e in delivered} == {
        (q.payload["message"]["id"], q.payload["notifier"]) for q in queued
    }
    assert [e for e in events if e.type is EventType.NOTIFICATION_FAILED] == []
    # Zero duplicate gateway actions: each distinct call reached the simulator once.
    counts = Counter((c.path, str(c.body)) for c in calls)
    assert counts and all(n == 1 for n in counts.values()), counts
