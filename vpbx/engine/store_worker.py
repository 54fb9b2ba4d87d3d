"""StoreWorker: every storage call the engine makes runs here, off the event loop.

Rule: the engine never touches the Store on its event loop. SQLite blocks the calling thread while it waits for the
write lock (a `vpbx number import` holds it for seconds) and while it reads; on the loop that would stall every live
call's DTMF, timers and dial results. Instead each connection lives in a thread of its own:

    reads   `await worker.read(fn)` runs fn(store) on one of the reader threads (each its own connection). The
            database is in WAL mode, so a reader never waits for a writer: a call arriving during an import gets its
            number and flow at once (as of the last commit).
    writes  `worker.write(fn, what)` queues fn(store) for the one writer thread and returns at once: the call's path
            never waits for a write (call record start/update, node notes, voicemail outbox). Writes run one at a
            time in submission order, so a call's record is inserted before it is updated; a write waiting for the
            lock delays only the writes queued after it. Each write is its own transaction, as the function makes
            it (no batching: a use case swallowing an error of its own must still roll back alone). A failing write
            is logged (with `what`) and dropped. `on_done(result)` runs on the loop after a successful write (e.g.
            wake the outbox sender); without it the loop is not woken at all.
    `await worker.call(fn)` runs fn on the writer thread and waits: for work that must see every write queued
            before it (the reconcile), or whose result the caller needs.
    `await worker.drain()` returns once every write queued so far is done; `await worker.aclose()` finishes the
            queued writes, then closes the connections.

Waiting for the lock is SQLite's busy timeout (Store.BUSY_TIMEOUT_S), on these threads: no retry loop, no sleeps.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vpbx.storage.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
Done = Callable[[Any, BaseException | None], None]
Job = tuple[Callable[[Store], Any], Done]
READERS = 2


class _StoreThread(threading.Thread):
    """One connection, one thread: runs the jobs of `jobs` until it takes None."""

    def __init__(self, name: str, open_store: Callable[[], Store], jobs: queue.SimpleQueue[Job | None]) -> None:
        super().__init__(name=name, daemon=True)
        self._open_store = open_store
        self._jobs = jobs
        self.opened = threading.Event()
        self.open_error: BaseException | None = None

    def run(self) -> None:
        try:
            store = self._open_store()
        except BaseException as exc:  # reported by StoreWorker.start()
            self.open_error = exc
            self.opened.set()
            return
        self.opened.set()
        try:
            while (job := self._jobs.get()) is not None:
                fn, done = job
                try:
                    result = fn(store)
                except BaseException as exc:  # handed to the submitter (an awaiting coroutine, or the log)
                    done(None, exc)
                else:
                    done(result, None)
        finally:
            store.close()


class StoreWorker:
    """The engine's storage, off the loop: reader threads and one writer thread, each with its own Store."""

    def __init__(self, open_store: Callable[[], Store], readers: int = READERS) -> None:
        self._open_store = open_store
        self._reads: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._writes: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._readers = [_StoreThread(f"vpbx-store-read-{i}", open_store, self._reads) for i in range(readers)]
        self._writer = _StoreThread("vpbx-store-write", open_store, self._writes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # each counter has one writer thread: queued on the loop, the other two on the writer thread
        self._queued = 0
        self._finished = 0
        self.failed_writes = 0

    @property
    def pending_writes(self) -> int:
        """Writes queued or running."""
        return self._queued - self._finished

    @classmethod
    def at(cls, path: Any, readers: int = READERS) -> StoreWorker:
        """A worker on the database file `path` (each thread opens it with Store.open)."""
        return cls(lambda: Store.open(path), readers)

    # ---- lifecycle -----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open every connection (one after the other: Store.open may migrate) before the first call arrives."""
        self._loop = asyncio.get_running_loop()
        for thread in (self._writer, *self._readers):
            thread.start()
            await asyncio.to_thread(thread.opened.wait)
            if thread.open_error is not None:
                await self.aclose()
                raise thread.open_error

    async def drain(self) -> None:
        """Return once every write queued before this call has run."""
        await self.call(lambda store: None)

    async def aclose(self) -> None:
        """Run the writes still queued, then close every connection."""
        if self._closed:
            return
        self._closed = True
        for _ in self._readers:
            self._reads.put(None)
        self._writes.put(None)
        threads = [t for t in (self._writer, *self._readers) if t.is_alive() or t.ident is not None]
        for thread in threads:
            await asyncio.to_thread(thread.join)
        if self.pending_writes:
            log.warning("store worker closed with %d write(s) not confirmed", self.pending_writes)

    # ---- jobs ----------------------------------------------------------------------------------------------------
    def _loop_or_raise(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._closed:
            raise RuntimeError("StoreWorker is not running (call start() first)")
        return self._loop

    def _awaitable(self, jobs: queue.SimpleQueue[Job | None], fn: Callable[[Store], T]) -> asyncio.Future[T]:
        loop = self._loop_or_raise()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: Any, exc: BaseException | None) -> None:
            if future.done():        # the awaiting coroutine was cancelled
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        def done(result: Any, exc: BaseException | None) -> None:
            _call_soon(loop, settle, result, exc)

        jobs.put((fn, done))
        return future

    async def read(self, fn: Callable[[Store], T]) -> T:
        """fn(store) on a reader thread; its result (or exception) here."""
        return await self._awaitable(self._reads, fn)

    async def call(self, fn: Callable[[Store], T]) -> T:
        """fn(store) on the writer thread after every write queued before it; its result (or exception) here."""
        return await self._awaitable(self._writes, fn)

    def write(self, fn: Callable[[Store], Any], what: str, on_done: Callable[[Any], None] | None = None) -> None:
        """Queue fn(store) for the writer thread and return at once. Failures are logged as `what` failed.
        The loop hears back only when `on_done` is given (each wake-up of the loop costs CPU on the busy path)."""
        loop = self._loop_or_raise()
        self._queued += 1

        def done(result: Any, exc: BaseException | None) -> None:   # on the writer thread
            if exc is not None:
                self.failed_writes += 1
                log.error("%s failed: %s", what, exc, exc_info=exc)
            elif on_done is not None:
                _call_soon(loop, on_done, result)
            self._finished += 1

        self._writes.put((fn, done))


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:   # the loop is closed (engine stopped): nobody is waiting any more
        pass
