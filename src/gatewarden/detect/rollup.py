"""Roll-up: several children of one parent firing together is an alert on the parent.

TTFT is judged per (provider, model) because a provider's mix of models moves its overall
latency (a planned migration would page); but when two models of one provider slow down at
once, the provider is the problem, and one provider-scope alert explains (and groups) the
model alerts. A spec with ``rollup: {min_series: 2}`` emits, next to its own alerts, one alert
on the parent scope (the level's labels but the last) of every parent with at least that many
firing series, and reports the parent healthy when its series were judged and too few fired.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import numpy.typing as npt
import pandas as pd

from gatewarden.detect.evidence import fmt
from gatewarden.detect.spec import DETECT_LEVELS, DetectorSpec
from gatewarden.models import Alert, fingerprint


def rollup(
    spec: DetectorSpec,
    frame: pd.DataFrame,
    fired: list[tuple[int, Alert]],
    judged: npt.NDArray[np.intp],
) -> tuple[list[Alert], set[str]]:
    """Parent alerts (to precede the children's) and the fingerprints of healthy parents."""
    if spec.rollup is None:
        return [], set()
    parent_labels = DETECT_LEVELS[spec.level][:-1]
    columns = [frame[label].to_numpy(dtype=object) for label in parent_labels]

    def parent(i: int) -> tuple[tuple[str, str], ...]:
        return tuple(
            (label, str(values[i]))
            for label, values in zip(parent_labels, columns, strict=True)
            if isinstance(values[i], str)
        )

    children: defaultdict[tuple[tuple[str, str], ...], list[Alert]] = defaultdict(list)
    for i, alert in fired:
        children[parent(i)].append(alert)
    alerts: list[Alert] = []
    for scope, members in children.items():
        if len(members) < spec.rollup.min_series or not scope:
            continue
        strongest = max(members, key=lambda a: a.evidence.score)
        parts = ", ".join(
            f"{a.scope.get(DETECT_LEVELS[spec.level][-1], '?')} "
            f"{fmt(spec.metric, a.evidence.observed)} vs {fmt(spec.metric, a.evidence.expected)}"
            for a in sorted(members, key=lambda a: -a.evidence.score)
        )
        evidence = strongest.evidence.model_copy(
            update={"detail": f"{len(members)} series of {dict(scope)} at once: {parts}"}
        )
        alerts.append(strongest.model_copy(update={"scope": dict(scope), "evidence": evidence}))
    healthy = {parent(int(i)) for i in judged.tolist()} - set(children)
    healthy |= {p for p, m in children.items() if len(m) < spec.rollup.min_series}
    clear = {fingerprint(spec.kind, dict(p)) for p in healthy if p}
    return alerts, clear
