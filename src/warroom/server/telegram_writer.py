"""Group commit for signed telegrams: one thread lands them, many to a transaction.

Each ``POST /reports`` of a telegram hands its body to :meth:`TelegramWriter.submit` and waits
for the answer. The writer thread takes whatever telegrams are waiting (up to ``max_batch``),
and those still being checked that arrived with them (waiting up to ``gather_s``, 2 ms), opens
one transaction, and inside it accepts the telegrams (:func:`warroom.telegram.accept_many`:
those of distinct sources with valid reports land jointly, the others each in its own savepoint
with :func:`warroom.telegram.accept`: verify, land its reports, advance the source's ``seq``;
or roll that telegram back and quarantine it); then it commits once and only then answers every
request of the batch. So:

- an acknowledged report is in the store (committed) before its answer, as before;
- a refused telegram is refused exactly as alone (same checks, same order, same quarantine);
  a telegram the store fails on is rolled back to its savepoint and answered with the error,
  the others of the batch land;
- under load, the fixed cost of a transaction (``BEGIN``, ``COMMIT``, the WAL write) is shared
  by all telegrams that arrived meanwhile, and no request waits for a thread of the pool;
- if the commit itself fails, no telegram of the batch is acknowledged (each request gets the
  error), and none is stored.

A station sends its telegrams one after another (``seq`` must increase), so the order within a
batch is the order of arrival, which is all ``seq`` needs.

Signatures are checked ahead, on the way in: a second thread takes each telegram first, parses
it and checks its signature against the key last read for its source
(:func:`warroom.telegram.precheck`; Ed25519 verification releases the GIL), then hands it on in
arrival order. While the writer lands one batch, the next one's signatures are checked beside
it. The writer still makes every check against the key store inside its transaction; it only
skips the signature arithmetic when the stored key is the one the signature verified under.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from warroom.ingest.pipeline import IngestResult
from warroom.ingest.validate import Validator
from warroom.keystore import KeyStore
from warroom.store import Store
from warroom.telegram import _Enlisted, accept_many, precheck

_STOP = object()
Sink = Callable[[list[tuple[Any, "IngestResult | BaseException"]]], None]


@dataclass(frozen=True)
class _ToSink:
    """Where a telegram's outcome goes (:meth:`TelegramWriter.submit_to`)."""

    sink: Sink
    key: Any


class TelegramWriter:
    """Lands telegrams on ``store`` (under ``lock``, the app's store lock) in batches."""

    def __init__(self, store: Store, validator: Validator, keys: KeyStore, lock: Any,
                 max_batch: int = 256, gather_s: float = 0.002) -> None:
        self.store = store
        self.validator = validator
        self.keys = keys
        self.lock = lock
        self.max_batch = max_batch
        self.gather_s = gather_s  # longest a batch waits for telegrams still being checked
        self.batches = 0   # transactions committed (for tests and benchmarks)
        self.landed = 0    # telegrams answered
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()   # as received
        self._wq: queue.SimpleQueue[Any] = queue.SimpleQueue()  # prechecked, to land
        self._thread: threading.Thread | None = None
        self._checker: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, body: bytes, now: int) -> Future[IngestResult]:
        """Queue a telegram received at ``now`` (epoch s); the future gives its ingest counts
        once committed, or raises :class:`TelegramError` (refused) or the store's error."""
        fut: Future[IngestResult] = Future()
        self._ensure_started()
        self._q.put((body, now, fut))
        return fut

    async def land(self, body: bytes, now: int) -> IngestResult:
        """:meth:`submit` for a coroutine: the answers of one batch reach the event loop in
        one wake-up (a concurrent future wakes the loop once per telegram)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[IngestResult] = loop.create_future()
        self._ensure_started()
        self._q.put((body, now, (loop, fut)))
        return await fut

    def submit_to(self, body: bytes, now: int, sink: Sink, key: Any) -> None:
        """Queue a telegram whose outcome goes to ``sink``: it is called, from the writer's
        thread, once per batch with the ``(key, outcome)`` pairs of that batch's telegrams it
        takes (an outcome is the :class:`IngestResult`, or the exception :meth:`submit`'s
        future would raise)."""
        self._ensure_started()
        self._q.put((body, now, _ToSink(sink, key)))

    def close(self, timeout: float = 10.0) -> None:
        """Answer what is queued, then stop the threads."""
        if self._thread is not None:
            self._q.put(_STOP)  # passes the checker, then stops the writer
            self._thread.join(timeout)
            if self._checker is not None:
                self._checker.join(timeout)
            self._thread = self._checker = None

    # -- the threads -----------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._checker = threading.Thread(target=self._check, daemon=True,
                                                     name="warroom-telegram-signatures")
                    self._checker.start()
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="warroom-telegrams")
                    self._thread.start()

    def _check(self) -> None:
        """Signatures ahead, in arrival order (a failed check is left to the writer)."""
        hint = self.keys.seen.get
        while True:
            item = self._q.get()
            if item is _STOP:
                self._wq.put(_STOP)
                return
            body, now, fut = item
            try:
                checked = precheck(body, hint)
            except Exception:  # never lose a telegram to the shortcut: the writer decides
                checked = None
            # (and whether more are queued behind it: the writer may wait for them)
            self._wq.put((body, now, fut, checked, not self._q.empty()))

    def _run(self) -> None:
        """Land batches: every telegram checked so far, and those still being checked that
        were queued behind them (for up to ``gather_s``): a transaction's fixed cost (its
        ``COMMIT`` writes the WAL: ~0.14 ms here) then falls on many telegrams, not on each
        one as the checker hands it over, and the cores go to checking instead. (1, 2, 3, 5
        and 10 ms were tried under 64 stations: rates within the host's noise, the shorter
        ones a little ahead; the wait adds at most that to a telegram's latency.)"""
        stop = False
        while not stop:
            item = self._wq.get()
            if item is _STOP:
                return
            batch = [item]
            until = time.monotonic() + self.gather_s
            while len(batch) < self.max_batch:
                try:
                    if batch[-1][4]:  # more were queued behind the last: they come next
                        wait = until - time.monotonic()
                        nxt = self._wq.get(timeout=wait) if wait > 0 else self._wq.get_nowait()
                    else:
                        nxt = self._wq.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._land(batch)

    def _land(self, batch: list[tuple[bytes, int, Any, Any, bool]]) -> None:
        outcomes: list[IngestResult | BaseException]
        try:
            with self.lock, self.store.transaction():
                # each accept() becomes a savepoint; telegrams that can land together do
                outcomes = list(accept_many(_Enlisted(self.store), self.validator,
                                            [(body, now) for body, now, *_ in batch],
                                            self.keys,
                                            checked=[c for _, _, _, c, _ in batch]))
        except BaseException as e:  # the commit failed: nothing of the batch is stored
            outcomes = [e] * len(batch)
        else:
            self.batches += 1
            self.landed += len(outcomes)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        by_sink: dict[Sink, list[tuple[Any, Any]]] = {}
        for (_, _, fut, _, _), res in zip(batch, outcomes, strict=True):
            if isinstance(fut, Future):
                _settle([(fut, res)])
            elif isinstance(fut, _ToSink):
                by_sink.setdefault(fut.sink, []).append((fut.key, res))
            else:
                by_loop.setdefault(fut[0], []).append((fut[1], res))
        for sink, pairs in by_sink.items():
            sink(pairs)
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, pairs)
            except RuntimeError:  # that loop is closed: nobody waits for these answers
                pass


def _settle(pairs: list[tuple[Any, IngestResult | BaseException]]) -> None:
    """Answer each waiting future (concurrent, or asyncio on its own loop) with its outcome."""
    for fut, res in pairs:
        if fut.done():  # an asyncio waiter that was cancelled (its client went away)
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)
