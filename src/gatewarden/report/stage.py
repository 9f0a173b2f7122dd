"""The report pipeline stage: every resolved incident gets its report, even across a crash.

Reports are written when ``incident.resolved`` passes through a tick. A daemon that dies between
appending the resolution and appending ``report.written`` would never see that resolution in a
tick again, so on its first run the stage also looks in the store for resolved incidents whose
latest resolution has no ``report.written`` after it (in every format it writes) and writes
those. It looks again every ``rescan_s``: under HA a replica that led before, stood by while
another leader crashed mid-resolution, and leads again has no "first run" to catch that. A
write that fails (a full disk) is retried on later ticks, backing off, since everything a report
needs stays in the event log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from gatewarden.models import EventType
from gatewarden.protocols import Clock, Store, Tick
from gatewarden.report.render import DEFAULT_FORMATS, FORMATS, write_reports

log = logging.getLogger(__name__)

_FIRST_RETRY_S = 60.0
_MAX_RETRY_S = 3600.0


def unreported(store: Store, formats: Iterable[str] = DEFAULT_FORMATS) -> list[str]:
    """Incidents resolved (and not reopened since) whose latest resolution is not followed by a
    ``report.written`` in each of ``formats``, in resolution order."""
    wanted = tuple(formats)
    types = [EventType.INCIDENT_RESOLVED, EventType.INCIDENT_REOPENED, EventType.REPORT_WRITTEN]
    resolved: dict[str, int] = {}
    written: dict[str, dict[str, int]] = {}
    for event in store.events(types=types):
        incident, seq = event.incident_id, event.seq or 0
        if incident is None:
            continue
        if event.type is EventType.INCIDENT_RESOLVED:
            resolved.pop(incident, None)  # keeps the dict in resolution order
            resolved[incident] = seq
        elif event.type is EventType.INCIDENT_REOPENED:
            resolved.pop(incident, None)
        else:
            fmt = str(event.payload.get("format", ""))
            written.setdefault(incident, {})[fmt] = seq
    return [
        incident
        for incident, seq in resolved.items()
        if any(written.get(incident, {}).get(fmt, -1) < seq for fmt in wanted)
    ]


class ReportStage:
    """Pipeline stage: writes the reports of every incident resolved during this tick, and on
    its first run (then every ``rescan_s``) those resolved earlier without a report."""

    name = "report"

    def __init__(
        self,
        store: Store,
        out_dir: Path | str,
        clock: Clock,
        *,
        formats: Sequence[str] = DEFAULT_FORMATS,
        rescan_s: float = 600.0,
    ) -> None:
        for fmt in formats:
            if fmt not in FORMATS:
                raise ValueError(f"unknown report format {fmt!r}; known: {sorted(FORMATS)}")
        self._store = store
        self._out_dir = Path(out_dir)
        self._clock = clock
        self._formats = tuple(formats)
        self.rescan_s = rescan_s
        self._scanned_at: float | None = None
        #: incident -> (not before, current delay) of a write that failed
        self._retry: dict[str, tuple[float, float]] = {}

    def run(self, tick: Tick) -> None:
        due: dict[str, None] = {}
        if self._scanned_at is None or tick.now >= self._scanned_at + self.rescan_s:
            self._scanned_at = tick.now
            # Failed writes wait for their retry time rather than being rescanned early.
            missing = [i for i in unreported(self._store, self._formats) if i not in self._retry]
            if missing:
                log.warning(
                    "%d resolved incident(s) have no report yet (a crash before it was "
                    "written?): writing them now",
                    len(missing),
                )
            due.update(dict.fromkeys(missing))
        due.update(
            dict.fromkeys(
                e.incident_id
                for e in tick.events
                if e.type is EventType.INCIDENT_RESOLVED and e.incident_id
            )
        )
        due.update(dict.fromkeys(i for i, (at, _) in self._retry.items() if tick.now >= at))
        for incident_id in due:
            if incident_id is not None:
                self._write(tick, incident_id)

    def _write(self, tick: Tick, incident_id: str) -> None:
        try:
            written = write_reports(
                self._store,
                incident_id,
                self._out_dir,
                formats=self._formats,
                clock=self._clock,
            )
        except OSError as exc:
            # A full disk must not stop detection; everything the report needs stays in the
            # event log, so it is written again later (and by ``gatewarden report``).
            _, delay = self._retry.get(incident_id, (0.0, _FIRST_RETRY_S / 2))
            delay = min(delay * 2, _MAX_RETRY_S)
            self._retry[incident_id] = (tick.now + delay, delay)
            log.error("cannot write report for %s (retry in %.0fs): %s", incident_id, delay, exc)
            return
        self._retry.pop(incident_id, None)
        tick.events.extend(event for _, event in written)
