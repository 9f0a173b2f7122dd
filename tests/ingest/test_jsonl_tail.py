"""The JSONL tail against real files: rename rotation, copytruncate, restarts and partial lines.

Writers are real append-mode file handles, as a gateway's logger holds them: after a rename they
keep writing to the old file until they reopen; under copytruncate they never reopen.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from gatewarden.clock import VirtualClock
from gatewarden.ingest import JsonlTailSource
from gatewarden.pipeline import Pipeline
from gatewarden.protocols import Batch
from gatewarden.store import SQLiteStore
from tests.ingest.lines import record_line

rec = record_line


def write(handle: TextIO, *ids: str, ts: float = 10.0) -> None:
    handle.write("".join(rec(i, ts) + "\n" for i in ids))
    handle.flush()


def ids(batch: Batch) -> list[str]:
    return [str(i) for i in batch.records["request_id"]]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "requests.jsonl"


@pytest.fixture
def writer(log: Path) -> Iterator[TextIO]:
    handle = log.open("a")
    yield handle
    handle.close()


def test_lines_appended_just_before_a_rename_are_read_from_the_old_file(
    log: Path, writer: TextIO
) -> None:
    source = JsonlTailSource(log)
    write(writer, "a")
    assert ids(source.pull(100)) == ["a"]
    write(writer, "b")  # after our last pull ...
    os.rename(log, log.with_name("requests.jsonl.1"))  # ... and before the rotation
    write(writer, "c")  # the writer has not reopened yet: still the old file
    with log.open("a") as reopened:  # then it reopens the path (a new file)
        write(reopened, "d")
    assert ids(source.pull(100)) == ["b", "c", "d"]
    assert source.health_details(100)["rotations"] == 1


def test_a_writer_that_reopens_late_loses_nothing_and_the_old_tail_is_flushed(
    log: Path, writer: TextIO
) -> None:
    source = JsonlTailSource(log)
    write(writer, "a")
    assert ids(source.pull(100)) == ["a"]
    os.rename(log, log.with_name("requests.jsonl.1"))
    log.touch()  # logrotate's ``create``: the new file exists before the writer reopens
    write(writer, "b")
    assert ids(source.pull(100)) == ["b"]  # rotation seen; the old file is still followed
    write(writer, "c")
    writer.write(rec("e")[:-1])  # the old file ends without a newline: nothing will finish it
    writer.flush()
    with log.open("a") as reopened:
        write(reopened, "d")
    assert ids(source.pull(100)) == ["c", "d"]
    # A read interval with nothing new on the old file: it is retired, its tail emitted once.
    batch = source.pull(100)
    assert (ids(batch), batch.malformed) == ([], 1)  # the cut line is counted, not lost silently
    assert source.health_details(100)["open_files"] == 1
    assert ids(source.pull(100)) == []


def test_copytruncate_reads_the_missed_lines_from_the_copy_then_the_new_start(
    log: Path, writer: TextIO
) -> None:
    source = JsonlTailSource(log)
    write(writer, "a")
    assert ids(source.pull(100)) == ["a"]
    write(writer, "b")  # after our last pull, before logrotate copies the file
    shutil.copyfile(log, log.with_name("requests.jsonl.1"))
    os.truncate(log, 0)
    # O_APPEND: the writer keeps going at the new end. Two lines put the file past our old
    # position, so only its first bytes can tell it was truncated.
    write(writer, "c", "d")
    assert ids(source.pull(100)) == ["b", "c", "d"]
    assert source.health_details(100)["truncations"] == 1
    write(writer, "e")
    assert ids(source.pull(100)) == ["e"]


def test_a_plain_truncation_restarts_at_the_beginning(log: Path, writer: TextIO) -> None:
    source = JsonlTailSource(log)
    write(writer, "a", "b")
    assert ids(source.pull(100)) == ["a", "b"]
    os.truncate(log, 0)
    write(writer, "c")  # shorter than what was read: no copy to recover from
    assert ids(source.pull(100)) == ["c"]


def test_a_partial_last_line_waits_for_its_newline(log: Path, writer: TextIO) -> None:
    source = JsonlTailSource(log)
    line = rec("a")
    writer.write(line[:20])
    writer.flush()
    batch = source.pull(100)
    assert (ids(batch), batch.malformed) == ([], 0)
    writer.write(line[20:])
    writer.flush()
    assert ids(source.pull(100)) == []  # complete JSON, but no newline yet: the writer may add
    writer.write("\n")
    writer.flush()
    assert ids(source.pull(100)) == ["a"]


def pipeline(log: Path, store: SQLiteStore, clock: VirtualClock) -> Pipeline:
    return Pipeline(
        [JsonlTailSource(log, name="log")], [], clock, tick_seconds=15, checkpoints=store
    )


def test_a_restart_resumes_at_the_checkpoint_without_duplicates(log: Path, writer: TextIO) -> None:
    store = SQLiteStore(":memory:")
    clock = VirtualClock(100.0)
    write(writer, "a", "b")
    write(writer, "later", ts=190.0)  # not due at 115: waits for a later tick
    writer.write(rec("c")[:25])  # the writer is mid-line when we stop
    writer.flush()
    first = pipeline(log, store, clock)
    assert ids(first.tick(115.0)) == ["a", "b"]
    # The daemon restarts: the new pipeline restores the source from the store.
    writer.write(rec("c")[25:] + "\n")
    write(writer, "d")
    second = pipeline(log, store, clock)
    assert ids(second.tick(130.0)) == ["c", "d"]  # a and b are not read again, c is whole
    assert ids(second.tick(200.0)) == ["later"]  # the waiting record survived the restart
    third = pipeline(log, store, clock)
    assert ids(third.tick(215.0)) == []


def test_a_rotation_while_the_daemon_is_down_loses_nothing(log: Path, writer: TextIO) -> None:
    store = SQLiteStore(":memory:")
    clock = VirtualClock(100.0)
    write(writer, "a")
    assert ids(pipeline(log, store, clock).tick(115.0)) == ["a"]
    write(writer, "b")
    os.rename(log, log.with_name("requests.jsonl.1"))
    with log.open("a") as reopened:
        write(reopened, "c")
    assert ids(pipeline(log, store, clock).tick(130.0)) == ["b", "c"]


def test_a_copytruncate_while_the_daemon_is_down_loses_nothing(log: Path, writer: TextIO) -> None:
    store = SQLiteStore(":memory:")
    clock = VirtualClock(100.0)
    write(writer, "a")
    assert ids(pipeline(log, store, clock).tick(115.0)) == ["a"]
    write(writer, "b")
    shutil.copyfile(log, log.with_name("requests.jsonl.1"))
    os.truncate(log, 0)
    write(writer, "c")
    assert ids(pipeline(log, store, clock).tick(130.0)) == ["b", "c"]


def test_a_damaged_checkpoint_is_ignored_not_fatal(log: Path, writer: TextIO) -> None:
    store = SQLiteStore(":memory:")
    store.put_state("source.log.checkpoint", "{not json")
    write(writer, "a")
    assert ids(pipeline(log, store, VirtualClock(100.0)).tick(115.0)) == ["a"]
