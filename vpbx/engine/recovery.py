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
from vpbx.dialplan.model import Leg, Target
from vpbx.domain.destinations import try_parse
from vpbx.domain.timestamps import from_iso
from vpbx.engine.calls import Calls, CallTasks, Talking, iso
from vpbx.engine.events import CallStart
from vpbx.engine.store_worker import StoreWorker

if TYPE_CHECKING:
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)
call_log = logging.getLogger("vpbx.calls")

# leg channel ids are f"{call prefix}-leg-{n}" (vpbx.dialplan.machine): a leg has no call to be adopted into
LEG_MARK = "-leg-"
# destination kinds a bridged leg can have been dialled to (vpbx.dialplan.model.Target)
LEG_KINDS = ("sip", "tel", "uri")


async def reconcile(ari: AriClient, store: StoreWorker, calls: Calls, tasks: CallTasks) -> None:
    """Adopt or hang up channels the app holds that no task owns; close call records of calls that ended unseen."""
    try:
        app = await ari.get_application()
    except AriError as exc:
        log.warning("reconcile: cannot read the application (%s)", exc)
        return
    held = set(app.get("channel_ids") or [])
    bridges = set(app.get("bridge_ids") or [])
    adopted = 0
    claimed: set[str] = set()      # legs of calls adopted as talking: not orphans
    orphans: list[str] = []
    for channel_id in sorted(held):
        if channel_id in calls.owner:
            continue
        if LEG_MARK in channel_id:
            orphans.append(channel_id)
            continue
        try:
            channel = await ari.get_channel(channel_id)
        except AriError:
            continue
        row = await store.read(_open_call(channel_id))
        call_id = row["call_id"] if row else channel_id
        at = row.get("node") if row else None
        restarts = (row.get("restarts") or 0) + 1 if row else 1
        exten = row["number"] if row is not None else (channel.get("dialplan") or {}).get("exten", "")
        talking = await _talking(ari, row, held, bridges, channel_id)
        if talking is not None:
            claimed.add(talking.leg.leg_id)
            log.info("reconcile: adopting call %s talking with %s in bridge %s", channel_id, talking.leg.leg_id,
                     talking.bridge_id)
            call_log.info(json.dumps({"call_id": channel_id, "event": "adopted", "node": at, "talking": True}))
        else:
            log.info("reconcile: adopting call %s at node %s", channel_id, at)
            call_log.info(json.dumps({"call_id": channel_id, "event": "adopted", "node": at}))
        tasks.start(CallStart.of(channel, ["inbound", exten]), adopt_at=at or "", restarts=restarts, talking=talking,
                    call_id=call_id)
        adopted += 1
    for channel_id in orphans:
        if channel_id in claimed:
            continue
        log.info("reconcile: hanging up orphaned leg %s", channel_id)
        with contextlib.suppress(AriError):
            await ari.hangup(channel_id, reason="normal")
    # on the writer, after every write queued so far: a call that ended meanwhile has its record closed already
    live = held | set(calls.by_id)
    interrupted = await store.call(_close_unseen(live, iso(time.time()) or ""))
    log.info("reconcile done: %d channel(s) in the app, %d adopted%s", len(held), adopted,
             f", {interrupted} call record(s) closed as interrupted" if interrupted else "")


async def _talking(ari: AriClient, row: dict[str, Any] | None, held: set[str], bridges: set[str],
                   call_id: str) -> Talking | None:
    """The call was bridged when its engine stopped, and both its caller and its leg are still in that bridge:
    adopt it as talking. Anything less (the leg gone, the bridge gone or changed) is adopted the ordinary way."""
    if not row or not row.get("bridged_leg") or not row.get("bridge_id") or not row.get("connected_at"):
        return None
    leg_id, bridge_id = row["bridged_leg"], row["bridge_id"]
    if leg_id not in held or bridge_id not in bridges:
        return None
    try:
        bridge = await ari.get_bridge(bridge_id)
    except AriError:
        return None
    if not {call_id, leg_id} <= set(bridge.get("channels") or []):
        return None
    reached = try_parse(row.get("reached") or "")
    if reached is None or reached.kind not in LEG_KINDS:
        return None
    target = Target(reached.kind, reached.value)
    connected = from_iso(row["connected_at"]).timestamp()
    answered = from_iso(row["answered_at"]).timestamp() if row.get("answered_at") else connected
    return Talking(bridge_id, Leg(leg_id, target, status="answered"), answered, connected)


def _open_call(channel: str) -> Callable[[Store], dict[str, Any] | None]:
    def get(st: Store) -> dict[str, Any] | None:
        return st.calls.open_for_channel(channel)

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
