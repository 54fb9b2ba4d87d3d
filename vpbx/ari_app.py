"""The ARI application: the engine's edge. `vpbx serve` runs `run_engine`.

Rule: wiring only. This module opens the storage worker and the ARI connection, starts the engine (vpbx.engine) and
the e-mail outbox sender, sets up the log (text or JSON lines on stderr), tells systemd when it is ready (READY=1 once
ARI is connected and the Stasis app registered) and stopping (STOPPING=1), and stops everything cleanly on SIGTERM /
SIGINT (calls in progress stay up in Asterisk: the next engine adopts them). It also runs the brute-force watcher
(vpbx.asterisk.security) as a task of its own.
Every call decision is the model's (vpbx.dialplan); how events and
actions are carried is vpbx.engine's.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from datetime import UTC, datetime

from vpbx.asterisk import security
from vpbx.asterisk.ari import AriClient
from vpbx.config import Config
from vpbx.engine import Engine, StoreWorker
from vpbx.engine.outbox_sender import OutboxSender
from vpbx.services import systemd

log = logging.getLogger(__name__)

SENDER_STOP_TIMEOUT_S = 5.0


LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
# syslog priorities: journald reads a `<N>` line prefix as the entry's priority (SyslogLevelPrefix=, on by default)
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601, UTC), level, logger, message, and exc when there is a traceback. The
    call log (`vpbx.calls`) lines are JSON objects of their own (call_id, step, ...) and are written as they are."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "vpbx.calls":
            return record.getMessage()
        entry = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-12-01 03:40:00,123 INFO vpbx.engine.core: message`, one line per record (control characters escaped; a
    traceback follows on its own lines). Under journald (`journal=True`) the timestamp is left to the journal and
    every line starts with its syslog priority `<N>` instead, so `journalctl -p warning` works. No colours."""

    def __init__(self, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname} {record.name}: {_printable(record.getMessage())}"
        if not self.journal:
            line = f"{self.formatTime(record)} {line}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if self.journal:
            prefix = f"<{PRIORITY.get(record.levelno, 6)}>"
            line = "\n".join(prefix + part for part in line.split("\n"))
        return line


def under_journald(env: dict[str, str] | None = None, fd: int = 2) -> bool:
    """stderr is connected to the journal: $JOURNAL_STREAM names its device and inode (an inherited variable with
    stderr redirected elsewhere does not count)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(fd)
        return bool(value) and (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError):
        return False


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """The engine's log on stderr, replacing the command line's handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(journal=under_journald()))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)


class Ready:
    """Tells systemd (Type=notify) the engine is ready once ARI is connected and the Stasis app registered; later
    reconnects only update the status line."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.sent = False

    def connected(self) -> None:
        status = f"STATUS=serving Stasis app {self.cfg.ari.app} at {self.cfg.ari.url}"
        systemd.notify(status if self.sent else f"READY=1\n{status}")
        self.sent = True


async def serve(cfg: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    store = StoreWorker.at(cfg.db)
    await store.start()
    try:
        async with AriClient(cfg.ari.url, cfg.ari.user, cfg.ari.password, app=cfg.ari.app,
                             rest_transport=cfg.ari.rest_transport) as ari:
            # the outbox has its own thread and connection: a slow mail server never delays a call
            sender = OutboxSender(cfg.db, ari.stored_file, cfg.smtp, ari.delete_stored)
            ready = Ready(cfg)
            engine = Engine(cfg, ari, store, wake_outbox=sender.wake, on_connected=ready.connected)
            sender_task = asyncio.create_task(sender.run())
            # brute-force bans: their own AMI connection and database thread, so a slow AMI never delays a call
            watcher_task = asyncio.create_task(security.watch(cfg))
            runner = asyncio.create_task(engine.run())
            stopper = asyncio.create_task(stop.wait())
            log.info("vpbx engine serving app %s at %s", cfg.ari.app, cfg.ari.url)
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            log.info("vpbx engine stopping")
            systemd.notify("STOPPING=1\nSTATUS=stopping: calls in progress stay up for the next engine")
            ari.stop()
            runner.cancel()
            stopper.cancel()
            await engine.shutdown()
            sender.stop()
            watcher_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(watcher_task, SENDER_STOP_TIMEOUT_S)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(sender_task, SENDER_STOP_TIMEOUT_S)
    finally:
        await store.aclose()          # the call records queued by the calls just stopped are written first


def run_engine(cfg: Config, log_level: str = "info", log_format: str = "text") -> None:
    setup_logging(log_level, log_format)
    asyncio.run(serve(cfg))
