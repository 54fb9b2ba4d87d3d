"""Toll-fraud guards on live outbound calls: real Asterisk, `vpbx serve`, sipp as the SIP account's phone and as the
carrier behind the trunk.

A call to a country the account may not reach, over its concurrent-call cap or over its daily minutes is refused with
403 before anything is dialled (the carrier never sees an INVITE), logged, and counted in `vpbx sip show`; a call
under the daily cap is cut by Asterisk when the minutes left are used. The pure rules are in
tests/test_dialplan_outbound.py.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest
from test_engine_asterisk import _outbound_setup, _unique_number, carrier_invites, wait_no_channels, wait_record

from vpbx.domain.timestamps import to_iso, utc_now
from vpbx.storage.store import Store

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(240)]

UA_MOBILE = "+380671234567"
BERLIN = "+4930123456"
SATELLITE = "+881612345678"


def _call(sipp, out, dest: str, hold_ms: int = 0, scenario: str = "uac_call.xml"):
    return sipp.uac(dest, login=out.login, password=out.password, hold_ms=hold_ms, scenario=scenario, timeout_s=60)


def _forbidden(res, out, invites_before: int) -> None:
    """The phone was told 403 and the carrier saw no new INVITE."""
    assert res.final_response("INVITE") == 403, res.describe()
    assert 200 not in res.statuses("INVITE"), res.describe()
    assert len(carrier_invites(out)) == invites_before, "a refused call reached the carrier"


def _use(asterisk, login: str) -> dict:
    return json.loads(asterisk.vpbx("sip", "show", login, "--json").stdout)["outbound"]


def _guard_logged(engine, rule: str, login: str) -> None:
    engine.wait_log(lambda e: f"refused by the {rule} guard" in e.get("message", "") and login in e.get("message", ""),
                    timeout=5)


def test_a_country_not_allowed_is_refused_before_the_trunk(asterisk, sipp, engine):
    caller_id = _unique_number()                      # a Ukrainian number: by default the account calls Ukraine only
    out = _outbound_setup(asterisk, sipp, caller_id, "both")
    engine.start()
    for dest in (BERLIN, SATELLITE):
        res = _call(sipp, out, dest).wait(30)
        _forbidden(res, out, 0)
        _guard_logged(engine, "destination", out.login)
    ok = _call(sipp, out, UA_MOBILE).wait(30)         # its own country goes out
    assert ok.ok and len(carrier_invites(out)) == 1, ok.describe()
    use = _use(asterisk, out.login)
    assert use["allowed"] == "UA" and use["refused_today"] == {"refused_destination": 2}, use
    # the admin allows Germany: the same call now reaches the carrier
    asterisk.vpbx("sip", "set", out.login, "--allow-countries", "UA,DE")
    ok = _call(sipp, out, BERLIN).wait(30)
    assert ok.ok, ok.describe()
    got = carrier_invites(out)
    assert len(got) == 2 and got[1].request_uri.startswith(f"sip:{BERLIN}@"), [str(m) for m in got]
    use = _use(asterisk, out.login)
    assert use["today_calls"] == 2 and use["in_progress"] == 0, use
    wait_no_channels(asterisk)


def test_over_the_concurrent_cap_is_refused(asterisk, sipp, engine):
    caller_id = _unique_number()
    out = _outbound_setup(asterisk, sipp, caller_id, "both")
    asterisk.vpbx("sip", "set", out.login, "--max-outbound-calls", "2")
    engine.start()
    held = [_call(sipp, out, UA_MOBILE, hold_ms=8000) for _ in range(2)]
    out.carrier.wait_for(lambda msgs: len([m for m in msgs if m.is_request and m.method == "INVITE"]) >= 2,
                         timeout=20)
    third = _call(sipp, out, UA_MOBILE).wait(30)
    _forbidden(third, out, 2)
    _guard_logged(engine, "concurrent", out.login)
    assert _use(asterisk, out.login)["in_progress"] == 2
    for proc in held:
        res = proc.wait(40)
        assert res.ok, res.describe()
    wait_no_channels(asterisk)
    # both ended: the account may call again
    again = _call(sipp, out, UA_MOBILE).wait(30)
    assert again.ok and len(carrier_invites(out)) == 3, again.describe()
    use = _use(asterisk, out.login)
    assert use["refused_today"] == {"refused_concurrent": 1} and use["today_calls"] == 3, use


def test_the_daily_minutes_cut_a_call_and_refuse_the_next(asterisk, sipp, engine):
    caller_id = _unique_number()
    out = _outbound_setup(asterisk, sipp, caller_id, "both")
    asterisk.vpbx("sip", "set", out.login, "--daily-minutes", "1")
    # today the account already talked 50 s (an earlier call's record): 10 s of its minute are left
    with Store.open(asterisk.cfg.db) as st:
        earlier = f"earlier-{uuid.uuid4().hex}"
        st.calls.add(earlier, caller_id, caller_id, "outbound", started_at=to_iso(utc_now()), sip_account=out.login)
        st.calls.finish(earlier, ended_at=to_iso(utc_now()), billsec=50, disposition="answered")
    engine.start()
    started = time.monotonic()
    # the phone would hold on for 60 s; Asterisk hangs the trunk leg up when the 10 s are used, vpbx the phone's
    res = _call(sipp, out, UA_MOBILE, hold_ms=60000, scenario="uac_remote_bye.xml").wait(90)
    elapsed = time.monotonic() - started
    assert res.ok and res.saw("BYE", "received"), res.describe()
    assert elapsed < 40, f"the call was not cut: it lasted {elapsed:.1f} s"
    record = wait_record(asterisk, caller_id)
    assert record["sip_account"] == out.login and record["disposition"] == "answered", record
    assert 5 <= record["billsec"] <= 11, record            # 10 s left, counted from the dial
    # the minute is used up: the next call does not go out
    refused = _call(sipp, out, UA_MOBILE).wait(30)
    _forbidden(refused, out, 1)
    _guard_logged(engine, "daily", out.login)
    use = _use(asterisk, out.login)
    assert use["today_minutes"] >= 1.0 and use["refused_today"] == {"refused_daily": 1}, use
    # the admin lifts the cap: calls go out again
    asterisk.vpbx("sip", "set", out.login, "--daily-minutes", "none")
    ok = _call(sipp, out, UA_MOBILE).wait(30)
    assert ok.ok and len(carrier_invites(out)) == 2, ok.describe()
    wait_no_channels(asterisk)
