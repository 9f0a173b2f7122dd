"""Two real daemon assemblies on one PostgreSQL store, against the simulator: the leader dies
mid-incident, the standby takes over within two ticks and finishes the playbook, and every
gateway action reaches the gateway exactly once."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewarden.clock import VirtualClock
from gatewarden.config import load_config
from gatewarden.daemon import Assembly, build
from gatewarden.models import EventType, IncidentStatus
from gatewarden.projections import incidents_from_events
from gatewarden.simulator import Simulator, SimulatorServer, default_demo_scenario
from gatewarden.store.postgres import PostgresStore
from tests.store.backends import PG_DSN, admin_connection

REPO = Path(__file__).resolve().parents[2]


def config_text(url: str, schema: str, holder: str) -> str:
    return f"""
tick_seconds: 15
sources: [{{type: http_request_log, url: "{url}"}}]
gateway: {{base_url: "{url}", master_key: {{env: SIM_KEY}}}}
store: {{backend: postgres, dsn: "{PG_DSN}", pg_schema: {schema}}}
ha: {{enabled: true, holder: {holder}, ttl_s: 22}}
detectors_dir: {REPO / "detectors"}
playbooks_dir: {REPO / "playbooks"}
reports_dir: reports-{holder}
remediate: {{demo_auto_approve: true}}
notify: {{console: true}}
web: {{enabled: false}}
"""


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"gwha_{uuid.uuid4().hex[:10]}"
    yield name
    with admin_connection() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_standby_takes_over_and_finishes_the_run(tmp_path: Path, schema: str) -> None:
    admin_connection().close()  # fail (or skip) clearly when PostgreSQL is down
    scenario = default_demo_scenario()
    clock = VirtualClock(scenario.start)
    sim = Simulator(scenario, clock)
    with SimulatorServer(sim) as server:
        env = {"SIM_KEY": scenario.master_key}
        daemons: dict[str, Assembly] = {}
        for holder in ("a", "b"):
            path = tmp_path / f"{holder}.yaml"
            path.write_text(config_text(server.url, schema, holder))
            daemons[holder] = build(load_config(path), clock=clock, env=env, stream=io.StringIO())
        a, b = daemons["a"], daemons["b"]
        alive = ["a", "b"]
        died_at: float | None = None
        took_over_at: float | None = None
        for _ in range(int((scenario.duration_s + 600) // 15)):
            clock.advance(15)
            for holder in alive:
                daemons[holder].pipeline.tick()
            if died_at is None and a.store.events(types=[EventType.APPROVAL_GRANTED]):
                alive, died_at = ["b"], clock.now()  # the leader dies: it never ticks again
            if died_at is not None and took_over_at is None and b.elector and b.elector.is_leader:
                took_over_at = clock.now()
            if b.store.events(types=[EventType.REPORT_WRITTEN]):
                break
        assert a.elector is not None and b.elector is not None
        assert died_at is not None and took_over_at is not None
        # ttl 22 s: the lease lapses within two 15 s ticks of the leader's last renewal.
        assert took_over_at - died_at <= 2 * 15
        calls = Counter(
            (c.path, str(c.body)) for c in sim.state.admin_calls() if c.method == "POST"
        )
        assert calls and all(n == 1 for n in calls.values()), calls
    store = PostgresStore(PG_DSN, schema=schema)
    try:
        events = store.events()
        incidents = [i for i in incidents_from_events(events) if i.merged_into is None]
        assert [i.scope for i in incidents] == [{"provider": "openai"}]
        assert incidents[0].status is IncidentStatus.RESOLVED
        finished = [e for e in events if e.type is EventType.PLAYBOOK_FINISHED]
        assert [e.payload["state"] for e in finished] == ["succeeded"]
        assert len([e for e in events if e.type is EventType.INCIDENT_OPENED]) == 1
    finally:
        store.close()
        for assembly in daemons.values():
            assembly.close()
