"""Verification checks against recent metrics.

The engine only needs :class:`MetricsView`; ``gatewarden.aggregate.SeriesHistory`` satisfies it,
tests use a small fake. Each pipeline tick is one observation: the engine counts consecutive
good ticks by ``tick.now`` (persisted in the store's keyed state), so it needs no tick counter
from the metrics side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gatewarden.errors import PlaybookError
from gatewarden.remediate.language import Check
from gatewarden.remediate.templating import render


@runtime_checkable
class MetricsView(Protocol):
    def query(self, metric: str, where: dict[str, str], level: str | None = None) -> float | None:
        """Aggregated value of the latest tick over the series matching ``where``; None = no
        data. May raise ValueError for an unknown metric or level."""
        ...


@dataclass(frozen=True)
class CheckResult:
    metric: str
    where: dict[str, str]
    value: float | None
    ok: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "where": self.where,
            "value": self.value,
            "ok": self.ok,
            "reason": self.reason,
        }


def evaluate(
    checks: Sequence[Check], metrics: MetricsView, context: Mapping[str, Any]
) -> list[CheckResult]:
    """Evaluate every check; PlaybookError when a template or a metric name is bad."""
    results = []
    for check in checks:
        where = {label: render(value, context) for label, value in check.where.items()}
        try:
            value = metrics.query(check.metric, where, check.level)
        except ValueError as exc:
            raise PlaybookError(f"check {check.metric} {where}: {exc}") from None
        results.append(_judge(check, where, value))
    return results


def _judge(check: Check, where: dict[str, str], value: float | None) -> CheckResult:
    scope = ",".join(f"{k}={v}" for k, v in where.items()) or "all"
    name = f"{check.metric}[{scope}]"
    if value is None:
        ok = check.no_data == "pass"
        return CheckResult(check.metric, where, None, ok, f"{name}: no data ({check.no_data})")
    if check.below is not None and not value < check.below:
        return CheckResult(
            check.metric, where, value, False, f"{name}={value:.4g} >= {check.below}"
        )
    if check.above is not None and not value > check.above:
        return CheckResult(
            check.metric, where, value, False, f"{name}={value:.4g} <= {check.above}"
        )
    return CheckResult(check.metric, where, value, True, f"{name}={value:.4g} ok")
