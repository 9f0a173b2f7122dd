"""Planted secrets never appear in any output: logs, console notifications, the event store,
reports (md/html/json), the daemon's HTTP surface, or exceptions."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.config import load_config
from gatewarden.daemon import Daemon, build
from gatewarden.models import EventType
from gatewarden.report import write_reports
from gatewarden.simulator import Simulator, SimulatorServer, default_demo_scenario

REPO = Path(__file__).resolve().parents[2]
MASTER = "sk-PLANTED-master-7f3a9c"
WEB_TOKEN = "PLANTED-web-token-51e2"
SECRETS = (MASTER, WEB_TOKEN)


def test_planted_secrets_appear_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    scenario = default_demo_scenario().model_copy(update={"master_key": MASTER})
    clock = VirtualClock(scenario.start)
    sim = Simulator(scenario, clock)
    console = io.StringIO()
    with SimulatorServer(sim) as server:
        (tmp_path / "web-token").write_text(WEB_TOKEN + "\n")
        config_path = tmp_path / "gw.yaml"
        config_path.write_text(
            f"""
sources: [{{type: http_request_log, url: "{server.url}"}}]
gateway: {{base_url: "{server.url}", master_key: {{env: PLANTED_MASTER}}}}
store: {{path: gw.db}}
detectors_dir: {REPO / "detectors"}
playbooks_dir: {REPO / "playbooks"}
reports_dir: reports
remediate: {{demo_auto_approve: true}}
web: {{port: 0, token: {{file: web-token}}}}
"""
        )
        config = load_config(config_path)
        assembly = build(config, clock=clock, env={"PLANTED_MASTER": MASTER}, stream=console)
        daemon = Daemon(assembly, interval_s=1, web=config.web, console_token=WEB_TOKEN)
        url = daemon.start_web()
        assert url is not None
        try:
            for _ in range(int(scenario.duration_s // 15)):
                clock.advance(15)
                assembly.pipeline.tick()
                if assembly.store.events(types=[EventType.REPORT_WRITTEN]):
                    break
            served = [
                httpx.get(f"{url}{path}", timeout=5).text
                for path in ("/healthz", "/readyz", "/metrics", "/console/")
            ]
            served.append(
                httpx.get(
                    f"{url}/console/", headers={"Authorization": f"Bearer {WEB_TOKEN}"}, timeout=5
                ).text
            )
            events = assembly.store.events()
            incident = next(e.incident_id for e in events if e.type is EventType.INCIDENT_OPENED)
            written = write_reports(
                assembly.store,
                incident,
                tmp_path / "out",
                formats=["md", "html", "json"],
                clock=clock,
            )
        finally:
            if daemon.web_server is not None:
                daemon.web_server.stop()
            assembly.close()
    assert any(e.type is EventType.ACTION_APPLIED for e in events), "the loop must have acted"
    outputs = {
        "console": console.getvalue(),
        "logs": "\n".join(r.getMessage() for r in caplog.records),
        "events": json.dumps([e.model_dump(mode="json") for e in events]),
        "http": "\n".join(served),
        "reports": "\n".join(p.read_text(errors="replace") for p, _ in written),
        "config repr": repr(config) + repr(assembly.remediate.gateway),
    }
    for name, text in outputs.items():
        assert text, name
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {name}"
