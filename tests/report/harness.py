"""A daemon-like assembly against the simulator on a stepped VirtualClock, as ``demo.py`` does,
with the :class:`SeriesRecorder` inserted after ``correlate`` (where the lead wires it).

Shared by the report tests and the console (browser) test.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gatewarden.clock import VirtualClock
from gatewarden.config import load_config
from gatewarden.daemon import Assembly, build
from gatewarden.protocols import Tick
from gatewarden.report import SeriesRecorder
from gatewarden.simulator import ProviderOutage, Scenario, Simulator, SimulatorServer

REPO = Path(__file__).resolve().parents[2]
TICK_S = 15.0

CONFIG = """\
tick_seconds: 15
sources:
  - {{type: http_request_log, name: request_log, url: "{url}"}}
gateway: {{type: litellm, base_url: "{url}", master_key: {{env: GW_TEST_MASTER_KEY}}}}
store: {{path: gatewarden.db}}
detectors_dir: {detectors}
playbooks_dir: {playbooks}
reports_dir: reports
remediate: {{demo_auto_approve: {auto}}}
notify: {notify}
{extra}
"""


def short_outage(*, start_min: float = 6, minutes: float = 10, total_min: float = 40) -> Scenario:
    """The demo's OpenAI outage, moved early so a test needs fewer ticks."""
    return Scenario(
        name="short-openai-outage",
        seed=7,
        duration_s=total_min * 60,
        base_rps=8.0,
        faults=[
            ProviderOutage(
                start=start_min * 60, duration=minutes * 60, provider="openai", error_rate=0.5
            )
        ],
    )


@dataclass
class Harness:
    workdir: Path
    scenario: Scenario
    clock: VirtualClock
    sim: Simulator
    server: SimulatorServer
    assembly: Assembly
    recorder: SeriesRecorder
    out: io.StringIO
    ticks: list[Tick] = field(default_factory=list)

    @property
    def reports_dir(self) -> Path:
        return self.workdir / "reports"

    def step(self) -> Tick:
        tick = self.assembly.pipeline.tick()
        self.clock.advance(TICK_S)
        self.ticks.append(tick)
        return tick

    def run_until(self, done: Callable[[], bool], *, max_ticks: int) -> int:
        """Tick until ``done()``; returns ticks taken. Fails the test when it never happens."""
        for n in range(1, max_ticks + 1):
            self.step()
            if done():
                return n
        raise AssertionError(f"condition not reached in {max_ticks} ticks:\n{self.out.getvalue()}")

    def admin_calls(self) -> list[tuple[str, str]]:
        return [(c.method, c.path) for c in self.sim.state.admin_calls() if c.path != "/model/info"]

    def close(self) -> None:
        self.assembly.close()
        self.server.stop()


def failover_playbook(directory: Path, approvers: list[str]) -> Path:
    """The shipped provider-failover playbook with its approval step given to ``approvers``
    (the shipped one names a config-resolved group)."""
    raw = yaml.safe_load((REPO / "playbooks" / "provider-failover.yaml").read_text())
    approval = next(step for step in raw["steps"] if step["type"] == "approval")
    approval["approvers"] = approvers
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "provider-failover.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return directory


def start(
    workdir: Path,
    scenario: Scenario,
    *,
    auto_approve: bool,
    approvers: list[str] | None = None,
    detector_files: list[str] | None = None,
    notify: str = "{console: true}",
    extra: str = "",
    env: dict[str, str] | None = None,
) -> Harness:
    """Simulator + daemon assembly on the shipped detectors and playbooks. ``approvers`` set:
    only provider-failover, approved by them; ``detector_files``: only those shipped files;
    ``notify`` the config's notify section (flow YAML), ``extra`` more top-level YAML, ``env``
    more environment (secrets)."""
    workdir.mkdir(parents=True, exist_ok=True)
    detectors = REPO / "detectors"
    if detector_files is not None:
        detectors = workdir / "detectors"
        detectors.mkdir(exist_ok=True)
        for name in detector_files:
            shutil.copy(REPO / "detectors" / name, detectors / name)
    playbooks = REPO / "playbooks"
    if approvers is not None:
        playbooks = failover_playbook(workdir / "playbooks", approvers)
    clock = VirtualClock(scenario.start)
    sim = Simulator(scenario, clock)
    server = SimulatorServer(sim)
    url = server.start()
    config_path = workdir / "gatewarden.yaml"
    config_path.write_text(
        CONFIG.format(
            url=url,
            detectors=detectors,
            playbooks=playbooks,
            auto=str(auto_approve).lower(),
            notify=notify,
            extra=extra,
        ),
        encoding="utf-8",
    )
    config = load_config(config_path)
    out = io.StringIO()
    secrets = {"GW_TEST_MASTER_KEY": scenario.master_key, **(env or {})}
    assembly = build(config, clock=clock, env=secrets, stream=out)
    stages = assembly.pipeline.stages
    wired = [s for s in stages if isinstance(s, SeriesRecorder)]
    recorder = wired[0] if wired else SeriesRecorder(assembly.store, assembly.history)
    if not wired:  # until daemon.build wires it, where the lead puts it: after correlate
        stages.insert(stages.index(assembly.correlate) + 1, recorder)
    return Harness(workdir, scenario, clock, sim, server, assembly, recorder, out)
