"""Tick.clear answers membership from each spec's verdict mask, without building strings."""

from __future__ import annotations

import numpy as np

from gatewarden.verdicts import HealthySet


def _table(*fps: str) -> tuple[dict[str, int], np.ndarray]:
    return {fp: i for i, fp in enumerate(fps)}, np.array(fps, dtype=object)


def test_membership_from_masks_explicit_items_and_exclusions() -> None:
    slot_of, table = _table("a", "b", "c")
    clear = HealthySet(["x"])
    clear.add_judged(slot_of, np.array([True, False, True]), table)
    assert "a" in clear and "c" in clear and "x" in clear
    assert "b" not in clear and "zz" not in clear and 3 not in clear
    clear.exclude(["c"])
    assert "c" not in clear
    assert clear == {"a", "x"} and len(clear) == 2
    clear.update(["y"])
    assert set(clear) == {"a", "x", "y"}


def test_a_slot_added_after_the_tick_is_not_healthy_in_it() -> None:
    slot_of, table = _table("a")
    clear = HealthySet()
    clear.add_judged(slot_of, np.array([True]), table)
    slot_of["later"] = 1  # the spec's index grows on a later tick
    assert "later" not in clear and "a" in clear


def test_two_specs_of_one_level_each_count() -> None:
    first, t1 = _table("a", "b")
    second, t2 = _table("b", "c")
    clear = HealthySet()
    clear.add_judged(first, np.array([False, True]), t1)
    clear.add_judged(second, np.array([False, True]), t2)
    assert clear == {"b", "c"}
    assert clear - {"b"} == {"c"}
