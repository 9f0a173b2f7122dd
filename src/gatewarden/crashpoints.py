"""Deterministic crash injection for the crash-safety tests (FoundationDB's "buggify", tiny).

Named points sit in the windows that matter: after an action's intent is stored and before
the call, after the call and before its outcome is stored, after an approval is requested,
after a notification is delivered and before that is recorded. Setting
``GATEWARDEN_CRASHPOINTS=name[:n],...`` makes the process SIGKILL itself on the n-th hit
(default 1st) of each named point, exactly as an OOM kill or a node loss would. Just before, it
writes ``gatewarden crash point NAME (hit N): SIGKILL`` to stderr (unbuffered), so a test can
tell a planned crash from any other death. Unset (the normal case), a crash point is one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "GATEWARDEN_CRASHPOINTS"

#: Every crash point in the code base, so tests can iterate over them.
POINTS: tuple[str, ...] = (
    "action.after_intent",
    "action.after_apply",
    "approval.after_request",
    "notify.after_deliver",
    # after every pipeline stage: tick.after_<stage name>
    "tick.after_correlate",
    "tick.after_remediate",
)


def _parse(spec: str) -> dict[str, int]:
    plan: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition(":")
        plan[name] = int(nth) if nth else 1
    return plan


_PLAN = _parse(os.environ.get(ENV, ""))
_hits: Counter[str] = Counter()


def marker(name: str, hit: int) -> str:
    """The line a crash point writes to stderr before it kills the process."""
    return f"gatewarden crash point {name} (hit {hit}): SIGKILL"


def crashpoint(name: str) -> None:
    """SIGKILL this process if the crash plan says so for this hit of ``name``."""
    if not _PLAN or name not in _PLAN:
        return
    _hits[name] += 1
    if _hits[name] == _PLAN[name]:
        # os.write, not print: nothing buffered may be lost to the SIGKILL that follows.
        os.write(2, (marker(name, _hits[name]) + "\n").encode())
        os.kill(os.getpid(), signal.SIGKILL)
