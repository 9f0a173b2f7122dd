"""Scoring backtest incidents against ground-truth fault labels.

Matching rule: an incident matches a label when

* their kinds overlap (the incident's ``kinds`` contain the label's ``kind``),
* their scopes are compatible: they share at least one scope label and agree on every label
  they share (``{provider: openai}`` matches ``{provider: openai, model: gpt-4o}``;
  ``{team: search}`` does not match ``{api_key: search-prod}``: nothing is shared), and
* the incident opened within ``[label.start - 60 s, label.end]``.

The incident's scope is its root cause's. When the document lists an incident's member alerts
(``"members": [{"kind", "scope"}, ...]``), a member of the label's kind on a compatible scope
counts too: a fallback storm on model group ``gpt-4o`` that the correlator rightly files under
"openai is failing" is still a detected fallback storm. Incidents merged into another
(``merged_into`` set) are not counted: they never paged on their own.

Figures: ``recall`` (labelled faults with at least one matching incident), ``precision``
(incidents matching some fault), ``false_per_day`` (incidents matching none, per simulated day),
``ttd_p50_s`` / ``ttd_p90_s`` (time to detect: first matching incident's opening minus the
fault's start, floored at 0) and ``fragmentation`` (matching incidents per detected fault).

A label with ``"negative": true`` is a *hard negative* (a planned migration, a one-minute blip):
it is not a fault to find, and an incident matching it is a false incident like any other;
``negatives_hit`` counts them. Labels come from :func:`gatewarden.simulator.load_labels` (a list)
or the whole labels document, whose ``start``/``end`` then give the duration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: An incident may open this long before its fault's labelled start and still match it.
EARLY_S = 60.0
_DAY_S = 86_400.0


def compatible(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Scopes share at least one label and agree on every label they share."""
    shared = set(a) & set(b)
    return bool(shared) and all(a[k] == b[k] for k in shared)


def matches(incident: Mapping[str, Any], label: Mapping[str, Any]) -> bool:
    kind = label["kind"]
    if kind not in incident.get("kinds", ()):
        return False
    wanted = label.get("scope", {})
    scopes = [incident.get("scope", {})]
    scopes += [m.get("scope", {}) for m in incident.get("members", ()) if m.get("kind") == kind]
    if not any(compatible(scope, wanted) for scope in scopes):
        return False
    opened = float(incident["opened_at"])
    return float(label["start"]) - EARLY_S <= opened <= float(label["end"])


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def score_incidents(
    incidents: Sequence[Mapping[str, Any]],
    labels: Sequence[Mapping[str, Any]],
    *,
    duration_s: float,
) -> dict[str, Any]:
    """Recall, precision, false incidents per day, time to detect and fragmentation, overall
    and per fault kind (``by_kind``), plus per-label ``details`` and the ``unmatched``
    incidents."""
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    incidents = [inc for inc in incidents if not inc.get("merged_into")]
    faults = [label for label in labels if not label.get("negative", False)]
    negatives = [label for label in labels if label.get("negative", False)]
    true_ids: set[int] = set()
    details: list[dict[str, Any]] = []
    for label in faults:
        found = [i for i, inc in enumerate(incidents) if matches(inc, label)]
        true_ids.update(found)
        ttd = None
        if found:
            first = min(float(incidents[i]["opened_at"]) for i in found)
            ttd = max(0.0, first - float(label["start"]))
        details.append(
            {
                "kind": label["kind"],
                "scope": dict(label.get("scope", {})),
                "start": float(label["start"]),
                "fault": label.get("fault", label["kind"]),
                "detected": bool(found),
                "ttd_s": ttd,
                "incidents": len(found),
            }
        )
    false = [inc for i, inc in enumerate(incidents) if i not in true_ids]
    negatives_hit = sum(1 for label in negatives if any(matches(inc, label) for inc in false))
    summary = _summary(details, len(incidents), len(false), duration_s)
    kinds = sorted({d["kind"] for d in details})
    by_kind = {
        kind: _summary([d for d in details if d["kind"] == kind], None, None, duration_s)
        for kind in kinds
    }
    return {
        **summary,
        "negatives": len(negatives),
        "negatives_hit": negatives_hit,
        "by_kind": by_kind,
        "details": details,
        "unmatched": [
            {
                "id": inc.get("id"),
                "kinds": list(inc.get("kinds", [])),
                "scope": dict(inc.get("scope", {})),
                "opened_at": inc.get("opened_at"),
            }
            for inc in false
        ],
    }


def _summary(
    details: Sequence[Mapping[str, Any]],
    incidents: int | None,
    false: int | None,
    duration_s: float,
) -> dict[str, Any]:
    detected = [d for d in details if d["detected"]]
    ttds = [float(d["ttd_s"]) for d in detected]
    out: dict[str, Any] = {
        "faults": len(details),
        "detected": len(detected),
        "recall": len(detected) / len(details) if details else None,
        "ttd_p50_s": _percentile(ttds, 50),
        "ttd_p90_s": _percentile(ttds, 90),
        "fragmentation": (
            sum(int(d["incidents"]) for d in detected) / len(detected) if detected else None
        ),
    }
    if incidents is not None and false is not None:
        out["incidents"] = incidents
        out["false_incidents"] = false
        out["precision"] = (incidents - false) / incidents if incidents else None
        out["false_per_day"] = false / (duration_s / _DAY_S)
    return out


def evaluate_backtest(
    document: Mapping[str, Any],
    labels: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """Score a ``gatewarden backtest`` JSON document against fault labels.

    ``labels`` is the list :func:`gatewarden.simulator.load_labels` returns, or the whole
    labels document (``{"start", "end", "labels"}``) the simulator writes. The duration is, in
    order: ``duration_s``, the labels document's ``end - start``, the document's own
    ``start``/``end`` if it has them.
    """
    label_list: Sequence[Mapping[str, Any]]
    if isinstance(labels, Mapping):
        label_list = labels["labels"]
        if duration_s is None and "start" in labels and "end" in labels:
            duration_s = float(labels["end"]) - float(labels["start"])
    else:
        label_list = labels
    if duration_s is None and "start" in document and "end" in document:
        duration_s = float(document["end"]) - float(document["start"])
    if duration_s is None:
        raise ValueError("duration unknown: pass duration_s or the whole labels document")
    return score_incidents(document["incidents"], label_list, duration_s=duration_s)


def format_scores(scores: Mapping[str, Any]) -> str:
    """Human-readable lines (the ``--format table`` rendering of :func:`score_incidents`)."""

    def num(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    lines = [
        f"recall {num(scores['recall'], '.2f')}  precision {num(scores.get('precision'), '.2f')}"
        f"  false/day {num(scores.get('false_per_day'), '.2f')}"
        f"  ttd p50 {num(scores['ttd_p50_s'], '.0f')}s p90 {num(scores['ttd_p90_s'], '.0f')}s"
        f"  fragmentation {num(scores['fragmentation'], '.2f')}"
        f"  ({scores['detected']}/{scores['faults']} faults,"
        f" {scores.get('false_incidents', 0)} false incidents,"
        f" {scores.get('negatives_hit', 0)}/{scores.get('negatives', 0)} hard negatives hit)"
    ]
    for kind, figures in scores.get("by_kind", {}).items():
        lines.append(
            f"  {kind:<15} recall {num(figures['recall'], '.2f')}"
            f"  ttd p50 {num(figures['ttd_p50_s'], '.0f')}s p90 {num(figures['ttd_p90_s'], '.0f')}s"
            f"  fragmentation {num(figures['fragmentation'], '.2f')}"
            f"  ({figures['detected']}/{figures['faults']})"
        )
    return "\n".join(lines)
