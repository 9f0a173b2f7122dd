"""LiteLLMConfigFile against a real config file, a real reload command and a real HTTP health
endpoint on 127.0.0.1.

The "proxy" here is two real pieces: the reload command (a Python script) copies the config to
``loaded.yaml`` as a restart would load it, refusing a config that holds ``order: 666``; the
health server answers readiness from ``loaded.yaml`` and is unhealthy while it holds
``order: 777``. So a bad change fails the way it would on a real proxy, and restoring the backup
really brings the "proxy" back.
"""

from __future__ import annotations

import difflib
import stat
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from gatewarden.errors import GatewayRejected
from gatewarden.gateways.litellm_config import NO_DB, LiteLLMConfigFile
from gatewarden.models import GatewayAction
from gatewarden.protocols import GatewayAdmin

CONFIG = """\
# LiteLLM proxy config, maintained by the platform team.
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY  # never inline keys
      order: 1
    model_info:
      id: openai-gpt-4o
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o
      api_base: https://example-eastus.openai.azure.com
      order: 2
    model_info:
      id: azure-gpt-4o
  - model_name: claude-sonnet
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      rpm: 600

router_settings:
  routing_strategy: simple-shuffle
  fallbacks: [{"gpt-4o": ["claude-sonnet"]}]

general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""

RELOAD = """\
import pathlib, sys
work = pathlib.Path(sys.argv[1])
text = (work / "config.yaml").read_text()
with open(work / "reloads.log", "a") as log:
    log.write("reload\\n")
if "order: 666" in text:
    print("invalid deployment order 666", file=sys.stderr)
    sys.exit(3)
(work / "loaded.yaml").write_text(text)
"""


class Proxy:
    """The health side of the fake proxy: serves /health/* from what was last loaded."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.hits: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.hits.append(self.path)
                loaded = proxy.work / "loaded.yaml"
                text = loaded.read_text() if loaded.exists() else ""
                if self.path == "/health/liveliness":
                    code, body = 200, b'"I\'m alive!"'
                elif "order: 777" in text:
                    code, body = 503, b'{"status": "unhealthy"}'
                else:
                    code, body = 200, b'{"status": "healthy", "db": "Not connected"}'
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "loaded.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "reload.py").write_text(RELOAD, encoding="utf-8")
    return tmp_path


@pytest.fixture
def proxy(work: Path) -> Iterator[Proxy]:
    p = Proxy(work)
    yield p
    p.stop()


def adapter(work: Path, proxy: Proxy, **kwargs: object) -> tuple[LiteLLMConfigFile, list[float]]:
    sleeps: list[float] = []
    defaults: dict[str, object] = {"health_attempts": 3, "health_interval_s": 1.0}
    gw = LiteLLMConfigFile(
        work / "config.yaml",
        reload_command=[sys.executable, str(work / "reload.py"), str(work)],
        health_url=proxy.url,
        sleep=sleeps.append,
        **(defaults | kwargs),  # type: ignore[arg-type]
    )
    return gw, sleeps


def act(type_: str, **params: object) -> GatewayAction:
    return GatewayAction(type=type_, params=params)


def reloads(work: Path) -> int:
    log = work / "reloads.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def orders(work: Path, name: str = "config.yaml") -> dict[str, int | None]:
    data = yaml.safe_load((work / name).read_text())
    out = {}
    for entry in data["model_list"]:
        dep_id = (entry.get("model_info") or {}).get("id")
        dep_id = dep_id or f"{entry['model_name']}/{entry['litellm_params']['model']}"
        out[dep_id] = entry["litellm_params"].get("order")
    return out


def test_satisfies_protocol_and_plans_from_the_file(work: Path, proxy: Proxy) -> None:
    gw, _ = adapter(work, proxy)
    assert isinstance(gw, GatewayAdmin)
    plan = gw.plan(act("failover_provider", provider="openai"))
    assert plan.preview == "will move model group gpt-4o from openai to azure"
    assert plan.action.params["orders"] == {"openai-gpt-4o": 3}
    assert plan.inverse == act("set_deployment_orders", orders={"openai-gpt-4o": 1})
    # A deployment without model_info.id is known by model_name/model.
    sonnet = "claude-sonnet/anthropic/claude-sonnet-4-5"
    limits = gw.plan(act("set_deployment_limits", deployment_id=sonnet, rpm=60))
    assert limits.inverse == act("set_deployment_limits", deployment_id=sonnet, rpm=600)
    assert reloads(work) == 0 and proxy.hits == []


def test_failover_rewrites_atomically_keeps_backup_reloads_and_checks_health(
    work: Path, proxy: Proxy
) -> None:
    (work / "config.yaml").chmod(0o640)
    gw, _ = adapter(work, proxy)
    plan = gw.plan(act("failover_provider", provider="openai"))
    outcome = gw.apply(plan.action, key="run-1:1")
    assert outcome.ok and "reloaded" in outcome.detail
    assert orders(work) == {
        "openai-gpt-4o": 3,
        "azure-gpt-4o": 2,
        "claude-sonnet/anthropic/claude-sonnet-4-5": None,
    }
    assert orders(work, "loaded.yaml") == orders(work)  # the reload command saw the new file
    text = (work / "config.yaml").read_text()
    # Comments, quoting, env references and the other settings survive the round trip: the
    # only changed line is the order.
    changed = [d for d in difflib.ndiff(CONFIG.splitlines(), text.splitlines()) if d[0] in "+-"]
    assert changed == ["-       order: 1", "+       order: 3"]
    assert (work / "config.yaml.gatewarden.bak").read_text() == CONFIG
    assert not (work / "config.yaml.gatewarden.pending").exists()
    assert stat.S_IMODE((work / "config.yaml").stat().st_mode) == 0o640
    assert reloads(work) == 1
    assert proxy.hits == ["/health/liveliness", "/health/readiness"]
    assert [p.name for p in work.iterdir() if p.name.endswith(".tmp")] == []
    # Same idempotency key again: no second write, no second reload.
    assert gw.apply(plan.action, key="run-1:1") == outcome
    assert reloads(work) == 1
    # The inverse restores the file's routing.
    assert plan.inverse is not None
    gw.apply(plan.inverse, key="run-1:rollback")
    assert orders(work)["openai-gpt-4o"] == 1
    assert reloads(work) == 2


def test_fallbacks_are_edited_in_router_settings(work: Path, proxy: Proxy) -> None:
    gw, _ = adapter(work, proxy)
    plan = gw.plan(act("set_fallbacks", model="gpt-4o", fallback_models=["claude-sonnet", "x"]))
    assert plan.inverse == act("set_fallbacks", model="gpt-4o", fallback_models=["claude-sonnet"])
    gw.apply(plan.action, key="k1")
    fresh = gw.plan(act("set_fallbacks", model="claude-sonnet", fallback_models=["gpt-4o"]))
    assert fresh.inverse == act("delete_fallbacks", model="claude-sonnet")
    gw.apply(fresh.action, key="k2")
    gw.apply(act("delete_fallbacks", model="gpt-4o"), key="k3")
    data = yaml.safe_load((work / "config.yaml").read_text())
    assert data["router_settings"]["fallbacks"] == [{"claude-sonnet": ["gpt-4o"]}]


def test_a_change_that_changes_nothing_does_not_reload(work: Path, proxy: Proxy) -> None:
    gw, _ = adapter(work, proxy)
    outcome = gw.apply(act("set_deployment_order", deployment_id="azure-gpt-4o", order=2), key="k")
    assert outcome.ok and "no change" in outcome.detail
    assert reloads(work) == 0
    assert (work / "config.yaml").read_text() == CONFIG


def test_failing_reload_command_restores_the_backup(work: Path, proxy: Proxy) -> None:
    gw, _ = adapter(work, proxy)
    with pytest.raises(GatewayRejected) as info:
        gw.apply(act("set_deployment_order", deployment_id="azure-gpt-4o", order=666), key="k")
    message = str(info.value)
    assert "exited 3: invalid deployment order 666" in message
    assert "restored config.yaml.gatewarden.bak and the proxy is healthy again" in message
    assert (work / "config.yaml").read_text() == CONFIG
    assert orders(work, "loaded.yaml")["azure-gpt-4o"] == 2  # the proxy runs the old config
    assert reloads(work) == 2  # the failed one, then the one loading the restored file
    assert not (work / "config.yaml.gatewarden.pending").exists()


def test_proxy_that_stays_unhealthy_fails_visibly_and_is_restored(work: Path, proxy: Proxy) -> None:
    gw, sleeps = adapter(work, proxy, health_attempts=3, health_interval_s=2.5, settle_s=0.5)
    with pytest.raises(GatewayRejected) as info:
        gw.apply(act("set_deployment_order", deployment_id="azure-gpt-4o", order=777), key="k")
    message = str(info.value)
    assert "proxy unhealthy after 3 checks (last: GET /health/readiness: HTTP 503)" in message
    assert "healthy again" in message
    assert (work / "config.yaml").read_text() == CONFIG
    assert "order: 777" not in (work / "loaded.yaml").read_text()
    # Retries waited between checks (through the injected sleep), none before the first one
    # beyond the settle time; the restore's own health check passed at once.
    assert sleeps == [0.5, 2.5, 2.5, 0.5]


def test_reload_command_that_cannot_run_or_hangs(work: Path, proxy: Proxy) -> None:
    missing = LiteLLMConfigFile(
        work / "config.yaml",
        reload_command=[str(work / "no-such-command")],
        health_url=proxy.url,
    )
    with pytest.raises(GatewayRejected, match="could not run"):
        missing.apply(act("set_deployment_order", deployment_id="azure-gpt-4o", order=5), key="k")
    assert (work / "config.yaml").read_text() == CONFIG
    hangs = LiteLLMConfigFile(
        work / "config.yaml",
        reload_command=[sys.executable, "-c", "import time; time.sleep(30)"],
        health_url=proxy.url,
        reload_timeout_s=0.3,
    )
    with pytest.raises(GatewayRejected, match=r"timed out after 0\.3s"):
        hangs.apply(act("set_deployment_order", deployment_id="azure-gpt-4o", order=5), key="k")
    assert (work / "config.yaml").read_text() == CONFIG


def test_crash_after_the_write_reloads_on_reapply(work: Path, proxy: Proxy) -> None:
    gw, _ = adapter(work, proxy)
    action = act("set_deployment_order", deployment_id="azure-gpt-4o", order=0)
    gw.apply(action, key="k")
    # Simulate a crash between the write and the confirmed reload: the marker is left behind.
    (work / "config.yaml.gatewarden.pending").write_text("k\n")
    (work / "loaded.yaml").write_text(CONFIG)  # the proxy never loaded the change
    restarted, _ = adapter(work, proxy)
    assert not restarted.satisfied(action)  # the file has it, the proxy may not
    restarted.apply(action, key="k")
    assert orders(work, "loaded.yaml")["azure-gpt-4o"] == 0
    assert restarted.satisfied(action)
    assert (work / "config.yaml.gatewarden.bak").read_text() == CONFIG


DB_ACTIONS = {
    "block_key": {"key": "sk-a"},
    "unblock_key": {"key": "sk-a"},
    "update_key_limits": {"key": "sk-a", "rpm_limit": 5},
    "set_keys_limits": {"limits": {"sk-a": {"rpm_limit": 5}}},
    "update_team_limits": {"team": "search", "rpm_limit": 5},
    "throttle_workflow": {"workflow": "wf", "rpm_limit": 5, "keys": ["sk-a"]},
}


@pytest.mark.parametrize("type_", sorted(DB_ACTIONS))
def test_key_and_team_actions_need_a_database(work: Path, proxy: Proxy, type_: str) -> None:
    gw, _ = adapter(work, proxy)
    action = act(type_, **DB_ACTIONS[type_])
    with pytest.raises(GatewayRejected) as info:
        gw.plan(action)
    assert str(info.value) == NO_DB
    with pytest.raises(GatewayRejected):
        gw.apply(action, key="k")
    assert reloads(work) == 0


def test_unreadable_or_invalid_config_is_refused(work: Path, proxy: Proxy) -> None:
    (work / "config.yaml").write_text("model_list: [unclosed\n")
    gw, _ = adapter(work, proxy)
    with pytest.raises(GatewayRejected, match="not valid YAML"):
        gw.plan(act("failover_provider", provider="openai"))
