"""Snooze from Slack: a silence on the incident's scope and kinds, plus an acknowledgement.

The silence (``silence.created``, honoured by the correlator's ``SilenceMuter``) keeps new and
recurring alerts of this incident from paging until it ends; the ``incident.acknowledged``
event records who snoozed and until when, so the thread says so and the report counts it as
the acknowledgement. A second click by the same person while the first silence still covers
the period reuses it instead of stacking silences.
"""

from __future__ import annotations

import re

from gatewarden.correlate.silence import Matcher, Silence, create_silence, load_silences
from gatewarden.errors import GatewardenError
from gatewarden.models import Event, EventType
from gatewarden.notify.messages import fmt_duration, fmt_time
from gatewarden.projections import incident_from_events
from gatewarden.protocols import Store

#: A reused silence may end this much earlier than a fresh one would (double-click slack).
_REUSE_SLACK_S = 120.0


class SnoozeRefused(GatewardenError):
    """The incident is unknown, or the duration is not positive."""


def incident_matchers(scope: dict[str, str], kinds: tuple[str, ...]) -> list[Matcher]:
    """Exactly this incident: every scope label, and one of its alert kinds."""
    matchers = [Matcher(label=k, op="=", value=v) for k, v in sorted(scope.items())]
    if kinds:
        pattern = "|".join(re.escape(k) for k in sorted(set(kinds)))
        matchers.append(Matcher(label="kind", op="=~", value=f"(?:{pattern})"))
    return matchers


def snooze_incident(
    store: Store, *, incident_id: str, by: str, duration_s: float, now: float
) -> Silence:
    """Silence the incident's alerts for ``duration_s`` and record who did it."""
    if duration_s <= 0:
        raise SnoozeRefused("a snooze needs a positive duration")
    incident = incident_from_events(store.events(incident_id=incident_id))
    if incident is None:
        raise SnoozeRefused(f"no incident {incident_id!r}")
    matchers = incident_matchers(dict(incident.scope), incident.kinds)
    if not matchers:
        raise SnoozeRefused(f"incident {incident_id} has neither scope nor kind to match")
    wanted = [str(m) for m in matchers]
    silence = next(
        (
            s
            for s in load_silences(store)
            if s.by == by
            and [str(m) for m in s.matchers] == wanted
            and s.active(now)
            and s.ends_at >= now + duration_s - _REUSE_SLACK_S
        ),
        None,
    )
    if silence is None:
        silence = create_silence(
            store,
            matchers=matchers,
            starts_at=now,
            ends_at=now + duration_s,
            by=by,
            reason=f"snoozed from Slack (incident {incident_id})",
            now=now,
        )
    reason = (
        f"snoozed for {fmt_duration(silence.ends_at - now)}, until {fmt_time(silence.ends_at)} "
        f"(silence {silence.id})"
    )
    store.append(
        [
            Event(
                ts=now,
                type=EventType.INCIDENT_ACKNOWLEDGED,
                incident_id=incident_id,
                key=f"ack:{incident_id}:{silence.id}",
                payload={"by": by, "reason": reason, "silence_id": silence.id},
            )
        ]
    )
    return silence
