"""Recovery after every (re)connect: reconcile the engine's calls with what Asterisk holds.

Rule: nothing may stay stuck in the Stasis app. Channels the app holds that no task owns are adopted (restarted by the
model at the node stored for them: `machine.adopt`) or, for legs, hung up; call records left open by calls that ended
while no engine watched are closed as interrupted. Storage goes through the StoreWorker like every other engine I/O.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vpbx.asterisk.ari import AriClient, AriError
from vpbx.engine.calls import Calls, CallTasks, iso
from vpbx.engine.events import CallStart
from vpbx.engine.store_worker import StoreWorker

if TYPE_CHECKING:
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)
call_log = logging.getLogger("vpbx.calls")

# leg channel ids are f"{call prefix}-leg-{n}" (vpbx.dialplan.machine): a leg has no call to be adopted into
LEG_MARK = "-leg-"


async def reconcile(ari: AriClient, store: StoreWorker, calls: Calls, tasks: CallTasks) -> None:
    """Adopt or hang up channels the app holds that no task owns; close call records of calls that ended unseen."""
    try:
        app = await ari.get_application()
    except AriError as exc:
        log.warning("reconcile: cannot read the application (%s)", exc)
        return
    held = set(app.get("channel_ids") or [])
    adopted = 0
    for channel_id in sorted(held):
        if channel_id in calls.owner:
            continue
        try:
            channel = await ari.get_channel(channel_id)
        except AriError:
            continue
        if LEG_MARK in channel_id:
            log.info("reconcile: hanging up orphaned leg %s", channel_id)
            with contextlib.suppress(AriError):
                await ari.hangup(channel_id, reason="normal")
            continue
        row = await store.read(_call_row(channel_id))
        at = row.get("node") if row else None
        restarts = (row.get("restarts") or 0) + 1 if row else 1
        log.info("reconcile: adopting call %s at node %s", channel_id, at)
        call_log.info(json.dumps({"call_id": channel_id, "event": "adopted", "node": at}))
        exten = row["number"] if row is not None else (channel.get("dialplan") or {}).get("exten", "")
        tasks.start(CallStart.of(channel, ["inbound", exten]), adopt_at=at or "", restarts=restarts)
        adopted += 1
    # on the writer, after every write queued so far: a call that ended meanwhile has its record closed already
    live = held | set(calls.by_id)
    interrupted = await store.call(_close_unseen(live, iso(time.time()) or ""))
    log.info("reconcile done: %d channel(s) in the app, %d adopted%s", len(held), adopted,
             f", {interrupted} call record(s) closed as interrupted" if interrupted else "")


def _call_row(call_id: str) -> Callable[[Store], dict[str, Any] | None]:
    def get(st: Store) -> dict[str, Any] | None:
        return st.calls.get(call_id)

    return get


def _close_unseen(live: set[str], now: str) -> Callable[[Store], int]:
    def close(st: Store) -> int:
        closed = 0
        for row in st.calls.unfinished():
            if row["call_id"] not in live:
                st.calls.finish(row["call_id"], ended_at=row.get("ended_at") or now, disposition="interrupted")
                closed += 1
        return closed

    return close
