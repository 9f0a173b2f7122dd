"""Silences and maintenance windows: label matchers with an expiry, stored as events.

A silenced alert is recorded (``alert.silenced``) but opens no incident, pages nobody and
starts no playbook. When the silence ends while the alert still fires, it is routed like a
fresh alert, so nothing is lost behind an expired silence.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gatewarden.models import Alert, Event, EventType
from gatewarden.protocols import Store

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class Matcher(BaseModel):
    """``label=value``, ``label!=value``, ``label=~regex``, ``label!~regex`` (full match).
    The label ``kind`` matches the alert kind; every other label matches the scope."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = _MATCHER.match(text)
        if match is None:
            raise ValueError(f"not a matcher (label=value, label=~regex, ...): {text!r}")
        label, op, value = match.groups()
        matcher = cls.model_validate({"label": label, "op": op, "value": value})
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex in {text!r}: {exc}") from exc
        return matcher

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


class Silence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    matchers: tuple[Matcher, ...] = Field(min_length=1)
    starts_at: float
    ends_at: float
    by: str
    reason: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, kind: str, scope: Mapping[str, str]) -> bool:
        labels = {**scope, "kind": kind}
        return all(m.matches(labels) for m in self.matchers)


def create_silence(
    store: Store,
    *,
    matchers: Sequence[Matcher],
    starts_at: float,
    ends_at: float,
    by: str,
    reason: str,
    now: float,
) -> Silence:
    if ends_at <= starts_at:
        raise ValueError("a silence must end after it starts")
    silence = Silence(
        id=f"sil-{uuid.uuid4().hex[:10]}",
        matchers=tuple(matchers),
        starts_at=starts_at,
        ends_at=ends_at,
        by=by,
        reason=reason,
    )
    store.append(
        [
            Event(
                ts=now,
                type=EventType.SILENCE_CREATED,
                key=f"silence:{silence.id}",
                payload=silence.model_dump(mode="json"),
            )
        ]
    )
    return silence


def expire_silence(store: Store, silence_id: str, *, by: str, reason: str, now: float) -> None:
    if silence_id not in {s.id for s in load_silences(store)}:
        raise KeyError(silence_id)
    store.append(
        [
            Event(
                ts=now,
                type=EventType.SILENCE_EXPIRED,
                key=f"silence-expired:{silence_id}",
                payload={"id": silence_id, "by": by, "reason": reason, "at": now},
            )
        ]
    )


def load_silences(store: Store) -> list[Silence]:
    return SilenceMuter(store).refresh()


class SilenceMuter:
    """The ``Muter`` for silences; re-reads only new silence events each tick."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._seq = 0
        self._silences: dict[str, Silence] = {}

    def refresh(self) -> list[Silence]:
        for event in self._store.events(
            types=[EventType.SILENCE_CREATED, EventType.SILENCE_EXPIRED], after_seq=self._seq
        ):
            self._seq = event.seq or self._seq
            if event.type is EventType.SILENCE_CREATED:
                silence = Silence.model_validate(event.payload)
                self._silences[silence.id] = silence
            elif event.payload.get("id") in self._silences:
                old = self._silences[event.payload["id"]]
                end = min(old.ends_at, float(event.payload.get("at", event.ts)))
                self._silences[old.id] = old.model_copy(update={"ends_at": end})
        return list(self._silences.values())

    def silence_for(self, kind: str, scope: Mapping[str, str], now: float) -> Silence | None:
        for silence in self._silences.values():
            if silence.active(now) and silence.matches(kind, scope):
                return silence
        return None

    def mutes(self, alert: Alert, now: float) -> bool:
        return self.silence_for(alert.kind, alert.scope, now) is not None
