"""The ARI application: the engine's edge. `vpbx serve` runs `run_engine`.

Rule: wiring only. This module opens the storage worker and the ARI connection, starts the engine (vpbx.engine) and
the e-mail outbox sender, sets up JSON logging, and stops everything cleanly on SIGTERM / SIGINT (calls in progress
stay up in Asterisk: the next engine adopts them). Every call decision is the model's (vpbx.dialplan); how events and
actions are carried is vpbx.engine's.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal

from vpbx.asterisk.ari import AriClient
from vpbx.config import Config
from vpbx.engine import Engine, StoreWorker
from vpbx.engine.outbox_sender import OutboxSender

log = logging.getLogger(__name__)

SENDER_STOP_TIMEOUT_S = 5.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the call log (`vpbx.calls`) lines are JSON already."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "vpbx.calls":
            return record.getMessage()
        return json.dumps({"ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
                           "msg": record.getMessage(), **({"exc": self.formatException(record.exc_info)}
                                                          if record.exc_info else {})})


async def serve(cfg: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    store = StoreWorker.at(cfg.db)
    await store.start()
    try:
        async with AriClient(cfg.ari.url, cfg.ari.user, cfg.ari.password, app=cfg.ari.app) as ari:
            # the outbox has its own thread and connection: a slow mail server never delays a call
            sender = OutboxSender(cfg.db, ari.stored_file, cfg.smtp, ari.delete_stored)
            engine = Engine(cfg, ari, store, wake_outbox=sender.wake)
            sender_task = asyncio.create_task(sender.run())
            runner = asyncio.create_task(engine.run())
            stopper = asyncio.create_task(stop.wait())
            log.info("vpbx engine serving app %s at %s", cfg.ari.app, cfg.ari.url)
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            log.info("vpbx engine stopping")
            ari.stop()
            runner.cancel()
            stopper.cancel()
            await engine.shutdown()
            sender.stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(sender_task, SENDER_STOP_TIMEOUT_S)
    finally:
        await store.aclose()          # the call records queued by the calls just stopped are written first


def run_engine(cfg: Config, log_level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=log_level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(cfg))
