"""Counter increases across scrapes (resets, new, missing, stale) and histogram quantiles."""

from __future__ import annotations

import math

import pytest

from gatewarden.ingest.prom_parse import parse_scrape
from gatewarden.ingest.prom_rates import Deltas, RateTracker, histogram_quantile

HEAD = "# TYPE req_total counter\n"


def page(*lines: str, head: str = HEAD) -> str:
    return head + "\n".join(lines) + "\n"


def increases(deltas: Deltas | None) -> dict[str, float]:
    assert deltas is not None
    return {i.labels.get("m", i.name): i.value for i in deltas.increases}


def test_first_scrape_is_the_baseline_then_increases() -> None:
    tracker = RateTracker()
    assert tracker.update(parse_scrape(page('req_total{m="a"} 10'), 100.0)) is None
    assert tracker.last_result == "baseline"
    deltas = tracker.update(parse_scrape(page('req_total{m="a"} 15'), 115.0))
    assert deltas is not None and deltas.window == 15.0 and deltas.ts == 115.0
    assert increases(deltas) == {"a": 5.0}


def test_reset_counts_the_new_value() -> None:
    tracker = RateTracker()
    tracker.update(parse_scrape(page('req_total{m="a"} 100'), 1.0))
    deltas = tracker.update(parse_scrape(page('req_total{m="a"} 7'), 2.0))
    assert increases(deltas) == {"a": 7.0} and tracker.resets == 1


def test_a_changed_created_stamp_is_a_reset_even_above_the_old_value() -> None:
    head = "# TYPE req_total counter\n# TYPE req_created gauge\n"
    tracker = RateTracker()
    tracker.update(
        parse_scrape(page('req_total{m="a"} 5', 'req_created{m="a"} 100', head=head), 200)
    )
    restarted = page('req_total{m="a"} 9', 'req_created{m="a"} 205', head=head)
    assert increases(tracker.update(parse_scrape(restarted, 215))) == {"a": 9.0}


def test_new_series_count_in_full_unless_created_before_the_previous_scrape() -> None:
    head = "# TYPE req_total counter\n# TYPE req_created gauge\n"
    tracker = RateTracker()
    tracker.update(parse_scrape(page('req_total{m="a"} 1', head=head), 100))
    second = page(
        'req_total{m="a"} 1',
        'req_total{m="born"} 3',
        'req_created{m="born"} 104',
        'req_total{m="old"} 50',
        'req_created{m="old"} 20',
        head=head,
    )
    assert increases(tracker.update(parse_scrape(second, 110))) == {"a": 0.0, "born": 3.0}


def test_a_missing_series_is_not_a_zero_and_its_return_is_a_normal_increase() -> None:
    tracker = RateTracker()
    tracker.update(parse_scrape(page('req_total{m="a"} 4', 'req_total{m="b"} 10'), 1))
    assert increases(tracker.update(parse_scrape(page('req_total{m="a"} 6'), 2))) == {"a": 2.0}
    back = page('req_total{m="a"} 6', 'req_total{m="b"} 13')
    assert increases(tracker.update(parse_scrape(back, 3))) == {"a": 0.0, "b": 3.0}


def test_stale_and_out_of_order_scrapes_are_ignored() -> None:
    # Explicit sample timestamps (milliseconds) date the scrape, whatever the pull time.
    tracker = RateTracker()
    tracker.update(parse_scrape(page('req_total{m="a"} 4 100000'), 500))
    assert tracker.update(parse_scrape(page('req_total{m="a"} 9 100000'), 510)) is None
    assert tracker.last_result == "stale"
    assert tracker.update(parse_scrape(page('req_total{m="a"} 9 90000'), 520)) is None
    assert tracker.last_result == "out_of_order"
    deltas = tracker.update(parse_scrape(page('req_total{m="a"} 9 115000'), 530))
    assert increases(deltas) == {"a": 5.0} and deltas is not None and deltas.window == 15.0


def test_gauges_and_created_stamps_are_not_counters() -> None:
    text = (
        "# TYPE up gauge\nup 1\n# TYPE lat histogram\n"
        'lat_bucket{le="1.0"} 1\nlat_bucket{le="+Inf"} 2\nlat_sum 3\nlat_count 2\n'
        "# TYPE lat_created gauge\nlat_created 5\nstray_total 4\n"
    )
    tracker = RateTracker()
    tracker.update(parse_scrape(text, 1))
    deltas = tracker.update(parse_scrape(text, 2))
    assert deltas is not None
    names = sorted({i.name for i in deltas.increases})
    assert names == ["lat_bucket", "lat_count", "lat_sum", "stray_total"]


def test_series_unseen_for_forget_after_are_forgotten() -> None:
    tracker = RateTracker(forget_after=10)
    tracker.update(parse_scrape(page('req_total{m="a"} 4', 'req_total{m="b"} 10'), 0))
    tracker.update(parse_scrape(page('req_total{m="a"} 4'), 20))
    # b is new again: counted in full (LiteLLM creates series on first increment).
    back = page('req_total{m="a"} 4', 'req_total{m="b"} 12')
    assert increases(tracker.update(parse_scrape(back, 25))) == {"a": 0.0, "b": 12.0}


INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        # Values checked against PromQL's bucketQuantile by hand.
        (0.5, [(1.0, 10), (2.0, 20), (INF, 20)], 1.0),
        (0.75, [(1.0, 10), (2.0, 20), (INF, 20)], 1.5),
        (0.95, [(0.1, 0), (0.5, 50), (1.0, 100), (INF, 100)], 0.95),
        (0.5, [(0.1, 0), (0.5, 50), (1.0, 100), (INF, 100)], 0.5),
        (0.25, [(1.0, 10), (INF, 10)], 0.25),  # the first bucket starts at 0
        (0.99, [(1.0, 1), (2.0, 2), (INF, 10)], 2.0),  # rank in +Inf: highest finite bound
        (0.5, [(-1.0, 4), (INF, 4)], -1.0),  # first bucket with bound <= 0
        (0.5, [(INF, 4), (1.0, 2), (2.0, 1)], 1.0),  # unsorted, non-monotonic: clamped
        (0.5, [(1.0, 0), (INF, 0)], math.nan),  # no observations
        (0.5, [(1.0, 3)], math.nan),  # no +Inf bucket
        (1.5, [(1.0, 3), (INF, 3)], INF),
        (-0.5, [(1.0, 3), (INF, 3)], -INF),
    ],
)
def test_histogram_quantile_matches_promql(
    q: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    got = histogram_quantile(q, buckets)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)
