"""Follow a growing file across rotation and truncation without losing lines (``tail -F`` that
remembers where it was).

* **Rename rotation** (logrotate's default, or a writer that reopens its log): the open handle
  keeps reading the renamed file, so lines appended after our last read and before the rename
  are still read. Once the path names another file, the old handle is drained to EOF and kept
  for one more read (the writer may not have reopened yet), then closed; its unterminated last
  line is emitted then, since nothing can complete it any more.
* **Truncation / copytruncate**: the path's file is shorter than our position, or its first
  bytes changed (truncated and written past our position between two reads). Lines written
  after our last read and before the copy are in the copy (``<name>.1``, ``<name>-20240101``):
  they are read from there, then the truncated file is read from byte 0.
* **Restart**: :meth:`FileFollower.positions` gives each open file's inode, the offset after its
  last complete line and a digest of its first bytes; :meth:`FileFollower.restore` finds each
  file again (at the path or as a rotated sibling, by inode and confirmed by the digest, since
  inode numbers are reused) and resumes there.

Only complete lines are returned; an unterminated last line waits for its newline. Limits:
two rotations between reads lose the middle file; a rotated file is found again only in the
same directory, under a name that starts with the log's name, uncompressed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

#: How many leading bytes identify a file's content (they hold the first records' timestamps
#: and ids, so two different logs practically never share them).
HEAD = 256

#: Per file and read: a restart behind a large backlog catches up over several reads.
MAX_READ = 64 << 20

_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")

PathState = Literal["same", "rotated", "truncated", "missing"]


class Position(BaseModel):
    """Where reading of one file resumes after a restart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ino: int = Field(ge=0)
    offset: int = Field(ge=0, description="end of the last complete line read")
    head_len: int = Field(ge=0, le=HEAD)
    head_sum: str = ""
    retiring: bool = Field(default=False, description="rotated away, being drained")


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class _Open:
    """One open file: the bytes read up to ``offset`` ended in a newline; ``partial`` follows."""

    def __init__(self, handle: BinaryIO, *, offset: int = 0, head: bytes = b"") -> None:
        stat = os.fstat(handle.fileno())
        self.handle = handle
        self.dev, self.ino = stat.st_dev, stat.st_ino
        self.offset = offset
        self.partial = b""
        self.head = head
        handle.seek(offset)

    @property
    def read_to(self) -> int:
        return self.offset + len(self.partial)

    def read(self, limit: int) -> tuple[list[bytes], int]:
        """Complete lines read (without newlines) and how many bytes were read."""
        chunk = self.handle.read(limit)
        if self.read_to < HEAD:
            self.head += chunk[: HEAD - self.read_to]
        data = self.partial + chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()
        self.offset += len(data) - len(self.partial)
        return lines, len(chunk)

    def finish(self) -> list[bytes]:
        """Close; the unterminated tail is a last line (nothing will complete it)."""
        self.handle.close()
        tail, self.partial = self.partial, b""
        return [tail] if tail.strip() else []

    def position(self, *, retiring: bool) -> Position:
        head = self.head[: self.offset]
        return Position(
            ino=self.ino,
            offset=self.offset,
            head_len=len(head),
            head_sum=_digest(head),
            retiring=retiring,
        )


class FileFollower:
    def __init__(self, path: str | Path, *, max_read: int = MAX_READ) -> None:
        self.path = Path(path)
        self.max_read = max_read
        self.rotations = 0
        self.truncations = 0
        self.recovered_lines = 0
        self.lost_positions = 0
        self._current: _Open | None = None
        self._retiring: list[_Open] = []
        self._out: list[bytes] = []

    def read_lines(self) -> list[bytes]:
        """Every complete line written since the last call, oldest file first.

        Raises OSError when the log cannot be read (permissions, a directory, ...); lines
        already read in that call are kept for the next one.
        """
        for old in list(self._retiring):
            if self._drain(old) == 0:
                # A whole read interval without a byte: the writer has moved to the new file.
                self._out.extend(old.finish())
                self._retiring.remove(old)
        if self._current is None:
            self._current = self._open_path()
        if self._current is not None:
            self._follow(self._current)
        out, self._out = self._out, []
        return out

    def _follow(self, current: _Open) -> None:
        state = self._path_state(current)
        if state == "truncated":
            self.truncations += 1
            log.info("%s was truncated at byte %d (copytruncate?)", self.path, current.read_to)
            self._out.extend(self._from_copy(current.position(retiring=False), current.ino))
            current.offset, current.partial, current.head = 0, b"", b""
            current.handle.seek(0)
        self._drain(current)
        if state == "rotated":
            self.rotations += 1
            log.info("%s was rotated; draining the old file", self.path)
            self._retiring.append(current)
            self._current = self._open_path()
            if self._current is not None:
                self._drain(self._current)

    def _drain(self, file: _Open) -> int:
        lines, size = file.read(self.max_read)
        self._out.extend(lines)
        return size

    def _open_path(self, offset: int = 0) -> _Open | None:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return None  # not there yet, or mid-rotation: try again next read
        return _Open(handle, offset=offset)

    def _path_state(self, current: _Open) -> PathState:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return "missing"  # renamed and not yet recreated: keep reading the old file
        if (stat.st_dev, stat.st_ino) != (current.dev, current.ino):
            return "rotated"
        if stat.st_size < current.read_to:
            return "truncated"
        if current.head and os.pread(current.handle.fileno(), len(current.head), 0) != current.head:
            return "truncated"  # truncated, then written past our position before this read
        return "same"

    # -- the position across restarts -----------------------------------------------------

    def positions(self) -> list[Position]:
        files = [f.position(retiring=True) for f in self._retiring]
        if self._current is not None:
            files.append(self._current.position(retiring=False))
        return files

    def restore(self, positions: list[Position]) -> None:
        """Resume at ``positions`` (from :meth:`positions` before a restart)."""
        self.close()
        for position in positions:
            found = self._find(position)
            if found is None:
                copied = self._from_copy(position, position.ino)
                if position.offset and not copied:
                    self.lost_positions += 1
                    log.warning(
                        "%s: the file read up to byte %d (inode %d) is gone; lines written to "
                        "it after that were not read",
                        self.path,
                        position.offset,
                        position.ino,
                    )
                self._out.extend(copied)
                continue
            where, handle = found
            head = os.pread(handle.fileno(), position.head_len, 0)
            opened = _Open(handle, offset=position.offset, head=head)
            if where == self.path and self._current is None:
                self._current = opened
            else:
                self._retiring.append(opened)  # rotated while we were down

    def _find(self, position: Position) -> tuple[Path, BinaryIO] | None:
        """The file of ``position`` if it still holds what we read of it."""
        for candidate in self._candidates():
            try:
                if os.stat(candidate).st_ino != position.ino:
                    continue
                handle = candidate.open("rb")
            except FileNotFoundError:
                continue
            if _holds(handle, position):
                return candidate, handle
            handle.close()  # the inode was reused, or the file truncated: not ours any more
        return None

    def _from_copy(self, position: Position, ino: int) -> list[bytes]:
        """Lines past ``position`` from a copy of its file (copytruncate leaves one), if any.

        A copy is another file whose first bytes are the ones we read; without any bytes read
        there is nothing to recognise a copy by, and nothing is taken."""
        if position.head_len == 0:
            return []
        copies: list[tuple[float, Path]] = []
        for candidate in self._candidates():
            try:
                stat = os.stat(candidate)
                if stat.st_ino == ino:
                    continue
                with candidate.open("rb") as handle:
                    if _holds(handle, position):
                        copies.append((stat.st_mtime, candidate))
            except FileNotFoundError:
                continue
        if not copies:
            return []
        newest = max(copies)[1]
        with newest.open("rb") as handle:
            handle.seek(position.offset)
            lines = [line for line in handle.read(self.max_read).split(b"\n") if line.strip()]
        self.recovered_lines += len(lines)
        log.info("%s: read %d line(s) from the copy %s", self.path, len(lines), newest.name)
        return lines

    def _candidates(self) -> list[Path]:
        """The log itself, then its rotated siblings (``name.1``, ``name-20240101``, ...)."""
        try:
            siblings = sorted(
                p
                for p in self.path.parent.iterdir()
                if p.name.startswith(self.path.name)
                and p.name != self.path.name
                and not p.name.endswith(_COMPRESSED)
                and p.is_file()
            )
        except FileNotFoundError:
            siblings = []
        return [self.path, *siblings]

    def close(self) -> None:
        for file in [*self._retiring, *([self._current] if self._current else [])]:
            file.handle.close()
        self._retiring, self._current = [], None


def _holds(handle: BinaryIO, position: Position) -> bool:
    """Whether the open file still has the bytes ``position`` was read from."""
    if os.fstat(handle.fileno()).st_size < position.offset:
        return False
    head = os.pread(handle.fileno(), position.head_len, 0)
    return len(head) == position.head_len and _digest(head) == position.head_sum
