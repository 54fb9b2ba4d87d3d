"""The number lifecycle on live calls: real Asterisk, `vpbx serve`, sipp as the carrier's caller and as the phone.

A suspended number's caller hears the "number unavailable" prompt and nobody is rung; a top-up that clears the debt
puts the routing back. An ended trial is refused the same way. A call to an account's toll-free number is rated by
the caller's prefix and charged to the account's ledger.
"""
from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Engine
from test_engine_asterisk import (
    CALLER,
    _login,
    _unique_number,
    calls_for,
    invites,
    phone,
    wait_no_channels,
    wait_record,
)

from vpbx.storage.store import Store

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]

_seq = itertools.count(1)
UNAVAILABLE = "sound:vpbx/number-unavailable"
SEED_TARIFF = "tariffs/seed-ru.toml"
RATES = "tariffs/tollfree-rates-ru.csv"


@pytest.fixture(scope="module")
def priced(asterisk):
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    asterisk.vpbx("tariff", "load", str(repo / SEED_TARIFF))
    asterisk.vpbx("rates", "import", str(repo / RATES))
    return True


def _account(asterisk, topup: str) -> str:
    name = f"cust{os.getpid() % 10000}x{next(_seq)}"
    asterisk.vpbx("account", "add", name, "--email", f"{name}@example.com")
    asterisk.vpbx("account", "topup", name, topup)
    return name


def _played(eng: Engine, call_id: str) -> list[str]:
    return [e["media"] for e in eng.playbacks(call_id) if e["ari_event"] == "PlaybackFinished"]


def _call(sipp, number: str, caller: str = CALLER, hold_ms: int = 1000):
    call = sipp.uac(number, from_user=caller, scenario="uac_remote_bye.xml", hold_ms=hold_ms, timeout_s=30)
    res = call.wait(40)
    assert res.ok, res.describe()
    return res


def test_suspended_number_hears_unavailable_until_topped_up(asterisk, sipp, engine, priced):
    account = _account(asterisk, "20000")
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "assign", number, "--account", account, "--end-user", "Olena Kovalenko")
    login = _login("susp")
    ph = phone(asterisk, sipp, login, hold_ms=60000)
    asterisk.vpbx("number", "route", number, f"sip:{login}")
    asterisk.vpbx("reload")
    engine.start()

    # debt: the account goes below zero -> its numbers are suspended
    balance = json.loads(asterisk.vpbx("account", "show", account, "--json").stdout)["balance"]
    asterisk.vpbx("account", "adjust", "--ref", "test: into debt", account, "--", f"-{balance // 100 + 1}")
    assert json.loads(asterisk.vpbx("number", "show", number, "--json").stdout)["status"] == "suspended"
    res = _call(sipp, number)
    assert res.final_response("INVITE") == 200 and res.saw("BYE", "received"), res.describe()
    record = wait_record(asterisk, number)
    assert _played(engine, record["call_id"]) == [UNAVAILABLE], engine.playbacks()
    assert invites(ph) == [], "a suspended number's call was forwarded to the phone"
    assert record["reached"] in (None, ""), record

    # a top-up back to >= 0 reactivates the number: the phone rings again
    asterisk.vpbx("account", "topup", account, "10")
    assert json.loads(asterisk.vpbx("number", "show", number, "--json").stdout)["status"] == "active"
    res = sipp.uac(number, from_user=CALLER, hold_ms=1000, timeout_s=30).wait(40)   # the caller hangs up
    assert res.ok and res.final_response("INVITE") == 200, res.describe()
    assert len(invites(ph)) == 1, "the reactivated number's call did not reach the phone"
    wait_no_channels(asterisk)
    ph.stop()


def test_expired_trial_is_refused(asterisk, sipp, engine, priced):
    account = _account(asterisk, "1")
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "trial", number, "--account", account, "--hours", "1")
    asterisk.vpbx("number", "route", number, "hangup", "--greeting", "welcome")
    asterisk.vpbx("reload")
    engine.start()

    res = _call(sipp, number)            # the live trial serves calls
    assert res.final_response("INVITE") == 200
    first = wait_record(asterisk, number)
    assert _played(engine, first["call_id"]) == ["sound:vpbx/welcome"], engine.playbacks()

    # the trial ends (its clock is moved back instead of waiting an hour)
    with Store.open(asterisk.cfg.db) as store:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
        store.numbers.update([number], trial_until=past)
    res = _call(sipp, number)
    assert res.saw("BYE", "received") or res.final_response("INVITE") != 200, res.describe()
    rows = calls_for(asterisk, number)
    assert len(rows) == 2, rows
    second = wait_record(asterisk, number)
    assert second["call_id"] != first["call_id"]
    assert _played(engine, second["call_id"]) == [UNAVAILABLE], engine.playbacks()
    # and the billing run frees the number
    out = json.loads(asterisk.vpbx("billing", "run", "--json").stdout)
    assert number in out["trials_ended"], out
    shown = json.loads(asterisk.vpbx("number", "show", number, "--json").stdout)
    assert shown["status"] == "available" and shown["account"] is None, shown
    wait_no_channels(asterisk)


def test_tollfree_call_is_rated_and_charged(asterisk, sipp, engine, priced):
    account = _account(asterisk, "20000")
    number = f"+7800555{(os.getpid() % 100):02d}{next(_seq):02d}"
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "assign", number, "--account", account, "--end-user", "Ivan Petrov")
    asterisk.vpbx("number", "route", number, "hangup", "--greeting", "welcome")
    asterisk.vpbx("reload")
    engine.start()
    before = json.loads(asterisk.vpbx("account", "show", account, "--json").stdout)["balance"]

    kazan = "+78432123456"               # prefix 78432: 3.50 per started minute in the seed rates
    res = _call(sipp, number, caller=kazan)
    assert res.final_response("INVITE") == 200, res.describe()
    record = wait_record(asterisk, number)
    assert record["caller"] == kazan and record["billsec"] >= 1, record
    rows = json.loads(asterisk.vpbx("account", "transactions", account, "--json").stdout)
    calls = [r for r in rows if r["kind"] == "call"]
    minutes = -(-record["billsec"] // 60)
    assert [(r["call_id"], r["amount"]) for r in calls] == [(record["call_id"], -350 * minutes)], rows
    after = json.loads(asterisk.vpbx("account", "show", account, "--json").stdout)["balance"]
    assert after == before - 350 * minutes
    assert calls_for(asterisk, number)[0]["cost"] == 350 * minutes
    asterisk.vpbx("account", "check")
    wait_no_channels(asterisk)
