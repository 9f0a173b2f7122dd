"""SeriesIndex/SeriesState: slots are dense, in order of first appearance, one per key."""

from __future__ import annotations

import numpy as np

from gatewarden.detect.contract import SeriesIndex, SeriesState


def reference_slots(ticks: list[list[str]]) -> list[list[int]]:
    seen: dict[str, int] = {}
    out = []
    for keys in ticks:
        out.append([seen.setdefault(key, len(seen)) for key in keys])
    return out


def test_ensure_assigns_slots_in_first_appearance_order_with_repeats() -> None:
    rng = np.random.default_rng(4)
    pool = [f"k{i}" for i in range(60)]
    ticks = [list(rng.choice(pool, size=int(rng.integers(1, 40)))) for _ in range(30)]
    ticks.append(["k1", "new-a", "k1", "new-b", "new-a"])  # repeats within one tick
    index = SeriesIndex()
    for keys, expected in zip(ticks, reference_slots(ticks), strict=True):
        before = index.lookup(keys).copy()
        slots = index.ensure(keys)
        assert slots.tolist() == expected
        assert index.lookup(keys).tolist() == expected  # the cache answers the same
        assert all(b in (-1, s) for b, s in zip(before.tolist(), expected, strict=True))
        assert [index.key(slot) for slot in expected] == keys
    assert len(index) == len({key for keys in ticks for key in keys})


def test_state_rows_grow_with_new_series_and_take_the_fill() -> None:
    state = SeriesState(initial_capacity=2)
    state.add("x", fill=-1.0)
    slots = state.ensure(["a", "b", "c", "a", "d"])
    assert slots.tolist() == [0, 1, 2, 0, 3]
    assert state.capacity >= 4
    state["x"][slots] = [1.0, 2.0, 3.0, 1.0, 4.0]
    more = state.ensure(["e", "b"])
    assert more.tolist() == [4, 1]
    assert state["x"][more].tolist() == [-1.0, 2.0]
