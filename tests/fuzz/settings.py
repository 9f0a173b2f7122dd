"""Hypothesis settings shared by the fuzz suites.

By default every run explores the same examples (``derandomize``), so the suite is
reproducible and a strict xfail stays an xfail; nothing is written to ``.hypothesis/``.
``GATEWARDEN_FUZZ_EXPLORE=10`` runs ten times as many random examples, with the example
database, to hunt for new failures. No deadline: the machine is shared and a slow example is
not a failure.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_EXPLORE = int(os.environ.get("GATEWARDEN_FUZZ_EXPLORE", "0") or 0)


def fuzz(max_examples: int) -> settings:
    if _EXPLORE:
        return settings(
            max_examples=max_examples * _EXPLORE,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
