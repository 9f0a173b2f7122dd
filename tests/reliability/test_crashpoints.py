"""Crash points kill the process at exactly the planned hit, and cost nothing when unset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

SCRIPT = """
from gatewarden.crashpoints import crashpoint
for i in range(1, 6):
    print(i, flush=True)
    crashpoint("action.after_intent")
print("survived", flush=True)
"""


def run(plan: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GATEWARDEN_CRASHPOINTS"}
    if plan is not None:
        env["GATEWARDEN_CRASHPOINTS"] = plan
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )


def test_sigkill_on_the_planned_hit() -> None:
    result = run("action.after_intent:3")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2", "3"]


def test_other_points_and_no_plan_do_nothing() -> None:
    assert run("notify.after_deliver").stdout.split()[-1] == "survived"
    assert run(None).stdout.split()[-1] == "survived"
