"""Crash points kill the process at exactly the planned hit, and cost nothing when unset."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import gatewarden
from gatewarden.clock import VirtualClock
from gatewarden.crashpoints import POINTS, marker
from gatewarden.models import EventType
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.outbox import NotifyStage
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.factory import T0

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
    # The planned crash says which point it was, so a test can tell it from any other death.
    assert result.stderr == marker("action.after_intent", 3) + "\n"


def test_other_points_and_no_plan_do_nothing() -> None:
    assert run("notify.after_deliver").stdout.split()[-1] == "survived"
    assert run(None).stdout.split()[-1] == "survived"


def test_every_listed_point_is_called_somewhere_in_the_code() -> None:
    """A listed crash point that nothing calls is a crash-safety window no test exercises."""
    src = Path(gatewarden.__file__).parent
    code = "\n".join(p.read_text() for p in src.rglob("*.py") if p.name != "crashpoints.py")
    for point in POINTS:
        if point.startswith("tick.after_"):
            assert 'crashpoint(f"tick.after_{stage.name}")' in code
        else:
            assert f'crashpoint("{point}")' in code, point


NOTIFY_SCRIPT = """
import sys
import pandas as pd
from gatewarden.clock import VirtualClock
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.outbox import NotifyStage
from gatewarden.protocols import Tick
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.factory import T0, lifecycle

store, clock = SQLiteStore(sys.argv[1]), VirtualClock(T0)
stage = NotifyStage(store, [ConsoleNotifier(sys.stdout)], clock)
events = store.append(lifecycle()[:5])
stage.run(Tick(now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=events))
print("survived", flush=True)
"""


def test_a_kill_between_delivery_and_record_redelivers_once_and_records_once(
    tmp_path: Path,
) -> None:
    """notify.after_deliver sits in the outbox's one at-least-once window: the console printed
    the message, the store does not know it. The restarted stage prints it again (the console
    cannot tell it landed) and records every delivery exactly once."""
    db = tmp_path / "events.db"
    env = {**os.environ, "GATEWARDEN_CRASHPOINTS": "notify.after_deliver:2"}
    died = subprocess.run(
        [sys.executable, "-c", NOTIFY_SCRIPT, str(db)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert marker("notify.after_deliver", 2) in died.stderr
    printed = died.stdout.splitlines()
    assert len(printed) == 2  # the second delivery went out; only the first was recorded
    store, clock, out = SQLiteStore(db), VirtualClock(T0), io.StringIO()
    assert len(store.events(types=[EventType.NOTIFICATION_DELIVERED.value])) == 1
    NotifyStage(store, [ConsoleNotifier(out)], clock).flush()
    queued = store.events(types=[EventType.NOTIFICATION_QUEUED.value])
    delivered = store.events(types=[EventType.NOTIFICATION_DELIVERED.value])
    assert sorted(e.key or "" for e in delivered) == sorted(f"{q.key}:delivered" for q in queued)
    assert out.getvalue().splitlines()[0] == printed[1]  # the unrecorded one, printed again
    assert len(printed) - 1 + len(out.getvalue().splitlines()) == len(queued)
