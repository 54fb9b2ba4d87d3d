"""Business hours on live calls: real Asterisk, `vpbx serve`, sipp as the carrier's caller.

A number is routed `hours:NAME?open=play:welcome&closed=play:short` by a schedule built around the real clock: open
today until the next whole minute (at least MARGIN_S away, Kyiv wall-clock time). One call before closing time hears
the open branch, one after it the closed branch: the engine's own clock decides (no clock is faked or injected into
it; the schedule is placed where the clock is), through the flow it compiles for every call. The dry run of
`vpbx call simulate --at` agrees with both calls.
"""
from __future__ import annotations

import itertools
import os
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import Engine
from test_engine_asterisk import CALLER, _unique_number, calls_for, wait_no_channels

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(240)]

KYIV = ZoneInfo("Europe/Kyiv")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MARGIN_S = 15           # the first call is decided at least this long before closing time
_seq = itertools.count(1)


def _played(eng: Engine, call_id: str) -> list[str]:
    return [e["media"] for e in eng.playbacks(call_id) if e["ari_event"] == "PlaybackFinished"]


def _call(sipp, number: str) -> None:
    res = sipp.uac(number, from_user=CALLER, scenario="uac_remote_bye.xml", hold_ms=1000, timeout_s=30).wait(40)
    assert res.ok and res.final_response("INVITE") == 200 and res.saw("BYE", "received"), res.describe()


def _finished(asterisk, number: str, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = calls_for(asterisk, number)
        if len(rows) == count and all(r.get("ended_at") for r in rows):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"expected {count} finished call records for {number}: {calls_for(asterisk, number)}")


def _closing_time() -> tuple[datetime, str, str]:
    """(closing time, its weekday, the open range today) with closing MARGIN_S or more away, in Kyiv."""
    now = datetime.now(KYIV)
    close = (now + timedelta(seconds=MARGIN_S)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = "24:00" if close.date() > now.date() else f"{close:%H:%M}"
    return close, DAYS[now.weekday()], f"00:00-{end}"


def test_business_hours_route_on_both_sides_of_closing_time(asterisk, sipp, engine):
    number = _unique_number()
    name = f"hours{os.getpid() % 10000}x{next(_seq)}"
    close, day, hours = _closing_time()
    asterisk.vpbx("schedule", "add", name, "--tz", "Europe/Kyiv", "--open", day, hours)
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, f"hours:{name}?open=play:welcome&closed=play:short")
    asterisk.vpbx("reload")
    engine.start()

    before = datetime.now(KYIV)
    assert before < close - timedelta(seconds=5), "the set-up took too long for the first call to come before closing"
    _call(sipp, number)
    first = _finished(asterisk, number, 1)[0]
    assert first["reached"] == "play:welcome", first
    assert _played(engine, first["call_id"]) == ["sound:vpbx/welcome"], engine.playbacks()

    time.sleep(max(0.0, (close - datetime.now(KYIV)).total_seconds()) + 1.0)      # past closing time
    after = datetime.now(KYIV)
    _call(sipp, number)
    second = next(r for r in _finished(asterisk, number, 2) if r["call_id"] != first["call_id"])
    assert second["reached"] == "play:short", second
    assert _played(engine, second["call_id"]) == ["sound:vpbx/short"], engine.playbacks()
    wait_no_channels(asterisk)

    # the dry run decides the same way at the same instants
    for at, reached in ((before, "play:welcome"), (after, "play:short")):
        out = asterisk.vpbx("call", "simulate", number, "--at", at.isoformat(timespec="seconds")).stdout
        assert out.splitlines()[-1].endswith(f"reached {reached}"), out
        assert f"schedule {name} {'open' if reached == 'play:welcome' else 'closed'} at" in out, out
    asterisk.vpbx("number", "route", number, "hangup")
    asterisk.vpbx("schedule", "remove", name)
