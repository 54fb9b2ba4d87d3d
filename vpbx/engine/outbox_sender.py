"""OutboxSender: the engine's e-mail loop, delivering every due message of the one outbox (voicemail and notices).

Rule: nothing here blocks the event loop and nothing here decides. SQLite, the spool files and SMTP run in the
sender's own worker thread, which owns its own database connection (so a slow mail server never delays the engine's
call records); only Asterisk's recording is fetched and deleted on the loop (async ARI calls). The rules (lease,
backoff, what a message says, when it counts as delivered) are vpbx.services.outbox's.

    sender = OutboxSender(store, ari.stored_file, cfg.smtp, ari.delete_stored)   # store: Store | path | factory
    task = asyncio.create_task(sender.run())
    ...  sender.wake()          # right after a voicemail is queued: a pass now instead of within `interval`
    sender.stop(); await task   # run() closes the worker's connection on the way out
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from vpbx.config import SmtpSettings, atomic_write
from vpbx.domain.errors import ValidationError
from vpbx.domain.timestamps import utc_now
from vpbx.services import outbox
from vpbx.services.outbox import BACKOFF_FIRST_S, DeliveryError
from vpbx.storage.outbox import KINDS, OutboxMessage
from vpbx.storage.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
Fetch = Callable[[str], Awaitable[bytes]]
Delete = Callable[[str], Awaitable[None]]
StoreSource = Store | Path | str | Callable[[], Store]


class OutboxSender:
    """The outbox loop: a pass every `interval` seconds, or at once after wake().

    `store` is where the outbox lives: a Store (the sender opens its own connection to the same file), a database
    path, or a factory returning a new Store; the sender's worker thread opens it on first use. `fetch(recording)`
    returns a voicemail's WAV (production: AriClient.stored_file), `delete(recording)` removes Asterisk's copy after
    delivery (AriClient.delete_stored). `kinds` limits the sender to some kinds of message.
    """

    def __init__(self, store: StoreSource, fetch: Fetch, smtp: SmtpSettings, delete: Delete | None = None,
                 interval: float = BACKOFF_FIRST_S, *, spool_dir: Path | None = None,
                 context: ssl.SSLContext | None = None, kinds: Sequence[str] = KINDS) -> None:
        self.fetch, self.smtp, self.delete = fetch, smtp, delete
        self.interval, self.context, self.kinds = interval, context, tuple(kinds)
        self._open_store = _opener(store)
        self._spool_dir = spool_dir
        self._store: Store | None = None        # touched in the worker thread only
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(1, thread_name_prefix="vpbx-outbox")
        self.passes = 0
        self.delivered = 0
        self._wake = asyncio.Event()
        self._stopping = False

    # ---- the worker thread ---------------------------------------------------------------------------------------
    def _worker_store(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
            if self._spool_dir is None:
                self._spool_dir = outbox.spool_dir_for(self._store)
        return self._store

    def _close_in_worker(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        if self._executor is None:
            raise RuntimeError("the outbox sender is closed")
        return asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _in_worker(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args) in the worker thread."""
        return await self._submit(fn, *args, **kwargs)

    async def _with_store(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(store, *args) in the worker thread, on the worker's own connection."""
        def job() -> T:
            return fn(self._worker_store(), *args, **kwargs)
        return await self._submit(job)

    # ---- control -------------------------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def retry_now(self, kind: str | None = None, recording: str | None = None) -> int:
        """End the backoff (of all, one kind, or one recording's message) and run a pass now."""
        count = await self._with_store(outbox.retry_now, kind, recording)
        self.wake()
        return count

    async def aclose(self) -> None:
        """Close the worker's connection (after the job in hand) and let its thread end."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        closed = asyncio.get_running_loop().run_in_executor(executor, self._close_in_worker)
        executor.shutdown(wait=False)
        await asyncio.shield(closed)

    # ---- passes --------------------------------------------------------------------------------------------------
    async def run_once(self, now: datetime | None = None) -> int:
        """One pass: every due message is claimed, sent and marked; returns how many were delivered."""
        start = now or utc_now()
        delivered = 0
        for message in await self._with_store(outbox.due, start, self.kinds):
            if self._stopping:      # the engine is stopping: the rest stays due for the next start
                break
            if await self._deliver_one(message.id, start):
                delivered += 1
        self.passes += 1
        self.delivered += delivered
        return delivered

    async def run(self) -> None:
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a broken pass (e.g. database locked for too long) must not end the loop
                    log.exception("outbox pass failed; trying again in %.0f s", self.interval)
                if self._stopping:
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
        finally:
            await self.aclose()

    async def _deliver_one(self, message_id: int, now: datetime) -> bool:
        claimed = await self._with_store(outbox.claim, message_id, now)
        if claimed is None:  # delivered meanwhile, or another sender holds it
            return False
        try:
            wav = await self._recording(claimed) if claimed.kind == "voicemail" else None
            ok = await self._with_store(outbox.deliver, self.smtp, claimed, now, wav, context=self.context)
        except Exception as exc:  # the recording could not be fetched or spooled
            await self._with_store(outbox.record_failure, claimed, exc, now)
            return False
        except BaseException:  # cancelled (engine stopping): give the claim back so the next start retries at once
            with contextlib.suppress(Exception):
                await asyncio.shield(self._with_store(outbox.release, claimed))
            raise
        if ok and claimed.recording is not None:
            await self._forget_recording(claimed.recording)
        return ok

    def _spool_path(self, recording: str) -> Path:
        if self._spool_dir is None:
            raise ValidationError("the voicemail spool dir is not known before the outbox is opened")
        return outbox.spool_path(self._spool_dir, recording)

    async def _recording(self, message: OutboxMessage) -> bytes:
        """The voicemail's WAV: from the spool, else fetched from Asterisk and spooled before anything else."""
        recording = message.recording or ""
        path = self._spool_path(recording)
        wav = await self._in_worker(_read_if_exists, path)
        if wav is not None:
            return wav
        try:
            wav = await self.fetch(recording)
        except Exception as exc:
            raise DeliveryError(f"cannot fetch recording {recording} from Asterisk ({exc})") from exc
        if not wav:
            raise DeliveryError(f"recording {recording} fetched from Asterisk is empty")
        await self._in_worker(atomic_write, path, wav, mode=0o600)  # from here on Asterisk's copy may go
        return wav

    async def _forget_recording(self, recording: str) -> None:
        if self.delete is not None:
            try:
                await self.delete(recording)
            except Exception as exc:  # delivered is delivered; Asterisk's copy is only left behind
                log.warning("voicemail %s: delivered, but deleting Asterisk's copy failed: %s", recording, exc)
        await self._in_worker(self._spool_path(recording).unlink, missing_ok=True)


async def deliver_pending(store: StoreSource, fetch: Fetch, smtp: SmtpSettings, delete: Delete | None = None,
                          now: datetime | None = None, *, spool_dir: Path | None = None,
                          context: ssl.SSLContext | None = None, kinds: Sequence[str] = KINDS) -> int:
    """One pass of a sender made for it (its own thread and connection, closed after); returns delivered count."""
    sender = OutboxSender(store, fetch, smtp, delete, spool_dir=spool_dir, context=context, kinds=kinds)
    try:
        return await sender.run_once(now)
    finally:
        await sender.aclose()


def _opener(source: StoreSource) -> Callable[[], Store]:
    if isinstance(source, Store):
        path = source.database_path()
        if path is None:
            raise ValidationError("the outbox sender opens its own connection: give it a database file, "
                                  "not an in-memory Store")
        return functools.partial(Store.open, path)
    if isinstance(source, (str, Path)):
        return functools.partial(Store.open, source)
    return source


def _read_if_exists(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
