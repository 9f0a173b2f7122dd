"""Labelled suites: simulated logs with injected faults and hard negatives, replayed through
``gatewarden.backtest.run_backtest`` and scored with :func:`score_incidents`.

A :class:`Case` is a scenario (seed, traffic level, faults to find), a list of faults that are
*hard negatives* when injected (one-minute blips, slow drift in small steps) and a list of
scenario-level constructs (:mod:`gatewarden.evaluation.constructs`). :func:`run_case` writes
the log and a labels document (the simulator's format, negatives marked ``"negative": true``),
runs the real backtest and returns the scores. :func:`standard_cases` builds varied cases from
a seed: which provider, model, key or workflow a fault hits, its magnitude, duration and
start, and the traffic level all come from the seed, so a suite of seeds is not one generator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gatewarden.correlate import CorrelateConfig
from gatewarden.detect.spec import DetectorSpec
from gatewarden.evaluation.constructs import (
    Construct,
    ExpensiveRequest,
    Label,
    LongSession,
    NewTeamRamp,
    PlannedMigration,
    Record,
    simulate,
)
from gatewarden.evaluation.labels import score_incidents
from gatewarden.simulator import (
    AgentLoop,
    CostSpike,
    FallbackStorm,
    Fault,
    KeySurge,
    ProviderOutage,
    Scenario,
    TtftDegradation,
)
from gatewarden.simulator.trace_shape import TraceArrivals


@dataclass(frozen=True)
class Case:
    name: str
    scenario: Scenario
    negative_faults: tuple[Fault, ...] = ()
    constructs: tuple[Construct, ...] = field(default_factory=tuple)


def write_case(case: Case, directory: Path) -> tuple[Path, Path]:
    """Simulate ``case`` to ``directory/<name>.jsonl`` and its labels document; returns both."""
    faults = [*case.scenario.faults, *case.negative_faults]
    scenario = case.scenario.model_copy(update={"faults": faults})
    labels: list[Label] = scenario.labels()
    for label in labels[len(case.scenario.faults) :]:
        label["negative"] = True
    records: list[Record] = simulate(scenario)
    for construct in case.constructs:
        records, extra = construct.apply(scenario, records)
        labels.extend(extra)
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"{case.name}.jsonl"
    labels_path = directory / f"{case.name}.labels.json"
    with log_path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    document = {
        "scenario": case.name,
        "seed": scenario.seed,
        "start": scenario.start,
        "end": scenario.end,
        "labels": labels,
    }
    labels_path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return log_path, labels_path


def run_case(
    case: Case,
    specs: Sequence[DetectorSpec],
    directory: Path,
    *,
    tick_seconds: float = 15.0,
    correlate: CorrelateConfig | None = None,
) -> dict[str, Any]:
    """Write, replay and score one case. Besides the scores: ``case``, ``records``,
    ``duration_s``, the backtest ``document`` and the ``labels``."""
    from gatewarden.backtest import run_backtest  # the lead's module; imported when used

    log_path, labels_path = write_case(case, directory)
    document = run_backtest(log_path, specs, tick_seconds=tick_seconds, correlate=correlate)
    labels = json.loads(labels_path.read_text(encoding="utf-8"))
    duration = float(labels["end"]) - float(labels["start"])
    scores = score_incidents(document["incidents"], labels["labels"], duration_s=duration)
    return {
        "case": case.name,
        "records": document["records"],
        "duration_s": duration,
        "document": document,
        "labels": labels["labels"],
        **scores,
    }


def pool(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Figures over several scored cases (each case matched on its own: simulated cases may
    share a clock, so their incidents must not match one another's labels)."""
    details = [d for r in results for d in r["details"]]
    detected = [d for d in details if d["detected"]]
    incidents = sum(int(r["incidents"]) for r in results)
    false = sum(int(r["false_incidents"]) for r in results)
    days = sum(float(r["duration_s"]) for r in results) / 86_400.0
    ttds = sorted(float(d["ttd_s"]) for d in detected)
    return {
        "faults": len(details),
        "detected": len(detected),
        "recall": len(detected) / len(details) if details else None,
        "incidents": incidents,
        "false_incidents": false,
        "precision": (incidents - false) / incidents if incidents else None,
        "false_per_day": false / days if days else None,
        "ttd_p50_s": float(np.percentile(ttds, 50)) if ttds else None,
        "ttd_p90_s": float(np.percentile(ttds, 90)) if ttds else None,
        "fragmentation": (
            sum(int(d["incidents"]) for d in detected) / len(detected) if detected else None
        ),
        "negatives": sum(int(r["negatives"]) for r in results),
        "negatives_hit": sum(int(r["negatives_hit"]) for r in results),
    }


# -- a varied standard suite ------------------------------------------------------------------

_PROVIDER_MODELS = {
    "openai": ["gpt-4o", "gpt-4o-mini"],
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5"],
}
_BUSY_KEYS = [
    "search-prod",
    "search-rerank-prod",
    "support-web",
    "code-agent-ide",
    "support-triage-prod",
]
_AGENT_WORKFLOWS = ["code-agent", "research-agent", "helpdesk-agent"]
_COST_WORKFLOWS = ["search-answer", "support-chat", "analytics-summarize", "marketing-copy"]


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(0, len(options)))]


def positive_faults(rng: np.random.Generator, *, subtle: bool) -> list[Fault]:
    """One fault of every kind, each on a seed-chosen target with a seed-chosen magnitude and
    duration (subtle: the issue's hardest magnitudes, TTFT x1.8 and 3 % errors)."""
    provider = _pick(rng, list(_PROVIDER_MODELS))

    def duration() -> float:
        return float(rng.uniform(420, 1200))

    error_rate = 0.03 if subtle else float(rng.choice([0.1, 0.3, 0.6]))
    outage_model = _pick(rng, _PROVIDER_MODELS[provider]) if rng.random() < 0.3 else None
    other = "anthropic" if provider == "openai" else "openai"
    ttft_model = _pick(rng, _PROVIDER_MODELS[other]) if rng.random() < 0.5 else None
    cost: Fault
    roll = rng.random()
    if roll < 0.4:
        cost = CostSpike(
            start=0,
            duration=duration(),
            model=_pick(rng, ["gpt-4o", "claude-sonnet-4-5", "gpt-4o-mini"]),
            price_factor=float(rng.choice([1.5, 2.0, 3.0])),
        )
    elif roll < 0.7:
        cost = CostSpike(
            start=0,
            duration=duration(),
            workflow=_pick(rng, _COST_WORKFLOWS),
            output_factor=float(rng.choice([3.0, 5.0])),
        )
    else:
        cost = CostSpike(
            start=0,
            duration=duration(),
            api_key=_pick(rng, _BUSY_KEYS),
            output_factor=float(rng.choice([3.0, 5.0])),
        )
    return [
        ProviderOutage(
            start=0,
            duration=duration(),
            provider=provider,
            model=outage_model,
            error_rate=error_rate,
        ),
        TtftDegradation(
            start=0,
            duration=duration(),
            provider=other,
            model=ttft_model,
            factor=1.8 if subtle else float(rng.choice([2.0, 3.0])),
        ),
        cost,
        AgentLoop(
            start=0,
            duration=duration(),
            workflow=_pick(rng, _AGENT_WORKFLOWS),
            interval_min=float(rng.uniform(1.5, 3)),
            interval_max=float(rng.uniform(4, 8)),
        ),
        FallbackStorm(
            start=0,
            duration=duration(),
            requested_model=_pick(rng, ["gpt-4o", "gpt-4o-mini", "claude-sonnet"]),
        ),
        KeySurge(
            start=0,
            duration=duration(),
            api_key=_pick(rng, _BUSY_KEYS),
            factor=float(rng.choice([5.0, 10.0, 30.0])),
        ),
    ]


def schedule(faults: Sequence[Fault], *, first_s: float, gap_s: float, end_s: float) -> list[Fault]:
    """Faults one after another, ``gap_s`` apart (end to start), from ``first_s``, dropping
    those that would not end ``gap_s / 2`` before ``end_s``: separate faults must not fall
    inside one another's grouping and reopen windows."""
    out: list[Fault] = []
    t = first_s
    for fault in faults:
        if t + fault.duration > end_s - gap_s / 2:
            break
        out.append(fault.model_copy(update={"start": t}))
        t += fault.duration + gap_s
    return out


def blips(rng: np.random.Generator) -> list[Fault]:
    """One-minute blips of every fast kind: hard negatives, whatever their size."""
    provider = _pick(rng, list(_PROVIDER_MODELS))
    return [
        ProviderOutage(start=0, duration=60, provider=provider, error_rate=0.5),
        TtftDegradation(start=0, duration=60, provider=provider, factor=3.0),
        KeySurge(start=0, duration=60, api_key=_pick(rng, _BUSY_KEYS), factor=20.0),
        FallbackStorm(start=0, duration=60, requested_model="gpt-4o"),
    ]


def drift(
    provider: str, *, start_s: float, steps: int, every_s: float, total_s: float
) -> list[Fault]:
    """TTFT creeping up by 5 % every ``every_s`` (x1.8 after 12 steps): must not page."""
    starts = [start_s + i * every_s for i in range(steps)]
    return [
        TtftDegradation(start=t, duration=total_s - t, provider=provider, factor=1.05)
        for t in starts
        if t < total_s - every_s
    ]


def standard_cases(
    seed: int,
    *,
    hours: float = 5.0,
    subtle: bool | None = None,
    trace: TraceArrivals | None = None,
) -> list[Case]:
    """Two cases per seed: faults of every kind (scheduled one after another) in a normal day,
    and a quiet day holding only hard negatives (blips, drift, a planned migration, a new team,
    a long agent session, an expensive request, the daily peak). With ``trace``, both days take
    their arrivals and token sizes from that real serving trace instead of the traffic model
    (the case names then end in ``@`` and the trace file's name)."""
    rng = np.random.default_rng(seed)
    suffix = f"@{trace.path.stem}" if trace is not None else ""
    subtle = bool(rng.random() < 0.5) if subtle is None else subtle
    base_rps = float(rng.uniform(4, 12))
    start = 1_748_937_600.0 + float(rng.integers(0, 24)) * 3600.0
    faults = positive_faults(rng, subtle=subtle)
    faults = [faults[i] for i in rng.permutation(len(faults)).tolist()]
    scenario = Scenario(
        name=f"faults-{seed}{suffix}",
        seed=seed,
        start=start,
        trace=trace,
        duration_s=hours * 3600.0,
        base_rps=base_rps,
        faults=schedule(
            faults, first_s=1200.0 + float(rng.uniform(0, 60)), gap_s=1500.0, end_s=hours * 3600.0
        ),
    )
    total = hours * 3600.0
    quiet = Scenario(
        name=f"negatives-{seed}{suffix}",
        seed=seed + 1000,
        trace=trace,
        start=1_748_937_600.0 + (15 - hours / 2) * 3600.0,  # across the daily peak
        duration_s=total,
        base_rps=base_rps,
        diurnal_amplitude=0.5,
    )
    negatives = [*schedule(blips(rng), first_s=1200.0, gap_s=900.0, end_s=total)]
    negatives += drift(
        _pick(rng, list(_PROVIDER_MODELS)),
        start_s=total * 0.4,
        steps=12,
        every_s=400.0,
        total_s=total,
    )
    constructs: list[Construct] = [
        PlannedMigration(workflow="support-chat", groups={"claude-sonnet": 1.0}, at_s=total * 0.3),
        NewTeamRamp(at_s=total * 0.45, ramp_s=1800.0, rps=base_rps * 0.2),
        LongSession(at_s=total * 0.6, calls=int(rng.integers(150, 260))),
        ExpensiveRequest(at_s=total * 0.75),
    ]
    return [
        Case(name=scenario.name, scenario=scenario),
        Case(
            name=quiet.name,
            scenario=quiet,
            negative_faults=tuple(negatives),
            constructs=tuple(constructs),
        ),
    ]


# -- correlation suites (issue 4) --------------------------------------------------------------


def outage_heavy_case(seed: int, *, hours: float = 4.0) -> Case:
    """Provider outages one after another, at traffic busy enough that each one fires on the
    provider, its models, its model groups' fallbacks and dozens of keys: the case where
    correlation has to turn many alerts into one incident per outage."""
    rng = np.random.default_rng(seed)
    outages: list[Fault] = []
    for _ in range(6):
        provider = _pick(rng, list(_PROVIDER_MODELS))
        outages.append(
            ProviderOutage(
                start=0,
                duration=float(rng.uniform(480, 900)),
                provider=provider,
                model=_pick(rng, _PROVIDER_MODELS[provider]) if rng.random() < 0.25 else None,
                error_rate=float(rng.choice([0.3, 0.6, 0.9])),
            )
        )
    scenario = Scenario(
        name=f"outages-{seed}",
        seed=seed,
        start=1_748_937_600.0 + float(rng.integers(0, 24)) * 3600.0,
        duration_s=hours * 3600.0,
        base_rps=float(rng.uniform(10, 20)),
        faults=schedule(outages, first_s=1200.0, gap_s=1200.0, end_s=hours * 3600.0),
    )
    return Case(name=scenario.name, scenario=scenario)


def overlap_case(seed: int, *, hours: float = 2.0) -> Case:
    """Unrelated faults at the same time: a TTFT degradation on one provider while a key surges
    and (later) the other provider fails. Each must stay its own incident."""
    rng = np.random.default_rng(seed + 500)
    slow, failing = ("openai", "anthropic") if rng.random() < 0.5 else ("anthropic", "openai")
    at = 1500.0 + float(rng.uniform(0, 120))
    faults: list[Fault] = [
        TtftDegradation(start=at, duration=1200.0, provider=slow, factor=2.5),
        KeySurge(
            start=at + float(rng.uniform(60, 240)),
            duration=600.0,
            api_key=_pick(rng, _BUSY_KEYS),
            factor=float(rng.choice([10.0, 20.0])),
        ),
        ProviderOutage(start=at + 480.0, duration=600.0, provider=failing, error_rate=0.5),
    ]
    scenario = Scenario(
        name=f"overlap-{seed}",
        seed=seed + 500,
        start=1_748_937_600.0 + float(rng.integers(0, 24)) * 3600.0,
        duration_s=hours * 3600.0,
        base_rps=float(rng.uniform(6, 14)),
        faults=faults,
    )
    return Case(name=scenario.name, scenario=scenario)
