"""Values one backend takes and the other would refuse or rewrite: both store the same thing.

PostgreSQL rejects NUL and lone surrogates in text and NaN in jsonb, and jsonb rewrites 1e+300
as integer digits; SQLite takes all of it. Both go through ``gatewarden.store.codec``.
"""

from __future__ import annotations

import json
import math
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewarden.models import Event, EventType
from gatewarden.store.codec import encode_payload
from tests.store.backends import Backend

HOSTILE = "a\x00b\ud800c\udfffé😀"


def test_hostile_text_and_numbers_read_back_identically(backend: Backend) -> None:
    store = backend.open()
    payload = {
        "text": HOSTILE,
        HOSTILE: "as a key",
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "huge": 1e300,
        "tiny": 5e-324,
        "small": 1.5e-7,
        "neg_zero": -0.0,
        "whole": 3.0,
        "bigint": 2**70,
        "nested": [[{"x": [None, True, False]}], ()],
        "object": {1: "int key", None: "null key", 2.5: "float key"},
        "unjsonable": {1, 2},
    }
    [stored] = store.append(
        [
            Event(
                ts=1.5,
                type=EventType.ALERT_FIRED,
                incident_id=HOSTILE,
                run_id="r\x00",
                key=f"key:{HOSTILE}",
                payload=payload,
            )
        ]
    )
    [back] = store.events()
    clean = "a\ufffdb\ufffdc\ufffdé😀"
    assert (back.incident_id, back.run_id, back.key) == (clean, "r\ufffd", f"key:{clean}")
    assert back.payload == {
        "text": clean,
        clean: "as a key",
        "nan": "NaN",
        "inf": "Infinity",
        "-inf": "-Infinity",
        "huge": 1e300,
        "tiny": 5e-324,
        "small": 1.5e-7,
        "neg_zero": 0.0,
        "whole": 3.0,
        "bigint": 2**70,
        "nested": [[{"x": [None, True, False]}], []],
        "object": {"1": "int key", "null": "null key", "2.5": "float key"},
        "unjsonable": "{1, 2}",
    }
    assert isinstance(back.payload["huge"], float) and isinstance(back.payload["whole"], float)
    # Filters and idempotency see the stored (cleaned) form of the original text.
    assert store.events(incident_id=HOSTILE) == [back]
    assert store.event_by_key(f"key:{HOSTILE}") == back
    assert store.append([stored.model_copy(update={"seq": None})])[0].seq == back.seq
    store.put_state(HOSTILE, HOSTILE)
    assert store.get_state(HOSTILE) == clean
    assert store.lease(HOSTILE, HOSTILE, 10, 0.0) == 1
    assert store.lease(HOSTILE, HOSTILE, 10, 5.0) == 1


def _reject(constant: str) -> object:
    raise ValueError(f"not strict JSON: {constant}")


# Keys avoid NUL and U+FFFD so that cleaning cannot merge two keys of one mapping.
keys = st.text(st.characters(codec="utf-8", exclude_characters="\x00\ufffd"), max_size=8)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def same_value(original: object, decoded: object) -> bool:
    """``decoded`` is ``original`` after the codec: floats stay floats (non-finite ones become
    their names), text is cleaned, everything else is equal."""
    if isinstance(original, float):
        if not math.isfinite(original):
            return decoded == {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(original)]
        return isinstance(decoded, float) and decoded == original
    if isinstance(original, str):
        return decoded == re.sub("[\x00\ud800-\udfff]", "\ufffd", original)
    if isinstance(original, dict):
        return (
            isinstance(decoded, dict)
            and decoded.keys() == original.keys()
            and all(same_value(v, decoded[k]) for k, v in original.items())
        )
    if isinstance(original, list):
        return (
            isinstance(decoded, list)
            and len(decoded) == len(original)
            and all(same_value(a, b) for a, b in zip(original, decoded, strict=True))
        )
    return type(decoded) is type(original) and decoded == original


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.dictionaries(keys, json_value, max_size=5))
def test_payload_encoding_is_strict_json_that_reads_back_the_same(
    payload: dict[str, object],
) -> None:
    decoded = json.loads(encode_payload(payload), parse_constant=_reject)
    assert same_value(payload, decoded)
