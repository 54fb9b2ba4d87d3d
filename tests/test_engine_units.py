"""The engine's parts without Asterisk: the action dispatch table, ARI event translation, and the StoreWorker (reads
never wait for a writer's lock, writes run in order off the caller's path, failures are logged, nothing queued is lost
at close). The engine against real Asterisk: tests/test_engine_asterisk.py and tests/test_engine_nonblocking.py."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import typing
from pathlib import Path

import pytest

from vpbx.dialplan import model as dm
from vpbx.engine.actions import FAILURE_EVENTS, HANDLERS, QUIET_WHEN_GONE, endpoint_for, presentation
from vpbx.engine.events import CallStart, asterisk_time, translate
from vpbx.engine.store_worker import StoreWorker
from vpbx.storage.store import Store

# ---- actions ------------------------------------------------------------------------------------------------------


def test_every_model_action_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(typing.get_args(dm.Action))
    assert set(FAILURE_EVENTS) <= set(HANDLERS) and set(QUIET_WHEN_GONE) <= set(HANDLERS)


def test_failure_events_answer_what_the_model_waits_for() -> None:
    target = dm.Target("sip", "alice")
    assert FAILURE_EVENTS[dm.Dial](dm.Dial("c-leg-1", target, 5)) == dm.LegFailed("c-leg-1", "unavailable")
    assert FAILURE_EVENTS[dm.Play](dm.Play("c-pb-1", "sound:x")) == dm.PlaybackFinished("c-pb-1")
    assert FAILURE_EVENTS[dm.Record](dm.Record("c-vm-1", 10, 3)) == dm.RecordingFailed("c-vm-1")


def test_endpoints() -> None:
    assert endpoint_for(dm.Target("sip", "alice"), None) == "PJSIP/alice"
    assert endpoint_for(dm.Target("tel", "+380501112233"), "carrier") == "PJSIP/+380501112233@carrier"
    assert endpoint_for(dm.Target("tel", "+380501112233"), None) is None
    assert endpoint_for(dm.Target("uri", "sip:desk@pbx.example.com:5070"), None) == \
        "PJSIP/vpbx-external/sip:desk@pbx.example.com:5070"


def test_presentation_follows_the_outbound_decision() -> None:
    from vpbx.dialplan.outbound import Outbound
    from vpbx.domain.records import Number

    n = Number("+380441234567")
    assert presentation(None) is None
    assert presentation(Outbound(n, "+380671234567", "t", n.number, True)) == {
        "CONNECTEDLINE(num,i)": "+380441234567", "CONNECTEDLINE(pres,i)": "allowed"}
    assert presentation(Outbound(n, "+4930123456", "t", n.number, False))["CONNECTEDLINE(pres,i)"] == "prohib"


# ---- events -------------------------------------------------------------------------------------------------------


def test_call_start_of_inbound_and_outbound() -> None:
    channel = {"id": "ch1", "caller": {"number": "+380671112233"}, "state": "Ring", "dialplan": {"exten": "s"}}
    assert CallStart.of(channel, ["inbound", "+380441234567"]) == CallStart(
        "ch1", "+380671112233", "inbound", "+380441234567", "", False)
    assert CallStart.of({**channel, "state": "Up"}, ["outbound", "0671234567", "alice"]) == CallStart(
        "ch1", "+380671112233", "outbound", "0671234567", "alice", True)
    assert CallStart.of({"id": "ch2", "dialplan": {"exten": "+380441234567"}}, []) == CallStart(
        "ch2", "", "inbound", "+380441234567", "", False)


def test_translate() -> None:
    legs = {"c-leg-1"}

    def tr(event: dict[str, typing.Any]) -> list[dm.Event]:
        return translate(event, "c", legs)

    assert tr({"type": "StasisEnd", "channel": {"id": "c"}}) == [dm.CallerHungUp()]
    assert tr({"type": "ChannelHangupRequest", "channel": {"id": "c-leg-1"}}) == []
    assert tr({"type": "ChannelDestroyed", "channel": {"id": "c-leg-1"}}) == [dm.LegHungUp("c-leg-1")]
    assert tr({"type": "ChannelDtmfReceived", "channel": {"id": "c"}, "digit": "5"}) == [dm.Dtmf("5")]
    assert tr({"type": "ChannelDtmfReceived", "channel": {"id": "c-leg-1"}, "digit": "5"}) == []
    assert tr({"type": "PlaybackFailed", "playback": {"id": "c-pb-2"}}) == [dm.PlaybackFinished("c-pb-2")]
    dial = {"type": "Dial", "peer": {"id": "c-leg-1"}}
    assert tr({**dial, "dialstatus": "RINGING"}) == [dm.LegRinging("c-leg-1")]
    assert tr({**dial, "dialstatus": "ANSWER"}) == [dm.LegAnswered("c-leg-1")]
    assert tr({**dial, "dialstatus": "CHANUNAVAIL"}) == [dm.LegFailed("c-leg-1", "unavailable")]
    assert tr({**dial, "dialstatus": "PROGRESS"}) == []
    assert tr({"type": "Dial", "peer": {"id": "other"}, "dialstatus": "ANSWER"}) == []
    assert tr({"type": "RecordingFinished", "recording": {"name": "c-vm-1", "duration": 4}}) == [
        dm.RecordingFinished("c-vm-1", 4.0)]
    assert tr({"type": "RecordingFailed", "recording": {"name": "c-vm-1"}}) == [dm.RecordingFailed("c-vm-1")]
    assert tr({"type": "ChannelVarset", "channel": {"id": "c"}}) == []
    assert tr({"type": "ChannelHold", "channel": {"id": "c"}}) == [dm.Hold(dm.CALLER)]
    assert tr({"type": "ChannelUnhold", "channel": {"id": "c"}}) == [dm.Unhold(dm.CALLER)]
    assert tr({"type": "ChannelHold", "channel": {"id": "c-leg-1"}, "musicclass": "x"}) == [dm.Hold("c-leg-1")]
    assert tr({"type": "ChannelUnhold", "channel": {"id": "c-leg-1"}}) == [dm.Unhold("c-leg-1")]
    assert tr({"type": "ChannelHold", "channel": {"id": "someone-else"}}) == []


def test_asterisk_time() -> None:
    assert asterisk_time({"timestamp": "2026-01-31T10:00:00.250+0000"}) == 1769853600.25
    assert asterisk_time({"timestamp": "not a time"}) is None
    assert asterisk_time({}) is None


# ---- StoreWorker --------------------------------------------------------------------------------------------------


def _hold_write_lock(path: Path, held: threading.Event, release: threading.Event) -> None:
    """Another process's `vpbx number import`: one transaction holding the write lock until released."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO numbers (number, channels, direction, type, category, created_at) "
                 "VALUES ('+380449990001', 4, 'in', 'geographic', 'regular', '2026-01-01T00:00:00+00:00')")
    held.set()
    release.wait(30)
    conn.execute("COMMIT")
    conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "vpbx.db"
    Store.open(path).close()
    return path


def test_reads_and_queued_writes_never_wait_for_another_writers_lock(db: Path) -> None:
    held, release = threading.Event(), threading.Event()

    async def run() -> None:
        worker = StoreWorker.at(db)
        await worker.start()
        locker = threading.Thread(target=_hold_write_lock, args=(db, held, release))
        locker.start()
        await asyncio.to_thread(held.wait)
        try:
            t0 = time.monotonic()
            for i in range(5):                    # queued behind the lock, not awaited
                worker.write(lambda st, i=i: st.calls.add(f"call-{i}", "+380441234567", "x"), f"start {i}")
            # the loop keeps running and a read is answered while the writes wait for the lock
            await asyncio.sleep(0.05)
            assert await worker.read(lambda st: st.numbers.find("+380449990001")) is None   # not committed yet
            assert worker.pending_writes == 5
            assert time.monotonic() - t0 < 1.0
        finally:
            release.set()
            await asyncio.to_thread(locker.join)
        await worker.drain()
        assert worker.pending_writes == 0
        rows = await worker.read(lambda st: [r["call_id"] for r in st.calls.unfinished()])
        assert rows == [f"call-{i}" for i in range(5)]
        assert await worker.read(lambda st: st.numbers.find("+380449990001")) is not None
        await worker.aclose()

    asyncio.run(run())


def test_writes_run_in_order_and_call_sees_them(db: Path) -> None:
    async def run() -> None:
        worker = StoreWorker.at(db)
        await worker.start()
        worker.write(lambda st: st.calls.add("c1", "+380441234567", "x"), "start")
        for node in ("a", "b", "c"):
            worker.write(lambda st, node=node: st.calls.note_node("c1", node), "note")
        row = await worker.call(lambda st: st.calls.get("c1"))
        assert row is not None and row["node"] == "c"
        await worker.aclose()

    asyncio.run(run())


def test_a_failed_write_is_logged_and_the_next_ones_run(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    done: list[object] = []

    def broken(st: Store) -> None:
        raise RuntimeError("disk on fire")

    async def run() -> None:
        worker = StoreWorker.at(db)
        await worker.start()
        worker.write(broken, "call x: call record")
        worker.write(lambda st: st.calls.add("c2", "+380441234567", "x"), "start", on_done=done.append)
        await worker.drain()
        assert worker.failed_writes == 1 and done == [None]
        await worker.aclose()

    with caplog.at_level(logging.ERROR, logger="vpbx.engine.store_worker"):
        asyncio.run(run())
    assert any("call x: call record failed: disk on fire" in r.getMessage() for r in caplog.records)


def test_read_errors_reach_the_caller(db: Path) -> None:
    from vpbx.domain.errors import NotFoundError

    async def run() -> None:
        worker = StoreWorker.at(db)
        await worker.start()
        with pytest.raises(NotFoundError):
            await worker.read(lambda st: st.numbers.get("+380449999999"))
        await worker.aclose()

    asyncio.run(run())


def test_close_runs_every_queued_write(db: Path) -> None:
    async def run() -> None:
        worker = StoreWorker.at(db)
        await worker.start()
        for i in range(50):
            worker.write(lambda st, i=i: st.calls.add(f"q{i}", "+380441234567", "x"), "start")
        await worker.aclose()

    asyncio.run(run())
    with Store.open(db) as st:
        assert len(st.calls.unfinished()) == 50


def test_a_worker_that_cannot_open_the_database_says_so(tmp_path: Path) -> None:
    def broken() -> Store:
        raise sqlite3.OperationalError("unable to open database file")

    async def run() -> None:
        worker = StoreWorker(broken)
        with pytest.raises(sqlite3.OperationalError):
            await worker.start()

    asyncio.run(run())


# ---- transfers: which channel a REFER came on, whose party it hands over -----------------------------------------
def test_endpoint_of_a_channel_name() -> None:
    from vpbx.engine.events import endpoint_of

    assert endpoint_of("PJSIP/bob-0000002a") == "bob"
    assert endpoint_of("PJSIP/acc-carol.x-00000001") == "acc-carol.x"
    assert endpoint_of("Local/201@vpbx-outbound-00000001;1") == ""
    assert endpoint_of("PJSIP/") == ""


def test_transfer_channel() -> None:
    from vpbx.engine.events import transfer_channel

    event = {"type": "ChannelTransfer", "referred_by": {"source_channel": {"id": "c-leg-1"}},
             "refer_to": {"requested_destination": {"destination": "201"}}}
    assert transfer_channel(event) == "c-leg-1"
    assert transfer_channel({"type": "ChannelTransfer"}) == ""


def test_bridged_party_names_the_other_side_of_a_talk() -> None:
    from vpbx.dialplan import machine
    from vpbx.dialplan.testing import sample_flow
    from vpbx.engine.calls import Call
    from vpbx.engine.transfers import _bridged_party, _target_of

    state, _ = machine.adopt_talking(sample_flow(route="sip:alice"), "c", "+380441234567",
                                     dm.Leg("c-leg-1", dm.Target("sip", "alice")), 1.0, 2.0)
    call = Call(call_id="c-xab", channel="c", caller="+380441234567", state=state)
    assert _bridged_party(call, "c-leg-1") == ("c", dm.CALLER)          # the leg transfers the caller
    assert _bridged_party(call, "c") == ("c-leg-1", "c-leg-1")          # the caller transfers the leg
    assert _bridged_party(call, "someone-else") is None
    assert _target_of(call, dm.CALLER) == dm.Target("tel", "+380441234567")
    assert _target_of(call, "c-leg-1") == dm.Target("sip", "alice")
    ringing, _ = machine.start(sample_flow(route="sip:alice"), "d", "+1555", 0)
    assert _bridged_party(Call(call_id="d", caller="+1555", state=ringing), "d") is None   # not a talk yet
