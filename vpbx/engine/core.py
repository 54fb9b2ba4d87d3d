"""The Engine: the ARI event stream in, each event routed to the call it concerns.

Rule: routing only. A StasisStart of a new call starts its task (vpbx.engine.calls); a leg's StasisStart releases the
dial waiting for it; every other event goes onto the queue of the call owning one of its channels, so each call sees
its events in arrival order. After every (re)connect the engine reconciles with Asterisk (vpbx.engine.recovery).
Nothing here waits on storage or on another call: one slow call never delays the others.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from vpbx.asterisk.ari import AriClient, AriError
from vpbx.asterisk.ari.events import CONNECTED, event_channel_ids
from vpbx.config import Config
from vpbx.engine.actions import ActionRunner
from vpbx.engine.calls import Calls, CallTasks
from vpbx.engine.events import LEG_ARG, CallStart, transfer_channel
from vpbx.engine.metering import Metering
from vpbx.engine.recovery import reconcile
from vpbx.engine.store_worker import StoreWorker
from vpbx.engine.transfers import Transfers

log = logging.getLogger(__name__)


class Engine:
    """Owns the call registry, the per-call tasks and the routing of ARI events to them."""

    def __init__(self, cfg: Config, ari: AriClient, store: StoreWorker,
                 wake_outbox: Callable[[], None] | None = None,
                 on_connected: Callable[[], None] | None = None) -> None:
        """`on_connected` is called after every (re)connect of the event WebSocket, i.e. once the Stasis app is
        registered with Asterisk (vpbx.ari_app tells systemd it is ready)."""
        self.cfg = cfg
        self.on_connected = on_connected
        self.ari = ari
        self.store = store
        self.calls = Calls()
        self.metering = Metering(ari, cfg.billing.credit_warning_seconds)
        self.actions = ActionRunner(cfg, ari, store, self.calls, wake_outbox, self.metering)
        self.tasks = CallTasks(cfg, ari, store, self.calls, self.actions, self.metering)
        self.transfers = Transfers(ari, self.calls, self.tasks)
        self._reconciling: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async for event in self.ari.events():
            try:
                self.dispatch(event)
            except Exception:  # one bad event must never stop the engine
                log.exception("event %s could not be handled", event.get("type"))

    def dispatch(self, event: dict[str, Any]) -> None:
        etype = event.get("type")
        if etype == CONNECTED:
            log.info("ARI connected to %s; reconciling", self.cfg.ari.url)
            self._reconciling = asyncio.create_task(reconcile(self.ari, self.store, self.calls, self.tasks))
            if self.on_connected is not None:
                self.on_connected()
            return
        if etype == "StasisStart":
            channel = event.get("channel") or {}
            args = event.get("args") or []
            self.calls.leg_started(channel.get("id", ""))
            if channel.get("id") in self.calls.owner or (args and args[0] == LEG_ARG):   # a leg we created
                return
            self.tasks.start(CallStart.of(channel, args))
            return
        if etype == "ChannelTransfer":          # a phone's REFER: to the call that owns the channel it came on
            call = self.calls.owner.get(transfer_channel(event))
            if call is not None:
                call.queue.put_nowait(event)
            else:       # Asterisk waits for the app's answer: tell the phone no, or it waits forever
                log.warning("transfer on channel %s, which no call owns: declined", transfer_channel(event))
                task = asyncio.create_task(self._decline(transfer_channel(event)))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return
        for channel_id in event_channel_ids(event):
            call = self.calls.owner.get(channel_id)
            if call is not None:
                call.queue.put_nowait(event)
                return

    async def _decline(self, channel_id: str) -> None:
        with contextlib.suppress(AriError):
            await self.ari.transfer_progress(channel_id, "channel_declined")

    async def shutdown(self) -> None:
        """Stop every call task; the calls stay up in Asterisk for the next engine to adopt."""
        if self._reconciling is not None:
            self._reconciling.cancel()
        tasks = [c.task for c in self.calls.by_id.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
