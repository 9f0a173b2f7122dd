"""``litellm_deployment_cooled_down_total`` from the real 1.106.2 capture -> per-tick cooldowns on
the provider, requested-model and global levels, like the other LiteLLM counters."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from gatewarden.ingest.prometheus_text import PrometheusScrapeSource
from gatewarden.ingest.sample_frames import frame_sample_name, frames_from_samples
from gatewarden.models import Sample

CAPTURE = Path(__file__).resolve().parents[3] / "shared" / "litellm-samples" / "metrics_scrape.txt"
COOLED = "litellm_deployment_cooled_down"


def cooldowns(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for level in ("global", "provider", "model", "requested_model", "team", "api_key"):
        for s in samples:
            if s.name == frame_sample_name(level, "cooldowns"):
                out[(level, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def capture() -> str:
    return CAPTURE.read_text()


def test_the_capture_has_the_counter(capture: str) -> None:
    assert re.search(rf'^{COOLED}_total\{{.*litellm_model_name="primary".*\}} 1\.0$', capture, re.M)


def test_a_cooldown_counts_for_its_model_group_provider_and_globally(capture: str) -> None:
    # The page before the cooldown: the same page without the cooled-down family.
    before = "\n".join(line for line in capture.splitlines() if COOLED not in line) + "\n"
    later, changed = re.subn(rf"^({COOLED}_total\{{.*\}}) 1\.0$", r"\1 3.0", capture, flags=re.M)
    assert changed == 1
    pages = iter([before, capture, later])
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text=next(pages)))
    )
    source = PrometheusScrapeSource("http://litellm:4000/metrics/", client=client)
    source.pull(1000.0)  # the baseline
    first = cooldowns(source.pull(1015.0).samples)
    # The series appeared with a _created stamp after the baseline: its 1 counts in this tick.
    # LiteLLM's router labels it with the deployment's model_name (the group, "primary").
    assert first[("requested_model", (("requested_model", "primary"),))] == 1.0
    assert first[("provider", (("provider", "openai"),))] == 1.0
    assert first[("global", ())] == 1.0
    # A group that served requests without a cooldown had none (0, not "unknown").
    assert first[("requested_model", (("requested_model", "backup"),))] == 0.0
    # No model, team or key series: the counter names neither.
    assert {level for level, _ in first} == {"global", "provider", "requested_model"}
    second = cooldowns(source.pull(1030.0).samples)
    assert second[("requested_model", (("requested_model", "primary"),))] == 2.0  # 1 -> 3
    assert second[("global", ())] == 2.0


def test_cooldowns_reach_the_level_frames_detectors_read(capture: str) -> None:
    before = "\n".join(line for line in capture.splitlines() if COOLED not in line) + "\n"
    pages = iter([before, capture])
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text=next(pages)))
    )
    source = PrometheusScrapeSource("http://litellm:4000/metrics/", client=client)
    source.pull(1000.0)
    frames = frames_from_samples(source.pull(1015.0).samples, window=15.0)
    assert frames["provider"].loc["provider=openai", "cooldowns"] == 1.0
    assert frames["requested_model"].loc["requested_model=primary", "cooldowns"] == 1.0
