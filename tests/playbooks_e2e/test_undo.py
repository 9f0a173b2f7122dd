"""``gatewarden undo`` against the simulator: a provider failover is undone from the command
line, on the daemon's store, and the simulator receives the restoring calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewarden.cli import main
from gatewarden.models import EventType
from gatewarden.simulator import ProviderOutage

from .harness import ONSET_S, after, start
from .test_routing_playbooks import order_update

HOURS = 3 * 3600.0


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "gatewarden.yaml"
    path.write_text(
        f'gateway: {{type: litellm, base_url: "{url}", master_key: {{env: GW_UNDO_KEY}}}}\n'
        f"store: {{backend: sqlite, path: {tmp_path / 'gw.db'}}}\n"
    )
    return path


def test_a_failover_is_undone_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outage = ProviderOutage(start=ONSET_S, duration=HOURS, provider="openai", error_rate=0.5)
    h = start([outage], store_path=tmp_path / "gw.db")
    try:
        monkeypatch.setenv("GW_UNDO_KEY", h.sim.scenario.master_key)
        cfg = config(tmp_path, h.server.url)
        h.skip(60)
        run = h.open_incident("inc-outage", "error_rate", {"provider": "openai"})
        h.tick()
        # Still waiting for its approval: an undo is refused.
        assert main(["undo", run, "--by", "alice", "--config", str(cfg)]) == 1
        assert "still in progress" in capsys.readouterr().err
        h.approve(run, 0)
        h.until(lambda: h.state(run) is not None, max_ticks=8)
        assert h.state(run) == "succeeded"
        failover = [order_update("openai-gpt-4o", 3), order_update("openai-gpt-4o-mini", 3)]
        assert h.writes() == failover

        argv = ["undo", run, "--by", "alice", "--reason", "openai is back", "--config", str(cfg)]
        assert main(argv) == 0
        assert "step 1: undone: set deployment orders" in capsys.readouterr().out
        restore = [order_update("openai-gpt-4o", 1), order_update("openai-gpt-4o-mini", 1)]
        assert h.writes() == [*failover, *restore]
        [rolled] = h.store.events(run_id=run, types=[EventType.ACTION_ROLLED_BACK])
        assert (rolled.payload["by"], rolled.payload["reason"]) == ("alice", "openai is back")
        intents = h.store.events(run_id=run, types=[EventType.ACTION_INTENDED])
        assert intents[-1].key == f"rollback:{run}:1"  # stored before the call's outcome
        assert (intents[-1].seq or 0) < (rolled.seq or 0)
        orders = {d.id: d.order for d in h.sim.state.deployments()}
        assert orders["openai-gpt-4o"] == 1 and orders["openai-gpt-4o-mini"] == 1
        undone = h.clock.now()
        h.skip(60)
        assert after(h.records(undone), provider="openai")  # openai takes its traffic again

        assert main(argv) == 0  # a second undo changes nothing
        assert "nothing to undo (step(s) 1 already undone)" in capsys.readouterr().out
        assert h.writes() == [*failover, *restore]
    finally:
        h.close()
