"""Tick.clear answers from each spec's verdict mask: by kind and scope key without hashing,
and by fingerprint (hashed on first need) with the same answers."""

from __future__ import annotations

import numpy as np
import pytest

from gatewarden.detect.fingerprints import SeriesFingerprints
from gatewarden.models import fingerprint
from gatewarden.verdicts import HealthySet, is_clear
from tests.detect.streams import count_hashes


def _series(kind: str, *keys: str) -> SeriesFingerprints:
    series = SeriesFingerprints(kind)
    series.ensure(list(keys))
    return series


def _fp(kind: str, key: str) -> str:
    label, value = key.split("=")
    return fingerprint(kind, {label: value})


def test_membership_from_masks_explicit_items_and_exclusions() -> None:
    series = _series("traffic", "api_key=a", "api_key=b", "api_key=c")
    a, b, c = (_fp("traffic", f"api_key={k}") for k in "abc")
    clear = HealthySet(["x"])
    clear.add_judged(series, np.array([True, False, True]))
    assert a in clear and c in clear and "x" in clear
    assert b not in clear and "zz" not in clear and 3 not in clear
    clear.exclude([c])
    assert c not in clear
    assert clear == {a, "x"} and len(clear) == 2
    clear.update(["y"])
    assert set(clear) == {a, "x", "y"}


def test_the_correlators_question_agrees_with_membership_and_hashes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hashed = count_hashes(monkeypatch)
    keys = [f"api_key=k{i}" for i in range(6)]
    traffic = _series("traffic", *keys)
    errors = _series("error_rate", *keys)
    clear = HealthySet(["explicit"])
    clear.add_judged(traffic, np.array([True, False, True, False, True, False]))
    clear.add_judged(errors, np.array([False, False, False, True, True, True]))
    clear.exclude([_fp("traffic", "api_key=k4")])
    answers = {
        (kind, key): clear.judged_healthy(_fp(kind, key), kind, key)
        for kind in ("traffic", "error_rate", "cost")
        for key in [*keys, "api_key=unknown"]
    }
    assert hashed == []  # the correlator's question never hashes a series
    assert answers[("traffic", "api_key=k0")] and not answers[("traffic", "api_key=k1")]
    assert not answers[("traffic", "api_key=k4")]  # fired under another spec this tick
    assert answers[("error_rate", "api_key=k4")]  # another kind: its own verdict
    assert not answers[("traffic", "api_key=k3")]  # healthy for error_rate only
    assert not any(v for (kind, _), v in answers.items() if kind == "cost")
    assert clear.judged_healthy("explicit", "cost", "api_key=k0")  # explicit items by fp
    for (kind, key), answer in answers.items():
        assert (_fp(kind, key) in clear) is answer  # the same answers by fingerprint
        assert is_clear(clear, _fp(kind, key), kind, {"api_key": key.split("=")[1]}) is answer
    assert is_clear({_fp("cost", "api_key=k0")}, _fp("cost", "api_key=k0"), "cost", {})


def test_a_slot_added_after_the_tick_is_not_healthy_in_it() -> None:
    series = _series("traffic", "api_key=a")
    clear = HealthySet()
    clear.add_judged(series, np.array([True]))
    series.ensure(["api_key=later"])  # the spec's table grows on a later tick
    later = _fp("traffic", "api_key=later")
    assert later not in clear and _fp("traffic", "api_key=a") in clear
    assert not clear.judged_healthy(later, "traffic", "api_key=later")


def test_two_specs_of_one_level_each_count() -> None:
    first = _series("traffic", "api_key=a", "api_key=b")
    second = _series("traffic", "api_key=b", "api_key=c")
    clear = HealthySet()
    clear.add_judged(first, np.array([False, True]))
    clear.add_judged(second, np.array([False, True]))
    b, c = _fp("traffic", "api_key=b"), _fp("traffic", "api_key=c")
    assert clear == {b, c}
    assert clear - {b} == {c}


def test_a_rebuilt_table_keeps_hashed_fingerprints_and_slots_for_its_keys() -> None:
    series = _series("traffic", "api_key=a", "api_key=b", "api_key=c")
    assert series.fingerprint(1) == _fp("traffic", "api_key=b")
    kept = series.keep_only(["api_key=c", "api_key=b"])
    assert len(kept) == 2 and kept.slot("api_key=c") == 0 and kept.slot("api_key=a") is None
    assert kept.fingerprint(1) == _fp("traffic", "api_key=b")
    assert kept.slot_of_fingerprint(_fp("traffic", "api_key=c")) == 0
    assert kept.slot_of_fingerprint(_fp("traffic", "api_key=a")) is None
