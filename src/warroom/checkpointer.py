"""WAL checkpoints on a thread of their own, so that no commit of a busy writer does one.

In WAL mode SQLite copies the log back into the database (a checkpoint) in the commit that
takes the log past ``wal_autocheckpoint`` pages: that commit stalls for the copy and its fsync,
and every request waiting behind it with it. Under a flood of small commits (the server's
signed telegrams) that made the tail: p99 over 100 ms at 64 stations where p50 was 28 ms.

A :class:`Checkpointer` runs a PASSIVE checkpoint every ``interval_s`` on its own connection:
PASSIVE never waits for a lock and never blocks a writer or a reader (it copies what no reader
still needs), and the sqlite3 module releases the GIL while it runs.
:func:`checkpoint_in_background` starts one for a store and turns its connection's own
checkpoints down: its commits checkpoint only past :data:`FALLBACK_PAGES` of log, a bound on
the WAL should the checkpointer fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warroom.store import Store

log = logging.getLogger("warroom.store")

FALLBACK_PAGES = 262_144  # 1 GiB of 4 KiB pages: commits checkpoint themselves only past this


class Checkpointer:
    """Checkpoints the WAL of the store at ``path`` every ``interval_s`` seconds (a daemon
    thread, from :meth:`start` until :meth:`stop`, which runs a last one)."""

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self.runs = 0  # checkpoints run (for tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Checkpointer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="warroom-checkpoint")
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                stopping = self._stop.wait(self.interval_s)
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.runs += 1
                except sqlite3.Error as e:  # the next one tries again; commits are the backstop
                    log.warning("WAL checkpoint of %s failed: %s", self.path, e)
                if stopping:
                    return
        finally:
            conn.close()


def checkpoint_in_background(store: Store, interval_s: float = 1.0) -> Checkpointer:
    """Leave ``store``'s WAL checkpoints to a started :class:`Checkpointer` (stop it before
    closing the store): commits on the store's connection checkpoint only past
    :data:`FALLBACK_PAGES` of log, instead of every 64 MiB."""
    store.conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
    return Checkpointer(store.path, interval_s).start()
