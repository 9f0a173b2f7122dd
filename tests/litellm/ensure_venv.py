"""Create (once) the cached virtualenv holding the pinned LiteLLM proxy for the real-gateway test.

The venv lives in ``<repo>/.cache/litellm-venv-<key>``, where the key hashes the pinned
requirements and the Python version, so a changed pin builds a fresh one and an unchanged one is
reused (~1.5 min and ~750 MB the first time, instant afterwards). A stamp file written last
marks a complete install; a half-built venv (interrupted install) is rebuilt. Concurrent
callers serialise on a lock file.

Run ``python tests/litellm/ensure_venv.py`` (e.g. from ``make test`` before pytest) to build it
and print the venv's path; the tests call :func:`ensure_venv` themselves too.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

LITELLM_VERSION = "1.106.2"
REQUIREMENTS = (
    f"litellm[proxy]=={LITELLM_VERSION}",
    "prometheus-client==0.26.0",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
)
REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
INSTALL_TIMEOUT_S = 900


def venv_dir() -> Path:
    pins = "\n".join(REQUIREMENTS) + f"\npython {sys.version_info[0]}.{sys.version_info[1]}"
    key = hashlib.sha256(pins.encode()).hexdigest()[:10]
    return CACHE / f"litellm-venv-{LITELLM_VERSION}-{key}"


def ensure_venv() -> Path:
    """The venv directory, built if needed. Raises RuntimeError when the install fails."""
    target = venv_dir()
    stamp = target / ".complete"
    if stamp.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "litellm-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if stamp.exists():
            return target  # another process built it while we waited
        if target.exists():
            shutil.rmtree(target)  # an interrupted build
        _run([sys.executable, "-m", "venv", str(target)])
        pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        pip.append("--disable-pip-version-check")
        # The pip that ``venv`` bundles resolves this dependency tree several times slower.
        _run([*pip, "--upgrade", "pip"])
        _run([*pip, *REQUIREMENTS])
        stamp.write_text("\n".join(REQUIREMENTS) + "\n")
        for old in CACHE.glob("litellm-venv-*"):
            if old.is_dir() and old != target:
                shutil.rmtree(old)  # a venv of older pins: ~750 MB nobody uses any more
    return target


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"timed out after {INSTALL_TIMEOUT_S}s: {' '.join(command)}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"failed ({done.returncode}): {' '.join(command)}\n{tail}")


if __name__ == "__main__":
    print(ensure_venv())
