"""Signed telegrams landed in a worker process of their own.

A telegram costs the server more than its HTTP request does: parsing and canonical JSON, the
Ed25519 check, validation and a share of a SQLite transaction. In the server's own process
that work and the event loop take turns on one interpreter lock, and at a few thousand
telegrams a second the lock, not the cores, sets the pace. So a file store's telegrams land in
one worker process (:class:`Landing`), which opens the same SQLite file and the same scenario
and runs there the group commit of :class:`~warroom.server.telegram_writer.TelegramWriter`
(signatures checked ahead on one thread, batches landed on another, each batch committed
before its telegrams are answered). The server hands each telegram's bytes over a pipe and
awaits its outcome, so:

- an acknowledged report is in the store (committed by the worker) before its answer;
- a refused telegram gets the same status and reason as in-process (the worker quarantines it);
- the server's other writes (other formats, CoT, alerts, briefings) and the worker's are
  serialised by SQLite's own lock (WAL; a writer waits for the other, up to the busy timeout);
- if the worker dies, the telegrams it had not answered are answered with an error (they may
  or may not have been stored; a station resending one gets "replayed" if it was), and the
  next telegram starts a new worker;
- the worker ends when the server closes it (after answering what it was given), when its
  pipe closes, or when the server process is gone.

A store in memory cannot be opened by another process: the server then lands telegrams on its
own threads (:class:`TelegramWriter` directly), as it always could.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from warroom.ingest.pipeline import IngestResult
from warroom.telegram import TelegramError

_STOP = None  # the message that ends the worker (after it answers what it was given)


class LandingError(RuntimeError):
    """The telegram worker failed on a telegram, or stopped before answering it."""


# -- outcomes over the pipe: plain data ----------------------------------------------------------
def _encode(res: IngestResult | BaseException) -> tuple[Any, ...]:
    if isinstance(res, IngestResult):
        return ("ok", res)
    if isinstance(res, TelegramError):
        return ("refused", res.status, res.reason)
    return ("error", f"{type(res).__name__}: {res}")


def _decode(out: tuple[Any, ...]) -> IngestResult | BaseException:
    if out[0] == "ok":
        return out[1]  # type: ignore[no-any-return]
    if out[0] == "refused":
        return TelegramError(out[1], out[2])
    return LandingError(out[1])


# -- the worker ---------------------------------------------------------------------------------
def _worker(conn: Connection, db: str, scenario_path: str, server_pid: int) -> None:
    """The worker's main: land the telegrams that come over ``conn`` until told to stop."""
    # Ctrl-C reaches the whole process group: the server decides when the worker stops, so
    # that what it was given is answered first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == server_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="warroom-landing-watch").start()

    from warroom import scenario as scenario_mod
    from warroom.checkpointer import checkpoint_in_background
    from warroom.ingest.validate import Validator
    from warroom.keystore import KeyStore
    from warroom.server.telegram_writer import TelegramWriter
    from warroom.store import Store

    store = Store(db)
    # a flood of small commits: none of them stalls for a checkpoint (a thread does those)
    checkpointer = checkpoint_in_background(store)
    writer = TelegramWriter(store, Validator(scenario_mod.load(scenario_path)), KeyStore(store),
                            threading.RLock())
    send_lock = threading.Lock()

    def reply(pairs: list[tuple[Any, IngestResult | BaseException]]) -> None:
        data = pickle.dumps([(k, _encode(r)) for k, r in pairs])
        with send_lock, contextlib.suppress(OSError):
            conn.send_bytes(data)

    try:
        while True:
            try:
                items = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):  # the server is gone
                break
            if items is _STOP:
                break
            for key, body, now in items:
                writer.submit_to(body, now, reply, key)
    finally:
        writer.close()  # answers what is queued
        checkpointer.stop()
        store.close()
        with send_lock, contextlib.suppress(OSError):
            conn.send_bytes(pickle.dumps(_STOP))


# -- the server's side --------------------------------------------------------------------------
class Landing:
    """Lands signed telegrams in a worker process (started on first use, ``spawn``: safe
    beside the server's threads). ``db`` must be a file. :meth:`land` is called on the event
    loop; the rest from any thread."""

    def __init__(self, db: str, scenario_path: str) -> None:
        self.db = db
        self.scenario_path = scenario_path
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # request key -> (its loop, its future, the worker generation it was sent to)
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], int]] = {}
        self._next = 0
        self._gen = 0
        self._closed = False

    def start(self) -> None:
        """Start the worker now (it loads the scenario while the server starts)."""
        self._ensure_started()

    async def land(self, body: bytes, now: int) -> IngestResult:
        """Land the telegram ``body`` received at ``now`` (epoch s): its ingest counts once
        committed; raises :class:`TelegramError` (refused) or :class:`LandingError`."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[IngestResult] = loop.create_future()
        with self._lock:
            if self._closed:
                raise LandingError("the server is stopping")
            self._ensure_started_locked()
            key = self._next
            self._next += 1
            self._waiting[key] = (loop, fut, self._gen)
            self._outbox.put((key, body, now))
        return await fut

    def close(self, timeout: float = 10.0) -> None:
        """Let the worker answer what it was given, then stop it."""
        with self._lock:
            self._closed = True
            proc = self._proc
        if proc is None:
            return
        self._outbox.put(_STOP)
        proc.join(timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout)

    # -- internals ---------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        with self._lock:
            self._ensure_started_locked()

    def _ensure_started_locked(self) -> None:
        # A worker's reader clears ``_conn`` once the worker has gone (end of its pipe), and
        # fails what it had not answered; so no liveness check (a system call) per telegram.
        if self._conn is not None:
            return
        ctx = multiprocessing.get_context("spawn")
        mine, theirs = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_worker, args=(theirs, self.db, self.scenario_path,
                                                 os.getpid()),
                           daemon=True, name="warroom-landing")
        proc.start()
        theirs.close()
        self._proc, self._conn = proc, mine
        self._gen += 1
        outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # telegrams queued for a worker that died are failed by its reader; new ones go here
        self._outbox = outbox
        threading.Thread(target=self._send, args=(mine, outbox), daemon=True,
                         name="warroom-landing-send").start()
        threading.Thread(target=self._receive, args=(mine, self._gen), daemon=True,
                         name="warroom-landing-receive").start()

    def _send(self, conn: Connection, outbox: queue.SimpleQueue[Any]) -> None:
        """Hand queued telegrams to the worker, as many to a message as are waiting."""
        while True:
            item = outbox.get()
            items = [item]
            while item is not _STOP:
                try:
                    item = outbox.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
            stop = items[-1] is _STOP
            batch = [i for i in items if i is not _STOP]
            try:
                if batch:
                    conn.send_bytes(pickle.dumps(batch))
                if stop:
                    conn.send_bytes(pickle.dumps(_STOP))
            except OSError:  # the worker is gone: its reader fails what it had
                return
            if stop:
                return

    def _receive(self, conn: Connection, gen: int) -> None:
        """Answer each waiting request with its outcome, one loop wake-up per message."""
        try:
            while True:
                pairs = pickle.loads(conn.recv_bytes())
                if pairs is _STOP:
                    break
                self._answer([(k, _decode(out)) for k, out in pairs])
        except (EOFError, OSError):
            pass
        # the worker ended: whatever it had not answered will not be answered by it
        with self._lock:
            if self._conn is conn:
                self._proc = self._conn = None
            lost = [k for k, w in self._waiting.items() if w[2] == gen]
        self._answer([(k, LandingError("the telegram worker stopped before answering; the "
                                       "telegram may or may not be stored"))
                      for k in lost])
        conn.close()

    def _answer(self, pairs: list[tuple[int, IngestResult | BaseException]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        with self._lock:
            for key, res in pairs:
                waiter = self._waiting.pop(key, None)
                if waiter is not None:
                    by_loop.setdefault(waiter[0], []).append((waiter[1], res))
        for loop, futs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, futs)


def _settle(pairs: list[tuple[asyncio.Future[Any], IngestResult | BaseException]]) -> None:
    for fut, res in pairs:
        if fut.done():  # cancelled: the client went away
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)
