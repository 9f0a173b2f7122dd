"""``gatewarden simulate``: serve the simulator live, or write a scenario offline."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from gatewarden.clock import ScaledClock
from gatewarden.errors import ConfigError
from gatewarden.simulator.offline import write_offline
from gatewarden.simulator.scenario import Scenario, default_demo_scenario
from gatewarden.simulator.server import SimulatorServer
from gatewarden.simulator.sim import Simulator


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", type=Path, help="scenario YAML (default: the demo outage)")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument(
        "--start",
        help="override the scenario start: epoch seconds, or 'now' (live mode default: scenario)",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        help="take arrivals and token sizes from a real trace (Azure LLM CSV or Mooncake JSONL)",
    )
    live = parser.add_argument_group("live server")
    live.add_argument("--speed", type=float, default=1.0, help="sim seconds per wall second")
    live.add_argument("--host", default="127.0.0.1")
    live.add_argument("--port", type=int, default=4000)
    offline = parser.add_argument_group("offline generation")
    offline.add_argument("--out", type=Path, help="write records to FILE.jsonl[.gz] and exit")
    offline.add_argument("--labels", type=Path, help="labels JSON (default: next to --out)")
    offline.add_argument("--hours", type=float, help="override the scenario duration")


def _scenario(args: argparse.Namespace) -> Scenario:
    scenario = Scenario.from_yaml(args.scenario) if args.scenario else default_demo_scenario()
    update: dict[str, object] = {}
    if args.seed is not None:
        update["seed"] = args.seed
    if args.start is not None:
        update["start"] = float(int(time.time())) if args.start == "now" else float(args.start)
    if args.trace is not None:
        update["trace"] = {"path": args.trace}
    # Re-validate so faults are checked against the overridden values.
    return Scenario.model_validate(scenario.model_dump() | update) if update else scenario


def run(args: argparse.Namespace) -> int:
    try:
        scenario = _scenario(args)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "scenario"
            print(f"invalid --start/--seed/--trace: {where}: {err['msg']}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"invalid --start/--seed/--trace: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        labels = args.labels or args.out.with_name(args.out.name.split(".")[0] + ".labels.json")
        stats = write_offline(scenario, args.out, labels, hours=args.hours)
        print(json.dumps(stats.as_dict()))
        return 0
    if args.speed <= 0:
        print("--speed must be positive", file=sys.stderr)
        return 2
    sim = Simulator(scenario, ScaledClock(scenario.start, args.speed))
    server = SimulatorServer(sim, args.host, args.port)
    print(
        f"gatewarden simulator: scenario {scenario.name!r} seed {scenario.seed} at "
        f"{args.speed:g}x on http://{args.host}:{args.port} (master key {scenario.master_key})",
        file=sys.stderr,
    )
    server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatewarden simulate", description=__doc__)
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
