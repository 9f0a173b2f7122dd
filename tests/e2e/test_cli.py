"""The command line as a user meets it: check-config errors, schema, backtest, run + SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gatewarden.cli import main
from gatewarden.simulator import Scenario, write_offline
from gatewarden.simulator.faults import ProviderOutage

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "gatewarden.example.yaml"


def test_check_config_accepts_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    assert "check-config: OK" in capsys.readouterr().out


def test_check_config_reports_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        "tick_seconds: 15\n"
        "sources:\n"
        "  - type: http_request_log\n"
        "    url: http://127.0.0.1:4000\n"
        "    timeout_s: -1\n"
        "correlate:\n"
        "  resolve_after_tickz: 3\n"
        f"detectors_dir: {REPO / 'detectors'}\n"
        f"playbooks_dir: {REPO / 'playbooks'}\n"
    )
    assert main(["check-config", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}:5: sources[0].timeout_s: Input should be greater than 0" in err
    assert f"{config}:7: correlate.resolve_after_tickz: Extra inputs are not permitted" in err


def test_check_config_reports_bad_yaml_and_bad_playbook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "bad.yaml").write_text("name: x\nmode: yolo\nsteps: []\n")
    config = tmp_path / "gw.yaml"
    config.write_text(f"detectors_dir: {REPO / 'detectors'}\nplaybooks_dir: playbooks\n")
    assert main(["check-config", "--config", str(config)]) == 1
    assert f"{playbooks / 'bad.yaml'}:2: mode" in capsys.readouterr().err
    config.write_text("tick_seconds: [1,\n")
    assert main(["check-config", "--config", str(config)]) == 1
    assert "invalid YAML" in capsys.readouterr().err


def test_schema_exports_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    for what in ("config", "detector", "playbook"):
        assert main(["schema", what]) == 0
        schema = json.loads(capsys.readouterr().out)
        assert schema["type"] == "object" and schema["properties"]


def test_backtest_finds_the_labelled_outage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = Scenario(
        seed=11,
        duration_s=3600,
        base_rps=6,
        faults=[ProviderOutage(start=1800, duration=600, provider="openai", error_rate=0.4)],
    )
    log = tmp_path / "requests.jsonl"
    write_offline(scenario, log, tmp_path / "labels.json")
    with log.open("a") as handle:
        handle.write("this line is not JSON\n")
    argv = ["backtest", "--requests", str(log), "--detectors", str(REPO / "detectors")]
    assert main([*argv, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["malformed"] == 1
    assert document["records"] > 10_000
    outage = [i for i in document["incidents"] if i["scope"].get("provider") == "openai"]
    assert len(outage) == 1
    onset = scenario.start + 1800
    assert onset <= outage[0]["opened_at"] <= onset + 90
    assert set(document) == {"incidents", "alerts_total", "records", "malformed"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_serves_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    log.write_text("")
    port = _free_port()
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"web: {{port: {port}}}\n"
        "tick_seconds: 0.2\n"
        "sources: [{type: jsonl, path: requests.jsonl}]\n"
        "gateway: {master_key: {env: GW_TEST_KEY}}\n"
        "store: {path: state/gw.db}\n"
        f"detectors_dir: {REPO / 'detectors'}\n"
        f"playbooks_dir: {REPO / 'playbooks'}\n"
    )
    env = {**os.environ, "GW_TEST_KEY": "sk-test-secret"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatewarden.cli", "run", "--config", str(config)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "state" / "gw.db").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if ready.status_code == 200:
                break
            time.sleep(0.1)
        assert ready is not None and ready.status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
        assert "gatewarden_ticks_total" in metrics
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopping: SIGTERM" in err
    assert "sk-test-secret" not in err


def test_silence_add_list_expire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"store: {{path: gw.db}}\ndetectors_dir: {REPO / 'detectors'}\n"
        f"playbooks_dir: {REPO / 'playbooks'}\n"
    )
    base = ["silence"]
    cfg = ["--config", str(config)]
    assert (
        main(
            [
                *base,
                "add",
                *cfg,
                "--match",
                "provider=openai",
                "--match",
                "kind=~error.*",
                "--duration",
                "2h",
                "--by",
                "alice",
                "--reason",
                "maintenance",
            ]
        )
        == 0
    )
    silence_id = capsys.readouterr().out.strip()
    assert silence_id.startswith("sil-")
    assert main([*base, "list", *cfg]) == 0
    listed = capsys.readouterr().out
    assert silence_id in listed and "active" in listed and "provider=openai kind=~error.*" in listed
    assert main([*base, "expire", *cfg, silence_id, "--by", "alice"]) == 0
    capsys.readouterr()
    assert main([*base, "list", *cfg]) == 0
    assert "ended" in capsys.readouterr().out
    assert (
        main(
            [
                *base,
                "add",
                *cfg,
                "--match",
                "nonsense",
                "--duration",
                "1h",
                "--by",
                "a",
                "--reason",
                "r",
            ]
        )
        == 2
    )
    assert "not a matcher" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            [
                *base,
                "add",
                *cfg,
                "--match",
                "a=b",
                "--duration",
                "soon",
                "--by",
                "a",
                "--reason",
                "r",
            ]
        )
