"""The ``gatewarden`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gatewarden.clock import ScaledClock, SystemClock
from gatewarden.config import DaemonConfig, environ, load_config
from gatewarden.errors import ConfigError, GatewardenError
from gatewarden.protocols import Clock

log = logging.getLogger("gatewarden")

DEFAULT_CONFIG = Path("config/gatewarden.example.yaml")


def _config(args: argparse.Namespace) -> DaemonConfig:
    return load_config(Path(args.config))


def cmd_run(args: argparse.Namespace) -> int:
    from gatewarden.daemon import Daemon, build

    config = _config(args)
    logging.getLogger().setLevel(config.log_level)
    clock: Clock = SystemClock()
    interval = config.tick_seconds
    if config.clock.type == "scaled":
        c = config.clock
        clock = ScaledClock(c.start, c.speed, origin=c.origin)
        interval = config.tick_seconds / c.speed
        log.warning("simulated clock: %gx real time (never in production)", c.speed)
    env = environ()
    token = config.web.token.resolve(env, "web.token") if config.web.token else None
    assembly = build(config, clock=clock, env=env)
    daemon = Daemon(assembly, interval_s=interval, web=config.web, console_token=token)
    try:
        daemon.run()
    finally:
        assembly.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gatewarden.demo import run_demo

    return run_demo(speed=args.speed, workdir=Path(args.workdir), repo=Path(args.repo))


def cmd_check_config(args: argparse.Namespace) -> int:
    from gatewarden.detect import load_detector_specs
    from gatewarden.remediate import load_playbooks

    problems: list[str] = []
    config: DaemonConfig | None = None
    try:
        config = _config(args)
    except ConfigError as exc:
        problems.extend(exc.problems)
    detectors_dir = Path(args.detectors) if args.detectors else None
    playbooks_dir = Path(args.playbooks) if args.playbooks else None
    if config is not None:
        detectors_dir = detectors_dir or config.detectors_dir
        playbooks_dir = playbooks_dir or config.playbooks_dir
    counts: dict[str, int] = {}
    if detectors_dir is not None:
        try:
            counts["detectors"] = len(load_detector_specs(detectors_dir))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if playbooks_dir is not None:
        try:
            counts["playbooks"] = len(load_playbooks(playbooks_dir))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"check-config: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    print(f"check-config: OK ({args.config}; {summary})")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from gatewarden.backtest import run_backtest
    from gatewarden.detect import load_detector_specs

    config = load_config(Path(args.config)) if args.config else None
    detectors = Path(args.detectors) if args.detectors else None
    if detectors is None:
        detectors = config.detectors_dir if config else Path("detectors")
    specs = load_detector_specs(detectors)
    document = run_backtest(
        Path(args.requests),
        specs,
        tick_seconds=config.tick_seconds if config else 15.0,
        correlate=config.correlate if config else None,
    )
    if args.format == "json":
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(
            f"{document['records']:,} records, {document['malformed']} malformed, "
            f"{document['alerts_total']} alerts, {len(document['incidents'])} incidents"
        )
        for inc in document["incidents"]:
            scope = ",".join(f"{k}={v}" for k, v in inc["scope"].items())
            print(f"  {inc['id']:<28} {inc['severity']:<8} {'+'.join(inc['kinds']):<24} {scope}")
    return 0


def cmd_incidents(args: argparse.Namespace) -> int:
    from gatewarden.projections import incidents_from_events
    from gatewarden.wiring import open_store

    store = open_store(_config(args))
    try:
        for inc in incidents_from_events(store.events()):
            print(f"{inc.id}  {inc.status.value:<8} {inc.severity.value:<8} {inc.title}")
    finally:
        store.close()
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from gatewarden.models import ApprovalDecision
    from gatewarden.remediate import record_decision
    from gatewarden.wiring import open_store

    decision = ApprovalDecision.GRANTED if args.command == "approve" else ApprovalDecision.DENIED
    store = open_store(_config(args))
    try:
        event = record_decision(
            store,
            run_id=args.run_id,
            step=args.step,
            decision=decision,
            by=args.by,
            reason=args.reason,
            now=SystemClock().now(),
        )
    finally:
        store.close()
    print(f"{event.type.value} for run {args.run_id} step {args.step} by {args.by}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gatewarden.report import write_reports
    from gatewarden.wiring import open_store

    config = _config(args)
    store = open_store(config)
    formats = ["md", "html", "json"] if args.format == "all" else [args.format]
    try:
        out = Path(args.out) if args.out else config.reports_dir
        written = write_reports(store, args.incident_id, out, formats=formats, clock=SystemClock())
    finally:
        store.close()
    for path, _ in written:
        print(path)
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1d`` (or plain seconds) -> seconds."""
    unit = text[-1:].lower()
    try:
        value = float(text[:-1]) * _UNITS[unit] if unit in _UNITS else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 2h)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a duration must be positive")
    return value


def cmd_silence(args: argparse.Namespace) -> int:
    from gatewarden.correlate.silence import (
        Matcher,
        create_silence,
        expire_silence,
        load_silences,
    )
    from gatewarden.wiring import open_store

    now = SystemClock().now()
    store = open_store(_config(args))
    try:
        if args.action == "add":
            try:
                matchers = [Matcher.parse(m) for m in args.match]
            except ValueError as exc:
                print(f"gatewarden: {exc}", file=sys.stderr)
                return 2
            start = now if args.starts_in is None else now + args.starts_in
            silence = create_silence(
                store,
                matchers=matchers,
                starts_at=start,
                ends_at=start + args.duration,
                by=args.by,
                reason=args.reason,
                now=now,
            )
            print(silence.id)
        elif args.action == "expire":
            try:
                expire_silence(store, args.silence_id, by=args.by, reason=args.reason, now=now)
            except KeyError:
                print(f"gatewarden: no silence {args.silence_id}", file=sys.stderr)
                return 1
            print(f"expired {args.silence_id}")
        else:
            for s in load_silences(store):
                state = "active" if s.active(now) else ("pending" if s.starts_at > now else "ended")
                shown = " ".join(str(m) for m in s.matchers)
                print(f"{s.id}  {state:<8} until {s.ends_at:.0f}  {shown}  by {s.by}: {s.reason}")
    finally:
        store.close()
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from gatewarden.config import DaemonConfig
    from gatewarden.detect.spec import DetectorSpec
    from gatewarden.remediate.language import playbook_json_schema

    schemas = {
        "config": DaemonConfig.model_json_schema(),
        "detector": DetectorSpec.model_json_schema(),
        "playbook": playbook_json_schema(),
    }
    json.dump(schemas[args.what], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def cmd_playbook_test(args: argparse.Namespace) -> int:
    from gatewarden.remediate import playbook_test

    return playbook_test.run(args)


def cmd_undo(args: argparse.Namespace) -> int:
    from gatewarden.remediate import undo

    return undo.run(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from gatewarden.simulator import cli as simulator_cli

    return simulator_cli.run(args)


def parser() -> argparse.ArgumentParser:
    from gatewarden.simulator import cli as simulator_cli

    root = argparse.ArgumentParser(prog="gatewarden", description=__doc__)
    root.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = root.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default=str(DEFAULT_CONFIG), help="daemon config YAML")
        return p

    with_config(sub.add_parser("run", help="run the daemon")).set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="the whole loop against the built-in simulator")
    demo.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    demo.add_argument("--workdir", default="var/demo", help="where the demo writes its state")
    demo.add_argument("--repo", default=".", help="directory holding detectors/ and playbooks/")
    demo.set_defaults(func=cmd_demo)

    check = with_config(
        sub.add_parser("check-config", help="validate config, detectors, playbooks")
    )
    check.add_argument("--detectors", help="override the config's detectors_dir")
    check.add_argument("--playbooks", help="override the config's playbooks_dir")
    check.set_defaults(func=cmd_check_config)

    bt = sub.add_parser("backtest", help="replay a request log through detection + correlation")
    bt.add_argument("--requests", required=True, help="request log (.jsonl or .jsonl.gz)")
    bt.add_argument("--config", help="daemon config (tick length, correlation, detectors_dir)")
    bt.add_argument(
        "--detectors", help="detectors directory (default: the config's, or ./detectors)"
    )
    bt.add_argument("--format", choices=["json", "table"], default="table")
    bt.set_defaults(func=cmd_backtest)

    with_config(sub.add_parser("incidents", help="list incidents")).set_defaults(func=cmd_incidents)

    for verb in ("approve", "deny"):
        p = with_config(sub.add_parser(verb, help=f"{verb} a pending playbook approval step"))
        p.add_argument("run_id")
        p.add_argument("--step", type=int, required=True)
        p.add_argument("--by", required=True, help="your approver id (must be allowed)")
        p.add_argument("--reason", default="")
        p.set_defaults(func=cmd_decide)

    und = with_config(sub.add_parser("undo", help="apply the inverse of a run's actions"))
    from gatewarden.remediate import undo

    undo.configure_parser(und)
    und.set_defaults(func=cmd_undo)

    sil = with_config(sub.add_parser("silence", help="mute matching alerts for a while"))
    sil_sub = sil.add_subparsers(dest="action", required=True)
    add = with_config(sil_sub.add_parser("add", help="create a silence / maintenance window"))
    add.add_argument(
        "--match",
        action="append",
        required=True,
        help="label matcher: provider=openai, kind=~error.*, team!=x (repeatable)",
    )
    add.add_argument("--duration", type=parse_duration, required=True, help="e.g. 30m, 2h")
    add.add_argument("--starts-in", type=parse_duration, help="start later (maintenance window)")
    add.add_argument("--by", required=True)
    add.add_argument("--reason", required=True)
    exp = with_config(sil_sub.add_parser("expire", help="end a silence now"))
    exp.add_argument("silence_id")
    exp.add_argument("--by", required=True)
    exp.add_argument("--reason", default="")
    with_config(sil_sub.add_parser("list", help="list silences"))
    sil.set_defaults(func=cmd_silence)

    rep = with_config(sub.add_parser("report", help="write an incident's timeline report"))
    rep.add_argument("incident_id")
    rep.add_argument("--format", choices=["md", "html", "json", "all"], default="md")
    rep.add_argument("--out", help="output directory (default: the config's reports_dir)")
    rep.set_defaults(func=cmd_report)

    from gatewarden.remediate import playbook_test

    pb = sub.add_parser("playbook", help="playbook tools")
    pb_sub = pb.add_subparsers(dest="playbook_command", required=True)
    pbt = pb_sub.add_parser(
        "test", help="dry-run a playbook against a recorded incident; nothing is called"
    )
    playbook_test.configure_parser(pbt)
    pbt.set_defaults(func=cmd_playbook_test)

    sch = sub.add_parser("schema", help="print a JSON Schema of a user-edited file")
    sch.add_argument("what", choices=["config", "detector", "playbook"])
    sch.set_defaults(func=cmd_schema)

    sim = sub.add_parser("simulate", help="run the gateway simulator (live or offline)")
    simulator_cli.configure_parser(sim)
    sim.set_defaults(func=cmd_simulate)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One INFO line per HTTP request or scheduler run would bury what matters at 3 a.m.
    for noisy in ("httpx", "apscheduler.executors"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The daemon reports overruns itself, rate-limited (see Daemon._overrun).
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except GatewardenError as exc:
        print(f"gatewarden: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
