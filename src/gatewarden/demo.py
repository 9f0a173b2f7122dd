"""``gatewarden demo``: the whole loop against the simulator, on embedded defaults.

A simulated LiteLLM-compatible gateway serves traffic on 127.0.0.1 with a scripted OpenAI
outage; the real daemon (same assembly as ``run``) scrapes it at accelerated speed, opens an
incident, gets the failover approved by the clearly labelled demo auto-approver, calls the admin
API, verifies recovery and writes the incident report.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TextIO

from gatewarden.clock import VirtualClock
from gatewarden.config import DaemonConfig, load_config
from gatewarden.daemon import Daemon, build
from gatewarden.models import EventType, IncidentStatus
from gatewarden.projections import incidents_from_events, run_from_events
from gatewarden.protocols import Store, Tick
from gatewarden.simulator import Simulator, SimulatorServer, default_demo_scenario

DEMO_CONFIG = """\
tick_seconds: 15
sources:
  - {type: http_request_log, name: request_log, url: "URL"}
gateway: {type: litellm, base_url: "URL", master_key: {env: GATEWARDEN_DEMO_MASTER_KEY}}
store: {path: gatewarden.db}
detectors_dir: DETECTORS
playbooks_dir: PLAYBOOKS
reports_dir: reports
remediate: {demo_auto_approve: true}
notify: {console: true}
"""


def _clock_text(ts: float, origin: float) -> str:
    minutes, seconds = divmod(round(ts - origin), 60)
    return f"T+{minutes:02d}:{seconds:02d}"


def _done(store: Store) -> bool:
    """Finished when an incident resolved, its playbook run finished and its report exists."""
    events = store.events(types=[EventType.REPORT_WRITTEN, EventType.PLAYBOOK_FINISHED])
    return any(e.type is EventType.REPORT_WRITTEN for e in events) and any(
        e.type is EventType.PLAYBOOK_FINISHED for e in events
    )


def write_demo_config(workdir: Path, url: str, repo: Path) -> Path:
    text = (
        DEMO_CONFIG.replace("URL", url)
        .replace("DETECTORS", str((repo / "detectors").resolve()))
        .replace("PLAYBOOKS", str((repo / "playbooks").resolve()))
    )
    path = workdir / "gatewarden.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_demo(
    *,
    speed: float = 60.0,
    workdir: Path = Path("var/demo"),
    repo: Path = Path("."),
    out: TextIO = sys.stdout,
) -> int:
    scenario = default_demo_scenario()
    fault = scenario.faults[0]
    origin = scenario.start
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    # A stepped virtual clock: each tick advances simulated time by exactly one tick length, so a
    # slow machine makes the demo slower, never different.
    clock = VirtualClock(origin)
    sim = Simulator(scenario, clock)
    server = SimulatorServer(sim)
    url = server.start()
    config: DaemonConfig = load_config(write_demo_config(workdir, url, repo))
    env = {"GATEWARDEN_DEMO_MASTER_KEY": scenario.master_key}
    out.write(
        f"gatewarden demo: simulated LiteLLM-compatible gateway at {url}\n"
        f"  scripted fault: {fault.type} on openai at {_clock_text(origin + fault.start, origin)}"
        f" for {int(fault.duration // 60)} min; simulated time runs up to {speed:g}x real time\n"
        "  approvals are granted by 'demo-auto-approver' (DEMO MODE ONLY)\n\n"
    )
    assembly = build(config, clock=clock, env=env, stream=out)
    deadline = scenario.end + 20 * 60
    progress = {"next": origin + 10 * 60}

    def on_tick(tick: Tick) -> None:
        clock.advance(config.tick_seconds)
        if tick.now >= progress["next"]:
            progress["next"] += 10 * 60
            stats = assembly.pipeline.stats
            out.write(
                f"  [{_clock_text(tick.now, origin)}] {stats.ticks} ticks, "
                f"{stats.records:,} requests ingested\n"
            )

    def stop_when(tick: Tick) -> bool:
        return _done(assembly.store) or tick.now > deadline

    daemon = Daemon(
        assembly, interval_s=config.tick_seconds / speed, stop_when=stop_when, on_tick=on_tick
    )
    try:
        daemon.run()
        return _summary(
            assembly.store,
            sim,
            origin=origin,
            fault_start=origin + fault.start,
            workdir=workdir,
            out=out,
        )
    finally:
        assembly.close()
        server.stop()


def _summary(
    store: Store, sim: Simulator, *, origin: float, fault_start: float, workdir: Path, out: TextIO
) -> int:
    events = store.events()
    incidents = incidents_from_events(events)
    calls = [c for c in sim.state.admin_calls() if c.path != "/model/info"]
    out.write("\n=== demo summary ===\n")
    ok = False
    for inc in incidents:
        inc_events = store.events(incident_id=inc.id)
        run_ids = {e.run_id for e in inc_events if e.run_id}
        runs = [run_from_events(store.events(run_id=r)) for r in sorted(run_ids)]
        reports = [e.payload["path"] for e in inc_events if e.type is EventType.REPORT_WRITTEN]
        approvals = [e for e in inc_events if e.type is EventType.APPROVAL_GRANTED]
        applied = [e for e in inc_events if e.type is EventType.ACTION_APPLIED]
        intents = {
            e.payload.get("step"): e.payload
            for e in inc_events
            if e.type is EventType.ACTION_INTENDED and not e.payload.get("rollback")
        }
        out.write(
            f"incident {inc.id}: {inc.title} [{inc.severity.value}], {len(inc.alerts)} alert(s)\n"
            f"  opened   {_clock_text(inc.opened_at, origin)}"
            f"  (time to detect {inc.opened_at - fault_start:.0f}s after the fault began)\n"
        )
        for a in approvals:
            out.write(
                f"  approved {_clock_text(a.ts, origin)}  by {a.payload.get('by')}"
                f" ({a.payload.get('reason', '')})\n"
            )
        for a in applied:
            intent = intents.get(a.payload.get("step"), {})
            out.write(
                f"  action   {_clock_text(a.ts, origin)}  {intent.get('action', {}).get('type')}"
                f" applied: {intent.get('preview', '')}\n"
            )
        if inc.mitigated_at is not None:
            out.write(
                f"  mitigated {_clock_text(inc.mitigated_at, origin)}"
                f"  (time to mitigate {inc.mitigated_at - fault_start:.0f}s)\n"
            )
        if inc.resolved_at is not None:
            out.write(
                f"  resolved {_clock_text(inc.resolved_at, origin)}"
                f"  (time to resolve {inc.resolved_at - inc.opened_at:.0f}s after opening)\n"
            )
        for run in runs:
            if run is not None:
                out.write(f"  playbook {run.playbook}: {run.state.value}\n")
        for path in reports:
            out.write(f"  report   {path}\n")
        ok = ok or (
            inc.scope.get("provider") == "openai"
            and inc.status is IncidentStatus.RESOLVED
            and bool(applied)
            and bool(reports)
        )
    out.write(f"gateway admin calls received by the simulator: {len(calls)}\n")
    for call in calls:
        out.write(f"  {call.method} {call.path} {call.body}\n")
    out.write(f"event log: {workdir / 'gatewarden.db'}\n")
    out.write("demo result: " + ("OK - full loop closed\n" if ok else "INCOMPLETE\n"))
    return 0 if ok else 1
