"""Tail a JSON Lines request log as it grows; safe across rotation (rename + new file) and
truncation. Only complete lines are read; records at or after ``until`` wait for a later pull."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from gatewarden.ingest.request_log import parse_lines
from gatewarden.protocols import Batch


class JsonlTailSource:
    def __init__(self, path: str | Path, *, name: str = "jsonl") -> None:
        self.name = name
        self.path = Path(path)
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""
        self._held = pd.DataFrame()

    def _read_new(self) -> list[bytes]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return []  # not there yet, or mid-rotation: try again next tick
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            # Rotated or truncated: start the new file from its beginning.
            self._inode, self._offset, self._partial = stat.st_ino, 0, b""
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unterminated last line is completed by a later write
        return lines

    def pull(self, until: float) -> Batch:
        batch = parse_lines(self._read_new(), origin=str(self.path))
        frame = batch.records if self._held.empty else pd.concat([self._held, batch.records])
        due = frame["ts"] < until
        self._held = frame.loc[~due]
        batch.records = frame.loc[due].reset_index(drop=True)
        return batch
