"""The call engine's edge: ARI events in, dialplan actions out, one asyncio task per call.

Rules: no call decision is made here — every decision is `vpbx.dialplan.step`; this module only translates ARI events
into model events (in arrival order, through one queue per call) and carries out the actions the model returns. An
exception inside one call is logged and ends that call cleanly (caller and legs hung up in `finally`); it never stops
the engine. After every (re)connect the engine reconciles with Asterisk: channels still in the Stasis app that no task
owns are adopted (restarted at the node stored for them) or hung up, so nothing stays stuck after a restart.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from vpbx import dialplan as dp
from vpbx.asterisk.ari import AriClient, AriError, AriNotFound
from vpbx.asterisk.ari.events import CONNECTED, event_channel_ids
from vpbx.config import Config
from vpbx.domain.errors import VpbxError
from vpbx.services.flows import load_flow
from vpbx.services.lifecycle import charge_call
from vpbx.storage.store import Store

log = logging.getLogger(__name__)
call_log = logging.getLogger("vpbx.calls")

# Dial event `dialstatus` -> model leg failure reason (RINGING / ANSWER / PROGRESS / CANCEL handled apart).
DIAL_FAILURES = {"BUSY": "busy", "NOANSWER": "noanswer", "CHANUNAVAIL": "unavailable", "CONGESTION": "congestion",
                 "DONTCALL": "unavailable", "TORTURE": "unavailable", "INVALIDARGS": "unavailable"}
# Q.850 cause -> ARI hangup `reason` (the names every ARI version understands).
HANGUP_REASONS = {1: "unallocated", 16: "normal", 17: "busy", 19: "no_answer", 21: "rejected", 34: "congestion"}
CALLER_GONE = ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest")
CLEANUP_TIMEOUT_S = 5.0
# how long a created leg may take to enter the Stasis app before it is dialled anyway
LEG_START_TIMEOUT_S = 2.0


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def normalize_number(exten: str) -> str:
    exten = exten.strip()
    return exten if exten.startswith("+") else f"+{exten}"


def endpoint_for(target: dp.Target, number: Any, default_trunk: str | None) -> str | None:
    """ARI endpoint string for a dial target, or None when it cannot be dialled (no trunk for a tel: target)."""
    if target.kind == "sip":
        return f"PJSIP/{target.value}"
    if target.kind == "tel":
        trunk = getattr(number, "trunk", None) or default_trunk
        return f"PJSIP/{target.value}@{trunk}" if trunk else None
    if target.kind == "uri":
        return f"PJSIP/vpbx-external/{target.value}"
    return None


@dataclass
class Call:
    """One call's edge-side bookkeeping: the queue its events arrive on and what must be cleaned up."""

    call_id: str                 # the caller channel's id
    number: Any                  # vpbx.domain.records.Number
    caller: str
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    legs: set[str] = field(default_factory=set)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    bridge_id: str | None = None
    caller_gone: bool = False
    answered: bool = False
    state: Any = None
    abandoned: bool = False
    ringback: str | None = None   # id of the in-band ringback playback (caller already answered, legs ringing)
    presentation: dict[str, str] | None = None   # outbound: channel variables setting the caller ID shown
    task: asyncio.Task[None] | None = None


class Engine:
    """Owns the ARI connection, the per-call tasks and the routing of events to them."""

    def __init__(self, cfg: Config, ari: AriClient, store: Store) -> None:
        self.cfg = cfg
        self.ari = ari
        self.store = store
        self.calls: dict[str, Call] = {}          # call id -> Call
        self.owner: dict[str, Call] = {}          # channel id (caller or leg) -> Call
        self.active: dict[str, int] = {}          # number -> calls in progress handled by this engine
        self._reconciling: asyncio.Task[None] | None = None
        self.voicemail_sender: Any = None
        self._leg_started: dict[str, asyncio.Future[None]] = {}   # leg id -> resolved by the leg's StasisStart

    # ---- event intake ----------------------------------------------------------------------------------------
    async def run(self) -> None:
        async for event in self.ari.events():
            try:
                await self.dispatch(event)
            except Exception:  # one bad event must never stop the engine
                log.exception("event %s could not be handled", event.get("type"))

    async def dispatch(self, event: dict[str, Any]) -> None:
        etype = event.get("type")
        if etype == CONNECTED:
            log.info("ARI connected to %s; reconciling", self.cfg.ari.url)
            self._reconciling = asyncio.create_task(self.reconcile())
            return
        if etype == "StasisStart":
            channel = event.get("channel") or {}
            args = event.get("args") or []
            waiter = self._leg_started.pop(channel.get("id"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if channel.get("id") in self.owner:      # a leg we created entering the app
                return
            if args and args[0] == "leg":
                return
            self.start_call(channel, args)
            return
        for channel_id in event_channel_ids(event):
            call = self.owner.get(channel_id)
            if call is not None:
                call.queue.put_nowait(event)
                return

    # ---- calls -----------------------------------------------------------------------------------------------
    def start_call(self, channel: dict[str, Any], args: list[str], adopt_at: str | None = None,
                   restarts: int = 0) -> None:
        call_id = channel["id"]
        caller = (channel.get("caller") or {}).get("number") or ""
        direction = args[0] if args else "inbound"
        exten = args[1] if len(args) > 1 else (channel.get("dialplan") or {}).get("exten", "")
        number = self.store.numbers.find(normalize_number(exten)) if exten else None
        presentation: dict[str, str] | None = None
        if direction == "outbound" and number is None:
            # A SIP account dialling out: an internal call to a number of this install is routed like an inbound
            # call (above); anything else goes out through the caller-ID number's trunk, if the rules allow it.
            number, caller, presentation = self.outbound_route(call_id, exten, args[2] if len(args) > 2 else "")
        call = Call(call_id=call_id, number=number, caller=caller, answered=channel.get("state") == "Up",
                    presentation=presentation)
        self.calls[call_id] = call
        self.owner[call_id] = call
        call.task = asyncio.create_task(self.run_call(call, adopt_at, restarts, adopted=adopt_at is not None or restarts > 0))

    def outbound_route(self, call_id: str, exten: str, login: str) -> tuple[Any, str, dict[str, str] | None]:
        """An outside call from SIP account `login`: a one-target flow through the caller-ID number's trunk.

        Allowed only with a caller-ID number of this install whose direction allows outbound (toll-free never) and
        a trunk to dial through; the caller ID is shown only inside the caller-ID number's country, else withheld.
        Refused calls get no flow (rejected as unallocated).
        """
        from dataclasses import replace as dc_replace

        from vpbx.domain import numbers as nums
        from vpbx.domain.errors import VpbxError as _Err

        dest = normalize_number(exten)
        try:
            account = self.store.sip_accounts.get(login)
            nums.parse(dest)
        except _Err as exc:
            log.info("outbound call %s to %s refused: %s", call_id, exten, exc)
            return None, login, None
        own = self.store.numbers.find(account.caller_id) if account.caller_id else None
        trunk = (own.trunk if own else None) or self.cfg.default_trunk
        if own is None or own.direction not in ("out", "both") or own.type == "tollfree" or not trunk:
            log.info("outbound call %s from %s to %s refused: caller-ID number %s may not call out (direction, "
                     "toll-free or no trunk)", call_id, login, dest, account.caller_id)
            return None, login, None
        shown = nums.same_country(own.number, dest)
        # what the far end is told comes from the leg's connected line (set here, not copied from the caller); the
        # `i` option only stores it for the INVITE: without it each write queues a connected-line update that chan_pjsip
        # sends to the carrier as a re-INVITE right after the answer
        presentation = {"CONNECTEDLINE(num,i)": own.number, "CONNECTEDLINE(pres,i)": "allowed" if shown else "prohib"}
        flow_number = dc_replace(own, trunk=trunk, route=None, greeting=None, forward_to=(f"tel:{dest}",),
                                 forward_mode="sequential", forward_timeout=120, fallback="hangup")
        return flow_number, own.number if shown else "anonymous", presentation

    def load_flow(self, number: Any) -> dp.Flow:
        return load_flow(self.store, number)

    async def run_call(self, call: Call, adopt_at: str | None, restarts: int, adopted: bool) -> None:
        number = call.number
        try:
            if number is None:
                await self.execute(call, dp.reject_unknown())
                return
            try:
                flow = self.load_flow(number)
            except VpbxError as exc:
                log.error("call %s to %s refused: flow does not load (%s)", call.call_id, number.number, exc)
                await self.execute(call, [dp.Hangup(cause=27)])
                return
            now = time.time()
            if adopted:
                state, actions = dp.adopt(flow, call.call_id, call.caller, call.answered, now=now,
                                          restart=restarts, at=adopt_at)
                self.store.calls.note_node(call.call_id, state.node, restarts=restarts)
            else:
                state, actions = dp.start(flow, call.call_id, call.caller, self.active.get(number.number, 0), now=now)
                self.store.calls.start(call.call_id, number.number, call.caller, started_at=iso(now),
                                      direction="outbound" if call.presentation is not None else "inbound")
            self.active[number.number] = self.active.get(number.number, 0) + 1
            call.state = state
            self.log_step(call, None, actions)
            await self.execute(call, actions)
            last_node = state.node
            while not call.state.finished:
                raw = await call.queue.get()
                for event in self.translate(call, raw):
                    state, actions = dp.step(call.state, event, now=time.time())
                    if state is call.state:
                        continue
                    call.state = state
                    self.log_step(call, event, actions)
                    await self.execute(call, actions)
                    if state.node != last_node:
                        last_node = state.node
                        self.store.calls.note_node(call.call_id, state.node)
        except asyncio.CancelledError:
            # The engine is stopping: leave the call up for the next engine to adopt (see reconcile()).
            call.abandoned = True
            raise
        except Exception:
            log.exception("call %s failed; hanging it up", call.call_id)
        finally:
            await self.cleanup(call)

    def translate(self, call: Call, event: dict[str, Any]) -> list[Any]:
        """ARI event -> model events for this call (empty when it means nothing to the model)."""
        if not isinstance(event, dict):   # a model event the edge queued itself (timer, failed request)
            return [event]
        etype = event.get("type")
        channel_id = (event.get("channel") or {}).get("id")
        if etype in CALLER_GONE and channel_id == call.call_id:
            if call.caller_gone:
                return []
            call.caller_gone = True
            return [dp.CallerHungUp()]
        if etype in CALLER_GONE and channel_id in call.legs:
            if etype == "ChannelHangupRequest":
                return []
            call.legs.discard(channel_id)
            self.owner.pop(channel_id, None)
            return [dp.LegHungUp(channel_id)]
        if etype == "ChannelDtmfReceived" and channel_id == call.call_id:
            return [dp.Dtmf(str(event.get("digit", "")))]
        if etype in ("PlaybackFinished", "PlaybackFailed"):
            playback = event.get("playback") or {}
            call_log.info(json.dumps({"call_id": call.call_id, "ari_event": etype, "playback_id": playback.get("id"),
                                      "media": playback.get("media_uri")}))
            return [dp.PlaybackFinished(playback.get("id", ""))]
        if etype == "Dial":
            peer = (event.get("peer") or {}).get("id")
            status = event.get("dialstatus", "")
            if peer not in call.legs:
                return []
            if status == "RINGING":
                return [dp.LegRinging(peer)]
            if status == "ANSWER":
                return [dp.LegAnswered(peer)]
            if status in DIAL_FAILURES:
                return [dp.LegFailed(peer, DIAL_FAILURES[status])]
            return []
        if etype == "RecordingFinished":
            rec = event.get("recording") or {}
            return [dp.RecordingFinished(rec.get("name", ""), float(rec.get("duration") or 0))]
        if etype == "RecordingFailed":
            return [dp.RecordingFailed((event.get("recording") or {}).get("name", ""))]
        return []

    # ---- actions ---------------------------------------------------------------------------------------------
    async def execute(self, call: Call, actions: list[Any]) -> None:
        for action in actions:
            try:
                await self.perform(call, action)
            except AriNotFound:
                # The channel went away under us: that is a hang-up, not a crash.
                target = getattr(action, "leg_id", None)
                if target and target in call.legs:
                    call.queue.put_nowait(dp.LegHungUp(target))
                elif not call.caller_gone and not isinstance(action, (dp.StopPlayback, dp.HangupLeg)):
                    call.caller_gone = True
                    call.queue.put_nowait(dp.CallerHungUp())
            except AriError as exc:
                log.warning("call %s: %s failed: %s", call.call_id, type(action).__name__, exc)
                if isinstance(action, dp.Dial):
                    call.queue.put_nowait(dp.LegFailed(action.leg_id, "unavailable"))
                elif isinstance(action, dp.Play):
                    call.queue.put_nowait(dp.PlaybackFinished(action.playback_id))
                elif isinstance(action, dp.Record):
                    call.queue.put_nowait(dp.RecordingFailed(action.name))

    async def perform(self, call: Call, action: Any) -> None:
        ari = self.ari
        cid = call.call_id
        if call.ringback is not None and isinstance(action, (dp.Bridge, dp.Play, dp.Record, dp.Hangup)):
            ringback, call.ringback = call.ringback, None
            with contextlib.suppress(AriError):
                await ari.stop_playback(ringback)
        if isinstance(action, dp.Answer):
            if not call.answered:
                await ari.answer(cid)
                call.answered = True
        elif isinstance(action, dp.Ring):
            await ari.ring(cid)
        elif isinstance(action, dp.Play):
            lang = getattr(call.number, "language", None) or self.cfg.language
            await ari.play(cid, action.media, playback_id=action.playback_id, lang=lang)
        elif isinstance(action, dp.StopPlayback):
            with contextlib.suppress(AriNotFound):
                await ari.stop_playback(action.playback_id)
        elif isinstance(action, dp.StartTimer):
            loop = asyncio.get_running_loop()
            event = dp.TimerExpired(action.timer_id)
            call.timers[action.timer_id] = loop.call_later(action.seconds, call.queue.put_nowait, event)
        elif isinstance(action, dp.CancelTimer):
            handle = call.timers.pop(action.timer_id, None)
            if handle is not None:
                handle.cancel()
        elif isinstance(action, dp.Dial):
            endpoint = endpoint_for(action.target, call.number, self.cfg.default_trunk)
            if endpoint is None:
                log.warning("call %s: %s has no route (no trunk)", cid, action.target.dest)
                call.queue.put_nowait(dp.LegFailed(action.leg_id, "unavailable"))
                return
            call.legs.add(action.leg_id)
            self.owner[action.leg_id] = call
            if call.answered and call.ringback is None:
                # an answered caller (e.g. forwarded from an IVR) hears in-band ringing while the legs ring
                call.ringback = f"{cid}-ringback-{action.leg_id.rsplit('-', 1)[-1]}"
                with contextlib.suppress(AriError):
                    await ari.play(cid, "tone:ring", playback_id=call.ringback)
            # `create` answers before the new channel is in the Stasis app (Asterisk puts it there from a thread of its
            # own); a dial sent at once can get 409 "Channel not in Stasis application": wait for the leg's StasisStart
            started = asyncio.get_running_loop().create_future()
            self._leg_started[action.leg_id] = started
            try:
                await ari.create(endpoint, app=self.cfg.ari.app, app_args=["leg", cid], channel_id=action.leg_id,
                                 variables=call.presentation)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(started, LEG_START_TIMEOUT_S)
            finally:
                self._leg_started.pop(action.leg_id, None)
            await ari.dial(action.leg_id, caller=None if call.presentation else cid, timeout=max(1, int(action.timeout)))
        elif isinstance(action, dp.HangupLeg):
            if action.leg_id in call.legs:
                reason = action.reason if action.reason in ("answered_elsewhere", "normal", "timeout") else "normal"
                with contextlib.suppress(AriNotFound):
                    await ari.hangup(action.leg_id, reason=reason)
        elif isinstance(action, dp.Bridge):
            if not call.answered:
                await ari.answer(cid)
                call.answered = True
            bridge_id = f"{cid}-bridge"
            await ari.create_bridge("mixing", bridge_id=bridge_id)
            call.bridge_id = bridge_id
            # no connected-line re-INVITEs to the caller: many carriers and phones mishandle them mid-setup
            await ari.add_channel(bridge_id, [cid, action.leg_id], inhibit_connected_line_updates=True)
        elif isinstance(action, dp.Record):
            await ari.record(cid, action.name, format="wav", max_duration=action.max_seconds,
                             max_silence=action.max_silence, beep=action.beep, terminate_on=action.terminate_on,
                             if_exists="overwrite")
        elif isinstance(action, dp.DeliverVoicemail):
            self.store.outbox.add_voicemail(action.name, cid, call.number.number, call.caller, action.emails, action.duration)
            if self.voicemail_sender is not None:
                self.voicemail_sender.wake()
        elif isinstance(action, dp.DiscardRecording):
            with contextlib.suppress(AriNotFound):
                await ari.delete_stored(action.name)
        elif isinstance(action, dp.Hangup):
            if not call.caller_gone:
                await ari.hangup(cid, reason=HANGUP_REASONS.get(action.cause, "normal"))
                call.caller_gone = True   # Hangup ends the call (the model's last action): cleanup need not repeat it
        else:  # pragma: no cover - the model has no other actions
            raise TypeError(f"unknown action {action!r}")

    async def cleanup(self, call: Call) -> None:
        """Always runs when a call's task ends: nothing of the call may stay up in Asterisk."""
        for handle in call.timers.values():
            handle.cancel()
        if call.abandoned:
            for leg in call.legs:
                self.owner.pop(leg, None)
            self.owner.pop(call.call_id, None)
            self.calls.pop(call.call_id, None)
            return
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                for leg in list(call.legs):
                    with contextlib.suppress(AriError):
                        await self.ari.hangup(leg, reason="normal")
                if not call.caller_gone:
                    with contextlib.suppress(AriError):
                        await self.ari.hangup(call.call_id, reason="normal")
                if call.bridge_id:
                    with contextlib.suppress(AriError):
                        await self.ari.destroy_bridge(call.bridge_id)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("call %s: cleanup timed out", call.call_id)
        finally:
            self.write_record(call)
            if call.number is not None and call.state is not None:
                n = call.number.number
                self.active[n] = max(0, self.active.get(n, 1) - 1)
            for leg in call.legs:
                self.owner.pop(leg, None)
            self.owner.pop(call.call_id, None)
            self.calls.pop(call.call_id, None)

    def write_record(self, call: Call) -> None:
        state = call.state
        if state is None or call.number is None:
            return
        ended = state.ended_at or time.time()
        started = state.started_at
        row = self.store.calls.get(call.call_id)
        if row is not None and row.get("started_at"):
            started = datetime.fromisoformat(row["started_at"]).timestamp()
        answered_at = state.answered_at
        connected = state.connected_at or answered_at
        try:
            self.store.calls.update(
                call.call_id, answered_at=iso(answered_at), ended_at=iso(ended), reached=state.reached,
                disposition=state.disposition or ("missed" if not state.finished else "failed"),
                duration=max(0, round(ended - started)), billsec=max(0, round(ended - connected)) if connected else 0,
                voicemail=int(bool(state.voicemail)), node=state.node)
        except Exception:
            log.exception("call %s: call record not written", call.call_id)
            return
        if call.number.type != "tollfree":      # only toll-free calls are rated: spare every other call two reads
            return
        try:  # a toll-free number's owner pays for inbound calls (rated by the caller's prefix, once)
            cost = charge_call(self.store, self.cfg, call.call_id)
            if cost:
                log.info("call %s to %s charged %d minor units", call.call_id, call.number.number, cost)
        except Exception:
            log.exception("call %s: not charged (the call record is kept; the next `vpbx billing run` rates it)",
                          call.call_id)

    def log_step(self, call: Call, event: Any, actions: list[Any]) -> None:
        state = call.state
        call_log.info(json.dumps({
            "call_id": call.call_id, "number": getattr(call.number, "number", None), "node": state.node,
            "phase": state.phase, "event": type(event).__name__ if event is not None else "start",
            "actions": [type(a).__name__ for a in actions]}))

    # ---- recovery --------------------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Adopt or hang up channels the app holds that no task owns; close call records of calls that ended unseen."""
        try:
            app = await self.ari.get_application()
        except AriError as exc:
            log.warning("reconcile: cannot read the application (%s)", exc)
            return
        held = set(app.get("channel_ids") or [])
        adopted = 0
        for channel_id in sorted(held):
            if channel_id in self.owner:
                continue
            try:
                channel = await self.ari.get_channel(channel_id)
            except AriError:
                continue
            if "-leg-" in channel_id:
                log.info("reconcile: hanging up orphaned leg %s", channel_id)
                with contextlib.suppress(AriError):
                    await self.ari.hangup(channel_id, reason="normal")
                continue
            row = self.store.calls.get(channel_id)
            at = row.get("node") if row else None
            restarts = (row.get("restarts") or 0) + 1 if row else 1
            log.info("reconcile: adopting call %s at node %s", channel_id, at)
            call_log.info(json.dumps({"call_id": channel_id, "event": "adopted", "node": at}))
            exten = (channel.get("dialplan") or {}).get("exten", "")
            if row is not None:
                exten = row["number"]
            self.start_call(channel, ["inbound", exten], adopt_at=at or "", restarts=restarts)
            adopted += 1
        for row in self.store.calls.unfinished():
            if row["call_id"] not in held and row["call_id"] not in self.calls:
                self.store.calls.update(row["call_id"], ended_at=row.get("ended_at") or iso(time.time()),
                                       disposition="interrupted")
        log.info("reconcile done: %d channel(s) in the app, %d adopted", len(held), adopted)

    async def shutdown(self) -> None:
        tasks = [c.task for c in self.calls.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == "vpbx.calls":
            return record.getMessage()
        return json.dumps({"ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
                           "msg": record.getMessage(), **({"exc": self.formatException(record.exc_info)}
                                                          if record.exc_info else {})})


async def serve(cfg: Config) -> None:
    store = Store.open(cfg.db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with AriClient(cfg.ari.url, cfg.ari.user, cfg.ari.password, app=cfg.ari.app) as ari:
        from vpbx.services.voicemail import VoicemailSender

        engine = Engine(cfg, ari, store)
        sender = VoicemailSender(store, ari.stored_file, cfg.smtp, ari.delete_stored)
        engine.voicemail_sender = sender
        sender_task = asyncio.create_task(sender.run())
        runner = asyncio.create_task(engine.run())
        stopper = asyncio.create_task(stop.wait())
        log.info("vpbx engine serving app %s at %s", cfg.ari.app, cfg.ari.url)
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        log.info("vpbx engine stopping")
        ari.stop()
        runner.cancel()
        stopper.cancel()
        await engine.shutdown()
        sender.stop()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(sender_task, 5)
    store.close()


def run_engine(cfg: Config, log_level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=log_level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(cfg))
