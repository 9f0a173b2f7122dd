"""``gatewarden playbook test``: the shipped playbooks against their fixtures, no call made."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from gatewarden.clock import VirtualClock
from gatewarden.remediate import playbook_test
from gatewarden.simulator import Scenario, Simulator, SimulatorServer

REPO = Path(__file__).resolve().parents[2]
BOOKS = REPO / "playbooks"
FIXTURES = BOOKS / "fixtures"


def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    playbook_test.configure_parser(parser)
    out = io.StringIO()
    code = playbook_test.run(parser.parse_args([*argv, "--playbooks-dir", str(BOOKS)]), out)
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("book", "fixture", "expected"),
    [
        (
            "provider-failover",
            "provider-outage",
            'would call POST /model/update {"litellm_params": {"order": 3}, '
            '"model_info": {"id": "openai-gpt-4o"}}',
        ),
        (
            "model-failover",
            "model-errors",
            'would call POST /model/update {"litellm_params": {"order": 3}, '
            '"model_info": {"id": "openai-gpt-4o-mini"}}',
        ),
        ("ttft-model-shift", "ttft-degradation", "from openai/gpt-4o to azure/gpt-4o"),
        ("fallback-storm-failover", "fallback-storm", "from openai-gpt-4o to azure-gpt-4o"),
        (
            "cost-spike-throttle",
            "cost-spike",
            "would call GET /key/list?key_alias=analytics-dash&return_full_object=true\n"
            '  would call POST /key/update {"key": "<hashed token of key_alias analytics-dash>", '
            '"rpm_limit": 10}',
        ),
        (
            "agent-loop-throttle",
            "agent-loop",
            'POST /key/block {"key": "<hashed token of key_alias code-agent-ci>"}',
        ),
        (
            "key-surge-revoke",
            "key-surge",
            'POST /key/block {"key": "<hashed token of key_alias growth-experiments>"}',
        ),
        (
            "ttft-provider-shift",
            "ttft-provider",
            'would call POST /model/update {"litellm_params": {"order": 3}, '
            '"model_info": {"id": "openai-gpt-4o"}}\n'
            '  would call POST /model/update {"litellm_params": {"order": 3}, '
            '"model_info": {"id": "openai-gpt-4o-mini"}}',
        ),
        ("cost-model-failover", "model-cost", "from openai/gpt-4o to azure/gpt-4o"),
        (
            "cost-workflow-throttle",
            "workflow-cost",
            "throttle workflow support-chat (keys support-web, support-mobile, support-email): "
            "rpm_limit=10",
        ),
        (
            "team-surge-throttle",
            "team-surge",
            "would call GET /v2/team/list?team_alias=support&page=1&page_size=100\n"
            '  would call POST /team/update {"rpm_limit": 300, '
            '"team_id": "<team_id of team support>"}',
        ),
    ],
)
def test_every_shipped_playbook_dry_runs_on_its_fixture(
    book: str, fixture: str, expected: str
) -> None:
    code, out = run(book, "--incident", str(FIXTURES / f"{fixture}.yaml"))
    assert code == 0, out
    assert expected in out
    assert out.rstrip().endswith("result: OK (nothing was called)")


def test_mismatch_and_bad_inputs() -> None:
    code, out = run("key-surge-revoke", "--incident", str(FIXTURES / "provider-outage.yaml"))
    assert code == 1
    assert "does not match incident inc-provider-outage: it wants kinds ['traffic']" in out
    assert run("no-such-book", "--incident", str(FIXTURES / "key-surge.yaml"))[0] == 2
    assert run("key-surge-revoke", "--incident", str(BOOKS / "nope.yaml"))[0] == 2


def test_unplannable_step_is_reported(tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    state.write_text("deployments: []\nkeys: {}\n")
    code, out = run(
        str(BOOKS / "provider-failover.yaml"),
        "--incident",
        str(FIXTURES / "provider-outage.yaml"),
        "--gateway-state",
        str(state),
    )
    assert code == 1
    assert "could not plan: no model group has openai first" in out
    assert out.rstrip().endswith("result: PROBLEMS")


def test_json_output() -> None:
    code, out = run(
        "cost-spike-throttle", "--incident", str(FIXTURES / "cost-spike.yaml"), "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    actions = [s for s in doc["steps"] if s["type"] == "action"]
    assert [a["action"]["type"] for a in actions] == ["update_key_limits", "block_key"]
    assert actions[1]["requests"] == [
        {
            "method": "GET",
            "path": "/key/list?key_alias=analytics-dash&return_full_object=true",
            "body": None,
        },
        {
            "method": "POST",
            "path": "/key/block",
            "body": {"key": "<hashed token of key_alias analytics-dash>"},
        },
    ]
    assert actions[1]["inverse"] == {"type": "unblock_key", "params": {"key": "analytics-dash"}}


def test_against_a_live_proxy_only_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = Scenario(name="idle", duration_s=600, base_rps=1.0)
    sim = Simulator(scenario, VirtualClock(scenario.start))
    monkeypatch.setenv("GW_TEST_KEY", scenario.master_key)
    with SimulatorServer(sim) as server:
        code, out = run(
            "provider-failover",
            "--incident",
            str(FIXTURES / "provider-outage.yaml"),
            "--litellm-url",
            server.url,
            "--master-key-env",
            "GW_TEST_KEY",
        )
    assert code == 0, out
    assert '"model_info": {"id": "openai-gpt-4o"}' in out
    assert {c.method for c in sim.state.admin_calls()} == {"GET"}
    assert sim.state.deployment("openai-gpt-4o").order == 1  # type: ignore[union-attr]


def test_against_a_config_file_shows_the_diff_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "litellm.yaml"
    text = (
        "model_list:\n"
        "  - model_name: gpt-4o\n"
        "    litellm_params: {model: openai/gpt-4o, order: 1}\n"
        "    model_info: {id: oa}\n"
        "  - model_name: gpt-4o\n"
        "    litellm_params: {model: azure/gpt-4o, order: 2}\n"
        "    model_info: {id: az}\n"
    )
    config.write_text(text)
    code, out = run(
        "provider-failover",
        "--incident",
        str(FIXTURES / "provider-outage.yaml"),
        "--litellm-config",
        str(config),
    )
    assert code == 0, out
    assert f"would rewrite {config}:" in out
    assert "-    litellm_params: {model: openai/gpt-4o, order: 1}" in out
    assert "+    litellm_params: {model: openai/gpt-4o, order: 3}" in out
    assert config.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["litellm.yaml"]


def test_against_a_live_proxy_keys_are_resolved_by_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = Scenario(name="idle", duration_s=600, base_rps=1.0)
    sim = Simulator(scenario, VirtualClock(scenario.start))
    hashed = next(k for k in sim.catalog.keys if k.alias == "growth-experiments").hashed
    monkeypatch.setenv("GW_TEST_KEY", scenario.master_key)
    with SimulatorServer(sim) as server:
        code, out = run(
            "key-surge-revoke",
            "--incident",
            str(FIXTURES / "key-surge.yaml"),
            "--litellm-url",
            server.url,
            "--master-key-env",
            "GW_TEST_KEY",
        )
    assert code == 0, out
    assert f'would call POST /key/block {{"key": "{hashed}"}}' in out
    calls = sim.state.admin_calls()
    assert {c.method for c in calls} == {"GET"}
    assert "/key/list?key_alias=growth-experiments&return_full_object=true" in {
        c.path for c in calls
    }
    assert not sim.state.key("growth-experiments").blocked


def test_a_workflow_throttle_needs_the_fixture_traffic(tmp_path: Path) -> None:
    fixture = tmp_path / "no-traffic.yaml"
    text = (FIXTURES / "workflow-cost.yaml").read_text()
    fixture.write_text(text.split("# The calls of the last ticks")[0])
    code, out = run("cost-workflow-throttle", "--incident", str(fixture))
    assert code == 1
    assert "could not plan: throttle_workflow support-chat: no keys" in out
    # The traffic names the keys, biggest spenders first; other workflows' keys stay out.
    code, out = run("cost-workflow-throttle", "--incident", str(FIXTURES / "workflow-cost.yaml"))
    assert code == 0, out
    assert "analytics-dash" not in out
    assert out.count("keys support-web, support-mobile, support-email") == 2  # both steps
