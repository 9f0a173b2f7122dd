"""What every backend stores, encoded one way, so SQLite and PostgreSQL hold the same values.

PostgreSQL refuses some values SQLite takes without complaint: a NUL character in ``text``, a
lone UTF-16 surrogate (not encodable as UTF-8), ``NaN``/``Infinity`` in ``jsonb``; and ``jsonb``
rewrites ``1e+300`` as a 301-digit integer, which reads back as a Python ``int``. Both backends
therefore write through this module:

* text (keys, ids, state, payload strings and keys): NUL and lone surrogates become U+FFFD;
* payload: strict JSON, floats in fixed notation (so ``jsonb`` keeps them floats), non-finite
  floats as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (pydantic float fields
  accept them back), anything else not JSON as ``str(value)``.

A payload read back is therefore ``decode(encode(payload))`` on either backend, never more.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from gatewarden.errors import StoreError
from gatewarden.models import Event, EventType

#: Column order of every events query in both backends.
COLUMNS = "seq, ts, type, incident_id, run_id, key, payload"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NON_FINITE = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}


def clean_text(value: str) -> str:
    """``value`` with the characters PostgreSQL cannot store replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value


def clean_opt(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


def _float(value: float) -> str:
    if not math.isfinite(value):
        return _NON_FINITE[repr(value)]
    text = repr(value)
    if "e" in text:
        # jsonb turns 1e+300 into integer digits (and so into a Python int on the way back):
        # fixed notation with a decimal point keeps it a float.
        text = format(Decimal(text), "f")
        if "." not in text:
            text += ".0"
    return text


def _key(key: object) -> str:
    # The same coercions json.dumps applies to non-string keys.
    if isinstance(key, str):
        return clean_text(key)
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, float):
        return _float(key).strip('"')
    return clean_text(str(key))


def _encode(value: object, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append(json.dumps(value))
    elif isinstance(value, str):
        out.append(json.dumps(clean_text(value), ensure_ascii=False))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            out.append("," if i else "")
            out.append(json.dumps(_key(k), ensure_ascii=False))
            out.append(":")
            _encode(v, out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _encode(item, out)
        out.append("]")
    else:
        out.append(json.dumps(clean_text(str(value)), ensure_ascii=False))


def encode_payload(payload: Mapping[str, Any]) -> str:
    """Strict JSON text of ``payload``; StoreError if it cannot be encoded at all."""
    out: list[str] = []
    try:
        _encode(payload, out)
    except (RecursionError, ValueError) as exc:
        # ValueError: an int longer than Python's int-to-str limit (4300 digits).
        raise StoreError(f"event payload cannot be stored: {type(exc).__name__}: {exc}") from None
    return "".join(out)


def row_to_event(row: Sequence[Any]) -> Event:
    """An events row (``COLUMNS`` order) as an Event; ``payload`` may be JSON text (SQLite) or
    already decoded (psycopg decodes jsonb)."""
    seq, ts, type_, incident_id, run_id, key, payload = row
    return Event(
        seq=int(seq),
        ts=float(ts),
        type=EventType(str(type_)),
        incident_id=None if incident_id is None else str(incident_id),
        run_id=None if run_id is None else str(run_id),
        key=None if key is None else str(key),
        payload=json.loads(payload) if isinstance(payload, str | bytes) else payload,
    )


def lease_decision(row: Sequence[Any] | None, holder: str, now: float) -> int | None:
    """The token ``holder`` gets from the lease row ``(holder, expires, token)`` at ``now``:
    a free lease starts at 1, our live lease keeps its token, an expired one (ours or not) is
    taken with the token bumped, someone else's live lease gives None."""
    if row is None:
        return 1
    current, expires, token = str(row[0]), float(row[1]), int(row[2])
    if current == holder and expires >= now:
        return token
    if expires < now:
        return token + 1
    return None
