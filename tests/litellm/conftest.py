"""Session fixtures for the real LiteLLM proxy: cached venv, fake upstream, OTLP receiver."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gatewarden.ingest.otlp_server import OtlpReceiver
from tests.litellm.ensure_venv import ensure_venv
from tests.litellm.fake_upstream import FakeUpstream
from tests.litellm.harness import Proxy, write_config


@pytest.fixture(scope="session")
def litellm_venv() -> Path:
    if os.environ.get("GATEWARDEN_SKIP_LITELLM"):
        pytest.skip("GATEWARDEN_SKIP_LITELLM is set")
    return ensure_venv()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    rx = OtlpReceiver(name="otlp")
    rx.serve(port=0)
    try:
        yield rx
    finally:
        rx.close()


ProxyFactory = Callable[..., Proxy]


@pytest.fixture
def make_proxy(
    litellm_venv: Path, upstream: FakeUpstream, receiver: OtlpReceiver, tmp_path: Path
) -> Iterator[ProxyFactory]:
    """Starts a proxy (``spare=True``: with a second ``primary`` deployment) and waits until it
    serves; every proxy started is stopped by its PID afterwards, also when the test failed."""
    started: list[Proxy] = []

    def make(*, spare: bool = False) -> Proxy:
        assert receiver.url is not None
        proc = Proxy(
            venv=litellm_venv,
            config=write_config(tmp_path / "litellm.yaml", upstream.url, spare=spare),
            otlp_endpoint=f"{receiver.url}/v1/traces",
            log=tmp_path / "proxy.log",
        )
        started.append(proc)
        proc.start()
        proc.wait_ready()
        return proc

    try:
        yield make
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def proxy(make_proxy: ProxyFactory) -> Proxy:
    return make_proxy()
