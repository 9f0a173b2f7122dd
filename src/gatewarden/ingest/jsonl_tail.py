"""Tail a JSON Lines request log as it grows; safe across rotation (rename + new file),
copytruncate and restarts (see :mod:`gatewarden.ingest.file_follow`).

Only complete lines are read; records at or after ``until`` wait for a later pull. The
checkpoint (stored by the pipeline after each completed tick) holds each open file's position
and the records still waiting, so a restart neither re-reads the log from byte 0 nor loses
the waiting records.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from gatewarden.errors import SourceError
from gatewarden.ingest.file_follow import MAX_READ, FileFollower, Position
from gatewarden.ingest.health import Figure
from gatewarden.ingest.request_log import empty_frame, parse_lines, to_jsonl
from gatewarden.protocols import Batch

log = logging.getLogger(__name__)


class TailCheckpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = 1
    files: list[Position]
    #: records read but not yet due (``ts >= until``), as JSON Lines
    held: str = ""


class JsonlTailSource:
    def __init__(self, path: str | Path, *, name: str = "jsonl", max_read: int = MAX_READ) -> None:
        self.name = name
        self.path = Path(path)
        self.follower = FileFollower(self.path, max_read=max_read)
        self._held = empty_frame()

    def pull(self, until: float) -> Batch:
        try:
            lines = self.follower.read_lines()
        except OSError as exc:
            # Permissions, a directory at the path, an I/O error: the log cannot be read now.
            raise SourceError(f"{self.name}: cannot read {self.path}: {exc}") from exc
        batch = parse_lines(lines, origin=str(self.path))
        # Empty frames stay out of concat (pandas warns that they will change its dtypes).
        parts = [f for f in (self._held, batch.records) if not f.empty]
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else batch.records
        if len(parts) == 1:
            frame = parts[0]
        due = frame["ts"] < until
        self._held = frame.loc[~due].reset_index(drop=True)
        batch.records = frame.loc[due].reset_index(drop=True)
        return batch

    def checkpoint(self) -> str:
        """Where the next pull starts: each open file's position, and the waiting records."""
        held = to_jsonl(self._held) if not self._held.empty else ""
        return TailCheckpoint(files=self.follower.positions(), held=held).model_dump_json()

    def restore(self, checkpoint: str) -> None:
        try:
            saved = TailCheckpoint.model_validate_json(checkpoint)
        except ValidationError as exc:
            # A damaged or foreign state row must not stop the daemon: read as on a first start.
            log.warning("%s: ignoring unreadable checkpoint: %s", self.name, str(exc)[:200])
            return
        self.follower.restore(saved.files)
        self._held = parse_lines(saved.held.splitlines(), origin=f"{self.name} checkpoint").records

    def health_details(self, now: float) -> dict[str, Figure]:
        follower = self.follower
        return {
            "rotations": follower.rotations,
            "truncations": follower.truncations,
            "recovered_lines": follower.recovered_lines,
            "lost_positions": follower.lost_positions,
            "held_records": len(self._held),
            "open_files": len(follower.positions()),
        }

    def close(self) -> None:
        self.follower.close()
