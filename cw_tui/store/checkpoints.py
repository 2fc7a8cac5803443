"""SQLite's WAL checkpoints, off the path of a commit.

By default the connection whose commit takes the write-ahead log past 1,000 pages copies the
log into the database file before its commit returns: a bulk change of 50,000 lines (18 MB of
log) waited ~105 ms for that copy, after a commit of ~5 ms. Our connections turn that off
(`wal_autocheckpoint = 0`, sqlite.py) and this thread, with a connection of its own, does the
copy a moment after any commit. A checkpoint only moves committed pages from the log to the
file, so what is committed, and how safe it is, does not change; a process killed before the
copy leaves the log, which the next open reads as before.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class Checkpoints:
    """A thread that copies the WAL into the database file after commits (PASSIVE: it never
    waits for, nor blocks, a reader or a writer). A copy that readers still need is finished at
    a later look."""

    INTERVAL = 0.25  # seconds between looks: how long a commit's pages stay in the log alone
    FIRST_LOOK = 1.0  # the first, once the app's first screen is drawn (a start takes ~0.45 s)

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cw-tui WAL checkpoints", daemon=True)
        self.last: tuple[int, int, int] | None = None  # (busy, pages in the log, pages copied) of the last copy

    def start(self) -> Checkpoints:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the thread, after one last copy (a process that exits leaves the file whole)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return  # the store's own connection reports what is wrong with the file
        try:
            seen, wait = None, self.FIRST_LOOK
            while True:
                stopping, wait = self._stop.wait(wait), self.INTERVAL
                try:
                    # data_version changes when another connection commits: nothing new, nothing to copy
                    version = connection.execute("PRAGMA data_version").fetchone()[0]
                    if version != seen or stopping:
                        self.last = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        busy, log, copied = self.last
                        if not busy and copied >= log:
                            seen = version
                except sqlite3.Error:
                    pass  # the file is busy or gone: the next look tries again, the store reports the rest
                if stopping:
                    return
        finally:
            connection.close()
