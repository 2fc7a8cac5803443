"""The sandbox's `--state FILE`: an append-only journal, so that a write is on disk before its
response is sent.

The file's first line is a full snapshot of the state (the format `--state` always had: one
line of JSON); each further line is one change (`{"put": table, "row": {...}}` or
`{"delete": table, "id": n}`, with `next_ids`). A write appends its lines and fsyncs them
before the sandbox answers; writes that arrive together share one fsync (group commit), so
concurrent requests are not serialised behind the disk. A torn last line (the process was
killed while writing it) was never acknowledged and is ignored on load. On start and on a
clean shutdown the file is compacted: a new snapshot is written to a temporary file, fsynced
and moved over the old one (os.replace), then the directory is fsynced.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from cw_tui.sandbox.data import SandboxState

Entry = dict[str, Any]


def _line(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def apply(state: SandboxState, entry: Entry) -> None:
    if "put" in entry:
        getattr(state, entry["put"])[entry["row"]["id"]] = entry["row"]
    elif "delete" in entry:
        getattr(state, entry["delete"]).pop(entry["id"], None)
    if "next_ids" in entry:
        state.next_ids.update(entry["next_ids"])


def load(path: Path) -> SandboxState | None:
    """The state the file holds (snapshot plus every complete change after it), or None for
    an empty or missing file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    lines = raw.split(b"\n")
    if not lines or not lines[0].strip():
        return None
    state = SandboxState.from_json(json.loads(lines[0]))
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            if number >= len(lines) - 1:  # the torn last line of a killed process: never acknowledged
                break
            raise ValueError(f"{path}: line {number} is not a journal entry") from None
        apply(state, entry)
    return state


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_snapshot(path: Path, state: SandboxState) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(_line(state.to_json()))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Journal:
    def __init__(self, path: Path, state: SandboxState):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_snapshot(path, state)  # compacted on start
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the sandbox's life
        self._pending: list[tuple[bytes, asyncio.Future]] = []
        self._flushing = False
        self.fsyncs = 0  # how many fsyncs the writes shared, for tests
        self.entries = 0

    async def commit(self, entries: list[Entry]) -> None:
        """Append these changes and return once they are on disk. Called right after the
        change is applied in memory, with no await in between, so the journal's order is the
        order in which changes were applied."""
        if not entries:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        self._pending.append((b"".join(_line(e) for e in entries), done))
        self.entries += len(entries)
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self._write, b"".join(data for data, _ in batch))
                except OSError as error:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    continue
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._flushing = False

    def _write(self, blob: bytes) -> None:
        self._file.write(blob)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.fsyncs += 1

    def close(self, state: SandboxState) -> None:
        """A clean shutdown: compact the journal into one snapshot."""
        if self._file.closed:
            return
        self._file.close()
        write_snapshot(self.path, state)
