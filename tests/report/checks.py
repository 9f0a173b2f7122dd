"""Independent checks of a report against the event log (shared by the report tests).

These re-derive what a timeline must contain from the raw events, without the report code, so
a test fails when the report drops, reorders or misattributes a decision.
"""

from __future__ import annotations

import base64
import re
import struct
from html.parser import HTMLParser

from gatewarden.models import Event, EventType
from gatewarden.protocols import Store
from gatewarden.report import Timeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_HIDDEN = {EventType.NOTIFICATION_QUEUED, EventType.REPORT_WRITTEN, EventType.ALERT_UPDATED}
_PAGES = {"incident.opened", "approval.requested", "incident.resolved"}
_HUMAN = {EventType.APPROVAL_GRANTED, EventType.APPROVAL_DENIED, EventType.INCIDENT_ACKNOWLEDGED}


def incident_events(store: Store, incident_id: str) -> list[Event]:
    """The incident's events plus its members' ``alert.fired`` (filed without an incident id):
    per member, the last firing before it joined and any firing after, until resolution."""
    own = store.events(incident_id=incident_id)
    joined: dict[str, float] = {}
    end = float("inf")
    for e in own:
        if e.type is EventType.INCIDENT_OPENED:
            joined.setdefault(e.payload["root_cause"], e.ts)
        elif e.type in (EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED):
            joined.setdefault(e.payload["fingerprint"], e.ts)
        elif e.type is EventType.INCIDENT_RESOLVED:
            end = e.ts
        elif e.type is EventType.INCIDENT_REOPENED:
            end = float("inf")
    seqs = {e.seq for e in own}
    extra: list[Event] = []
    for fp, at in joined.items():
        fired = [
            e
            for e in store.events(types=[EventType.ALERT_FIRED])
            if e.payload["fingerprint"] == fp
            and e.seq not in seqs
            and e.ts <= end
            and e.incident_id is None
        ]
        extra += [e for e in fired if e.ts <= at][-1:] + [e for e in fired if e.ts > at]
    return own + extra


def expected_actor(event: Event, playbooks: dict[str, str]) -> str:
    p = event.payload
    if event.type in _HUMAN:
        return str(p["by"])
    if event.type.value.startswith("alert.") and "detector" in p:
        return f"detector:{p['detector']}"
    if event.type.value.startswith("notification."):
        return f"notifier:{p['notifier']}"
    if event.run_id:
        return f"playbook:{playbooks[event.run_id]}"
    if event.type is EventType.INCIDENT_MITIGATED:
        return f"playbook:{playbooks[p['run_id']]}"
    return "gatewarden"


def assert_entries_match_events(timeline: Timeline, events: list[Event]) -> None:
    """Every event a reader needs is an entry, in (ts, seq) order, with the right actor; the
    figures agree with the events."""
    kinds = {
        e.payload["message"]["id"]: e.payload["message"]["kind"]
        for e in events
        if e.type is EventType.NOTIFICATION_QUEUED
    }
    playbooks = {
        str(e.run_id): str(e.payload["playbook"])
        for e in events
        if e.type is EventType.PLAYBOOK_STARTED
    }

    def shown(e: Event) -> bool:
        if e.type in _HIDDEN:
            return False
        if e.type is EventType.NOTIFICATION_DELIVERED:
            return kinds.get(e.payload["message_id"]) in _PAGES
        return True

    expected = sorted((e for e in events if shown(e)), key=lambda e: (e.ts, e.seq or 0))
    entries = [x for x in timeline.entries if x.type != "anomaly.first"]
    assert [(x.seq, x.ts, x.type) for x in entries] == [
        (e.seq, e.ts, e.type.value) for e in expected
    ]
    for entry, event in zip(entries, expected, strict=True):
        assert entry.actor == expected_actor(event, playbooks), entry
        assert entry.summary, entry
    fired = [e for e in events if e.type is EventType.ALERT_FIRED]
    first = min(e.payload["first_anomalous_ts"] or e.ts for e in fired)
    opened = next(e.ts for e in events if e.type is EventType.INCIDENT_OPENED)
    assert timeline.entries[0].type == "anomaly.first" and timeline.entries[0].ts == first
    f = timeline.figures
    assert f.time_to_detect_s == opened - first
    human = [e.ts for e in events if e.type in _HUMAN and e.payload.get("by") != "policy:auto"]
    assert f.time_to_acknowledge_s == (min(human) - opened if human else None)
    mitigated = [e.ts for e in events if e.type is EventType.INCIDENT_MITIGATED]
    assert f.time_to_mitigate_s == (min(mitigated) - opened if mitigated else None)
    resolved = [e.ts for e in events if e.type is EventType.INCIDENT_RESOLVED]
    assert f.time_to_resolve_s == (max(resolved) - opened if resolved else None)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data", "background"):
                self.refs.append((tag, name, value or ""))
            if name == "style" and value:
                self.styles.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_MAGIC, "not a PNG"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
    return int(width), int(height)


def assert_self_contained(html: str) -> list[bytes]:
    """No external resource of any kind; returns the inline PNG images (each checked)."""
    parser = _Refs()
    parser.feed(html)
    for banned in ("link", "iframe", "object", "embed", "base", "frame"):
        assert banned not in parser.tags, f"<{banned}> in a self-contained report"
    images: list[bytes] = []
    for tag, name, value in parser.refs:
        if name == "href":
            assert value.startswith("#"), f"external link {value!r}"
        else:
            assert tag == "img" and name == "src", f"{tag} {name}={value[:40]!r}"
            assert value.startswith("data:image/png;base64,"), value[:40]
            images.append(base64.b64decode(value.split(",", 1)[1], validate=True))
    assert "script" not in parser.tags
    for style in parser.styles:
        assert not re.search(r"url\(|@import", style), style[:80]
    assert "@media print" in html
    for png in images:
        width, height = png_size(png)
        assert width >= 400 and height >= 150 and len(png) > 5000
    return images
