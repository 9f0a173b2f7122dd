"""Start, restart and stop a real LiteLLM proxy (from the cached venv) for the integration tests.

The proxy runs in its own session (process group, led by its PID, recorded in a pidfile) so
stopping it by that PID also stops anything it forked; nothing else is ever signalled. A
restart (``python tests/litellm/harness.py STATE``, the reload command gatewarden's
config-file adapter runs) stops the recorded PID, waits for the port to close, launches the
same command again and records the new PID.

The proxy runs with the cyclic garbage collector off. On CPython <= 3.11 a collection that
fires inside ``ContextVar.set`` can free a context still in use (python/cpython#148891);
LiteLLM sets context variables on every request, and the proxy segfaulted in about one run in
three here (faulthandler: ``litellm/_internal_context.py`` ``service_target``). Reference
counting still frees almost everything, and a test run lasts a minute or two.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

MASTER_KEY = "sk-gatewarden-it-master"
READY_TIMEOUT_S = 90.0
#: ``litellm`` CLI, with the cycle collector off first (see the module docstring).
BOOT = (
    "import gc, sys\n"
    "gc.disable()\n"
    "sys.argv[0] = 'litellm'\n"
    "from litellm import run_server\n"
    "sys.exit(run_server())\n"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def deployment(
    group: str, model: str, dep_id: str, upstream: str, **extra: object
) -> dict[str, object]:
    params: dict[str, object] = {"model": model, "api_base": f"{upstream}/v1", "api_key": "k"}
    return {
        "model_name": group,
        "litellm_params": params | extra,
        "model_info": {"id": dep_id},
    }


def proxy_config(upstream: str, *, spare: bool = False) -> dict[str, object]:
    """Two model groups, ``primary`` (gpt-4o) falling back to ``backup`` (gpt-4o-mini). With
    ``spare``, ``primary`` also has a second deployment (gpt-4o-mini, ``order: 2``) that only
    takes traffic once gpt-4o is ranked behind it (a failover).

    Cooldowns are off so a failing deployment keeps being called (and keeps showing its errors)
    instead of disappearing from the data for ``cooldown_time``.
    """
    models = [deployment("primary", "openai/gpt-4o", "primary-dep-1", upstream)]
    if spare:
        models[0]["litellm_params"]["order"] = 1  # type: ignore[index]
        models.append(
            deployment("primary", "openai/gpt-4o-mini", "primary-dep-2", upstream, order=2)
        )
    models.append(deployment("backup", "openai/gpt-4o-mini", "backup-dep-1", upstream))
    return {
        "model_list": models,
        "litellm_settings": {
            "callbacks": ["prometheus", "otel"],
            "num_retries": 0,
            "request_timeout": 10,
            "telemetry": False,
            "require_auth_for_metrics_endpoint": False,
        },
        "router_settings": {
            "fallbacks": [{"primary": ["backup"]}],
            "disable_cooldowns": True,
        },
        "general_settings": {"master_key": MASTER_KEY},
    }


def write_config(path: Path, upstream: str, *, spare: bool = False) -> Path:
    path.write_text(yaml.safe_dump(proxy_config(upstream, spare=spare), sort_keys=False))
    return path


@dataclass
class Proxy:
    venv: Path
    config: Path
    otlp_endpoint: str
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> Path:
        """What a restart needs: written next to the config."""
        return self.config.with_suffix(".proxy.json")

    @property
    def pidfile(self) -> Path:
        return self.config.with_suffix(".pid")

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        return keep | {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # offline: no cost-map download
            "OTEL_EXPORTER": "otlp_http",
            "OTEL_ENDPOINT": self.otlp_endpoint,
            "OTEL_SERVICE_NAME": "litellm-it",
            "OTEL_BSP_SCHEDULE_DELAY": "500",  # export spans twice a second, not every 5 s
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",  # a crash of the proxy leaves its tracebacks in the log
        }

    def argv(self) -> list[str]:
        python = str(self.venv / "bin" / "python")
        server = ["--host", "127.0.0.1", "--port", str(self.port), "--num_workers", "1"]
        return [python, "-c", BOOT, "--config", str(self.config), *server]

    def start(self) -> None:
        state: dict[str, Any] = {
            "argv": self.argv(),
            "env": self.env(),
            "cwd": str(self.config.parent),
            "log": str(self.log),
            "pidfile": str(self.pidfile),
            "port": self.port,
            "config": str(self.config),
        }
        self.state.write_text(json.dumps(state))
        self.process = launch(state)

    def restart_command(self) -> list[str]:
        """The reload command for gatewarden's config-file adapter (runs this file)."""
        return [sys.executable, str(Path(__file__).resolve()), str(self.state)]

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until ``/health/liveliness`` answers; raises with the log tail otherwise."""
        started = time.monotonic()
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() - started < timeout:
                if self.process is None or self.process.poll() is not None:
                    break
                try:
                    if client.get(f"{self.url}/health/liveliness").status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
        raise RuntimeError(f"LiteLLM proxy did not become ready on {self.url}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the recorded proxy (the first one, or the one a restart launched)."""
        stop_recorded(self.pidfile, self.port, str(self.config))
        if self.process is not None:
            self.process.wait(timeout=30)  # reap our own child (a restart's is init's)
            self.process = None


def launch(state: dict[str, Any]) -> subprocess.Popen[bytes]:
    with Path(state["log"]).open("ab") as out:
        process = subprocess.Popen(
            list(state["argv"]),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(state["env"]),
            cwd=state["cwd"],
            start_new_session=True,  # its own process group, led by its PID
        )
    Path(str(state["pidfile"])).write_text(str(process.pid))
    return process


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ours(pid: int, config: str) -> bool:
    """The PID is still the proxy we launched (its command line names our config file), not a
    process that reused the number."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return config.encode() in cmdline


def stop_recorded(pidfile: Path, port: int, config: str, timeout: float = 20.0) -> None:
    """SIGTERM the recorded process group; SIGKILL it if it still listens after ``timeout``."""
    try:
        pgid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _ours(pgid, config):
            return  # gone (or a zombie waiting for its parent)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _port_open(port):
            time.sleep(0.2)
        if not _port_open(port):
            return


def restart(state_file: Path) -> None:
    state = json.loads(state_file.read_text())
    stop_recorded(Path(state["pidfile"]), int(state["port"]), str(state["config"]))
    launch(state)  # detached: this command returns, the caller polls the proxy's health


if __name__ == "__main__":
    restart(Path(sys.argv[1]))
