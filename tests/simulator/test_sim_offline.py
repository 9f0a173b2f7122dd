"""Offline generation, scenario files and the ``simulate`` CLI."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from gatewarden.errors import ConfigError
from gatewarden.ingest.request_log import read_log
from gatewarden.simulator import (
    KeySurge,
    Scenario,
    Simulator,
    default_demo_scenario,
    load_labels,
    write_offline,
)
from gatewarden.simulator.cli import configure_parser, run
from tests.simulator.helpers import START, scenario


def test_write_offline_jsonl_and_labels(tmp_path: Path) -> None:
    sc = scenario(KeySurge(start=300, duration=300, api_key="support-web"), duration_s=1200)
    out, labels = tmp_path / "log.jsonl", tmp_path / "labels.json"
    stats = write_offline(sc, out, labels)
    batch = read_log(out)
    assert batch.malformed == 0
    assert len(batch.records) == stats.records > 8000
    assert batch.records["ts"].is_monotonic_increasing
    assert batch.records["ts"].min() >= START and batch.records["ts"].max() < START + 1200
    assert stats.records_per_s > 0 and stats.labels == 1
    # Same records as the in-memory simulator.
    expected = Simulator(sc, metrics=False).generate(START, START + 1200)
    lines = out.read_text().splitlines()
    assert [json.loads(line) for line in lines] == expected
    document = json.loads(labels.read_text())
    assert document["seed"] == sc.seed and document["start"] == START
    assert load_labels(labels) == [
        {
            "kind": "traffic",
            "start": START + 300,
            "end": START + 600,
            "scope": {"api_key": "support-web"},
            "fault": "key_surge",
        }
    ]


def test_write_offline_gzip_is_deterministic(tmp_path: Path) -> None:
    sc = default_demo_scenario()
    a = write_offline(sc, tmp_path / "a.jsonl.gz", tmp_path / "a.json", hours=0.25)
    b = write_offline(sc, tmp_path / "b.jsonl", tmp_path / "b.json", hours=0.25)
    assert a.records == b.records and a.end == START + 900
    with gzip.open(tmp_path / "a.jsonl.gz", "rt") as handle:
        assert handle.read() == (tmp_path / "b.jsonl").read_text()
    assert read_log(tmp_path / "a.jsonl.gz").malformed == 0
    # The outage starts at minute 40, after these 15 minutes, but its label is still written.
    assert load_labels(tmp_path / "a.json")[0]["fault"] == "provider_outage"


def test_scenario_yaml_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        """
name: surge
seed: 3
duration_s: 600
base_rps: 4
faults:
  - type: key_surge
    api_key: search-prod
    start: 60
    duration: 120
    factor: 10
  - type: agent_loop
    workflow: research-agent
    start: 100
    duration: 300
"""
    )
    sc = Scenario.from_yaml(path)
    assert sc.seed == 3 and len(sc.faults) == 2
    labels = sc.labels()
    assert [label["kind"] for label in labels] == ["traffic", "agent_loop"]
    assert labels[1]["scope"]["api_key"] == "research-prod"
    assert labels == Simulator(sc, metrics=False).labels()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("seed: -1\n", "seed"),
        ("faults:\n  - type: meteor\n    start: 0\n    duration: 1\n", "faults.0"),
        ("faults:\n  - {type: key_surge, api_key: ghost, start: 0, duration: 5}\n", "ghost"),
        ("faults:\n  - {type: cost_spike, start: 0, duration: 5}\n", "exactly one"),
        ("bogus: 1\n", "bogus"),
        (
            "faults:\n  - {type: provider_outage, provider: openai, model: gpt-9, start: 0, "
            "duration: 5}\n",
            "gpt-9",
        ),
        (
            "faults:\n  - {type: agent_loop, workflow: code-agent, interval_min: 5, "
            "interval_max: 1, start: 0, duration: 5}\n",
            "interval_max",
        ),
        ("- a list\n", "mapping"),
        ("key: [unclosed\n", "s.yaml"),
    ],
)
def test_scenario_yaml_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Scenario.from_yaml(path)
    assert any(needle in p for p in info.value.problems), info.value.problems
    assert all(p.startswith(str(path)) for p in info.value.problems)


def test_catalog_override_is_validated() -> None:
    raw = default_demo_scenario().effective_catalog().model_dump()
    raw["model_groups"][0]["deployments"].append("ghost-deployment")
    with pytest.raises(ValueError, match="ghost-deployment"):
        Scenario.model_validate({"catalog": raw})


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return parser.parse_args(list(argv))


def test_cli_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.jsonl.gz"
    assert run(_args("--out", str(out), "--hours", "0.1", "--seed", "5")) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["records"] == len(read_log(out).records) > 0
    assert (tmp_path / "run.labels.json").exists()


def test_cli_rejects_bad_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("seed: nope\n")
    assert run(_args("--scenario", str(path), "--out", str(tmp_path / "x.jsonl"))) == 2
    assert "seed" in capsys.readouterr().err
    assert run(_args("--start", "yesterday", "--out", str(tmp_path / "x.jsonl"))) == 2


def test_fast_line_encoder_matches_json() -> None:
    from gatewarden.simulator.faults import AgentLoop, ProviderOutage
    from gatewarden.simulator.offline import _LineEncoder

    faults = (
        ProviderOutage(start=0, duration=600, provider="openai", error_rate=0.5),
        AgentLoop(start=0, duration=300, workflow="code-agent"),
    )
    sim = Simulator(scenario(*faults), metrics=False)
    sim.advance_to(START + 300)
    sim.state.update_key("search-prod", blocked=True)
    records = sim.generate(START, START + 600)
    assert {r["provider"] for r in records} >= {"gateway", "openai", "anthropic"}
    encoder = _LineEncoder()
    for r in records:
        assert encoder.encode(r) == json.dumps(r, separators=(",", ":")) + "\n"
