"""The fast exposition parser agrees with prometheus_client's, sample for sample."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatewarden.ingest.prom_parse import _fast, parse_scrape
from gatewarden.models import Sample

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "litellm-samples/metrics_scrape.txt"
FIXTURES = Path(__file__).parent.parent / "fixtures"

NAMES = ["req", "req_total", "lat", "lat_bucket", "lat_sum", "lat_count", "up", "x_created"]
TYPES = ["counter", "gauge", "histogram", "summary", "untyped", "info"]
LABEL_NAMES = ["le", "model", "team", "a_b", "route", "_x"]
#: Characters that stress the fast path: separators, braces and quotes (escaped), unicode.
VALUE_CHARS = ["a", "Z", "0", " ", ",", "=", "}", "{", "/", ".", "-", '\\"', "\\\\", "\\n", "é"]
VALUES = ["0", "1", "2.5", "-3", "1e3", "1.5e-07", "+Inf", "-Inf", "NaN", "12345678901234567890"]


def reference(text: str, ts: float) -> list[Sample]:
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            value = float(s.value)
            if math.isnan(value):
                continue
            stamp = ts if s.timestamp is None else float(s.timestamp)
            out.append(Sample(name=s.name, labels=dict(s.labels), ts=stamp, value=value))
    return out


def random_line(rng: random.Random, family: str) -> str:
    name = rng.choice([family, f"{family}_total", f"{family}_bucket", *NAMES])
    labels = rng.sample(LABEL_NAMES, rng.randint(0, 4))
    pairs = [f'{k}="{"".join(rng.choices(VALUE_CHARS, k=rng.randint(0, 6)))}"' for k in labels]
    block = ""
    if pairs or rng.random() < 0.2:
        sep = rng.choice([",", ",", ", "])
        block = "{" + sep.join(pairs) + ("," if pairs and rng.random() < 0.2 else "") + "}"
    value = rng.choice(VALUES)
    stamp = f" {rng.randint(0, 2**41)}" if rng.random() < 0.2 else ""
    gap = rng.choice([" ", " ", " ", "  ", "\t"])
    return f"{name}{block}{gap}{value}{stamp}"


def random_page(rng: random.Random) -> str:
    lines: list[str] = []
    for _ in range(rng.randint(1, 6)):
        family = rng.choice(["req", "lat", "up", "x"])
        if rng.random() < 0.7:
            lines.append(f'# HELP {family} some "help" text')
        if rng.random() < 0.8:
            lines.append(f"# TYPE {family} {rng.choice(TYPES)}")
        for _ in range(rng.randint(0, 6)):
            lines.append(random_line(rng, family))
        if rng.random() < 0.1:
            lines.append("")
        if rng.random() < 0.1:
            lines.append("# just a comment")
    return "\n".join(lines) + "\n"


def test_random_pages_parse_exactly_like_the_reference() -> None:
    rng = random.Random(20260517)
    checked = fast_lines = 0
    for _ in range(1500):
        page = random_page(rng)
        try:
            expected = reference(page, 7.0)
        except ValueError:
            assert parse_scrape(page, 7.0).malformed > 0, page
            continue
        got = parse_scrape(page, 7.0)
        assert got.malformed == 0, (page, got.problems)
        assert got.samples == expected, page
        checked += 1
        fast_lines += sum(1 for line in page.splitlines() if _fast(line.strip()) is not None)
    # Both paths were exercised: most pages are valid, and most of their lines took the fast path.
    assert checked > 1000 and fast_lines > 3000


def test_counter_family_without_total_suffix_is_renamed_like_the_reference() -> None:
    page = '# TYPE hits counter\nhits{a="1"} 3\nhits_total 4\n'
    assert [s.name for s in parse_scrape(page, 0).samples] == ["hits_total", "hits_total"]
    assert parse_scrape(page, 0).samples == reference(page, 0)


@pytest.mark.parametrize("path", [SAMPLES, FIXTURES / "litellm_metrics_excerpt.txt"])
def test_real_litellm_pages_agree(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not present")
    text = path.read_text()
    got = parse_scrape(text, 1.0)
    assert got.malformed == 0
    assert got.samples == reference(text, 1.0)
    assert got.types["litellm_llm_api_time_to_first_token_metric_bucket"] == "histogram"
    assert got.types["litellm_proxy_total_requests_metric_total"] == "counter"


def test_bad_lines_are_counted_and_the_rest_kept() -> None:
    page = 'ok{a="1"} 1\nbroken{a="1" 2\nalso_ok 3\nx 1_000\n'
    got = parse_scrape(page, 0)
    assert [s.name for s in got.samples] == ["ok", "also_ok"]
    assert got.malformed == 2 and got.problems[0].startswith("line 2:")
