"""Prepaid outbound calls on real Asterisk (`vpbx serve`; sipp as the SIP account's phone, as the carrier behind the
trunk and as an outside caller): rated by destination and increment, paid from plan credit then balance, refused at no
money before the carrier sees anything, cut when the money runs out, a forward to a mobile charged to the number's
owner, a customer's own trunk uncharged, and simultaneous calls that cannot overspend. The pure rules are in
tests/test_prepaid.py (wallet) and tests/test_outbound_rating.py / tests/test_charging.py (rates, who pays).
"""
from __future__ import annotations

import itertools
import json
import os
import time
from datetime import date
from pathlib import Path

import pytest
from test_engine_asterisk import _outbound_setup, _unique_number, carrier_invites, wait_no_channels, wait_record

from vpbx.storage.store import Store

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(300)]

UA_MOBILE = "+380671234567"
CALLER = "+380501234567"
REPO = Path(__file__).resolve().parent.parent
_seq = itertools.count(1)


def _rates(asterisk, tmp_path: Path, *lines: str) -> None:
    path = tmp_path / f"outbound-{next(_seq)}.csv"
    path.write_text("prefix,price,increment,connection,description\n" + "\n".join(lines) + "\n")
    asterisk.vpbx("rates", "import", "--outbound", str(path))


def _account(asterisk, topup: str | None) -> str:
    name = f"pp{os.getpid() % 10000}x{next(_seq)}"
    asterisk.vpbx("account", "add", name, "--email", f"{name}@example.com")
    if topup:
        asterisk.vpbx("account", "topup", name, topup)
    return name


def _balance(asterisk, account: str) -> int:
    return json.loads(asterisk.vpbx("account", "show", account, "--json").stdout)["balance"]


def _call_rows(asterisk, account: str) -> list[dict]:
    rows = json.loads(asterisk.vpbx("account", "transactions", account, "--json").stdout)
    return [r for r in rows if r["kind"] == "call"]


def _paying_account(asterisk, sipp, tmp_path, topup: str | None, rate: str):
    """A SIP account calling out through a sipp carrier, paid by a new customer's account with `topup`."""
    out = _outbound_setup(asterisk, sipp, _unique_number(), "both")
    account = _account(asterisk, topup)
    asterisk.vpbx("sip", "set", out.login, "--account", account)
    _rates(asterisk, tmp_path, rate)
    return out, account


def _caller_id(asterisk, out) -> str:
    return json.loads(asterisk.vpbx("sip", "show", out.login, "--json").stdout)["caller_id"]


def _call(sipp, out, dest: str = UA_MOBILE, hold_ms: int = 2000, scenario: str = "uac_call.xml"):
    return sipp.uac(dest, login=out.login, password=out.password, hold_ms=hold_ms, scenario=scenario, timeout_s=90)


def _wait_charged(asterisk, caller_id: str) -> dict:
    record = wait_record(asterisk, caller_id)
    for _ in range(50):
        with Store.open(asterisk.cfg.db) as st:
            row = st.calls.get(record["call_id"])
        if row is not None and row.get("cost") is not None:
            return row
        time.sleep(0.2)
    raise AssertionError(f"call {record['call_id']} was not charged: {row}")


def test_a_call_is_charged_by_its_rate_and_increment(asterisk, sipp, engine, tmp_path):
    # 1.20 a minute, the first 30 s then per 6 s, 0.50 to connect: a 2 s call costs 0.50 + 1.20 * 30 / 60 = 1.10
    out, account = _paying_account(asterisk, sipp, tmp_path, "100", "380,1.20,30/6,0.50,Ukraine mobile")
    engine.start()
    res = _call(sipp, out).wait(60)
    assert res.ok, res.describe()
    row = _wait_charged(asterisk, _caller_id(asterisk, out))
    assert row["cost"] == 110 and row["account"] == account and row["rate_prefix"] == "380", row
    assert 1 <= row["billsec"] <= 4, row
    ledger = _call_rows(asterisk, account)
    assert [r["amount"] for r in ledger] == [-110], ledger
    assert _balance(asterisk, account) == 10000 - 110
    asterisk.vpbx("account", "check")
    wait_no_channels(asterisk)


def test_no_money_is_refused_with_a_prompt_before_the_carrier_sees_anything(asterisk, sipp, engine, tmp_path):
    out, account = _paying_account(asterisk, sipp, tmp_path, None, "380,1.20,60/60,,Ukraine mobile")
    engine.start()
    res = _call(sipp, out, scenario="uac_remote_bye.xml").wait(60)
    # the phone is answered, hears why, and vpbx hangs up; nothing was dialled
    assert res.ok and res.saw("BYE", "received"), res.describe()
    assert not carrier_invites(out), "a call with no money reached the carrier"
    caller_id = _caller_id(asterisk, out)
    record = wait_record(asterisk, caller_id)
    assert record["disposition"] == "no_credit" and record["sip_account"] == out.login, record
    use = json.loads(asterisk.vpbx("sip", "show", out.login, "--json").stdout)["outbound"]
    assert use["refused_today"] == {"refused_credit": 1}, use
    engine.wait_log(lambda e: "cannot pay its first" in e.get("message", ""), timeout=5)
    # a top-up lets the next call out
    asterisk.vpbx("account", "topup", account, "5")
    ok = _call(sipp, out).wait(60)
    assert ok.ok and len(carrier_invites(out)) == 1, ok.describe()
    assert _balance(asterisk, account) == 500 - 120
    wait_no_channels(asterisk)


def test_a_call_is_cut_when_the_money_runs_out(asterisk, sipp, engine, tmp_path):
    # 0.60 a minute per second = 1 minor unit a second; 0.20 pays 20 s
    out, account = _paying_account(asterisk, sipp, tmp_path, "0.20", "380,0.60,1/1,,Ukraine mobile")
    engine.start()
    res = _call(sipp, out, scenario="uac_remote_bye.xml").wait(90)      # the phone would talk on for 60 s
    assert res.ok and res.saw("BYE", "received"), res.describe()
    caller_id = _caller_id(asterisk, out)
    row = _wait_charged(asterisk, caller_id)
    assert 18 <= row["billsec"] <= 22, f"cut after {row['billsec']} s, computed 20 s: {row}"
    assert row["cost"] == min(20, row["billsec"]), row
    assert _balance(asterisk, account) == 20 - row["cost"] >= 0
    engine.wait_log(lambda e: "money runs out" in e.get("message", ""), timeout=5)     # the warning beep
    engine.wait_log(lambda e: "cut after" in e.get("message", ""), timeout=5)
    asterisk.vpbx("account", "check")
    wait_no_channels(asterisk)


def test_plan_credit_is_spent_before_the_balance_and_renewed(asterisk, sipp, engine, tmp_path):
    asterisk.vpbx("tariff", "load", str(REPO / "tariffs" / "seed-ru.toml"))
    out = _outbound_setup(asterisk, sipp, _unique_number(), "both")
    caller_id = _caller_id(asterisk, out)
    account = _account(asterisk, "5000")
    # plan "prosto": 1 000 a month, of which 200.00 is credit for calls
    asterisk.vpbx("number", "assign", caller_id, "--account", account, "--end-user", "Olena Kovalenko",
                  "--plan", "prosto")
    asterisk.vpbx("sip", "set", out.login, "--account", account)
    _rates(asterisk, tmp_path, "380,150,60/60,,Ukraine mobile")          # 150.00 a started minute
    credit = json.loads(asterisk.vpbx("number", "show", caller_id, "--json").stdout)["call_credit"]
    assert credit == 20000
    balance = _balance(asterisk, account)
    engine.start()
    assert _call(sipp, out).wait(60).ok
    _wait_charged(asterisk, caller_id)
    assert json.loads(asterisk.vpbx("number", "show", caller_id, "--json").stdout)["call_credit"] == 5000
    assert _balance(asterisk, account) == balance and not _call_rows(asterisk, account)   # all from credit
    assert _call(sipp, out).wait(60).ok
    for _ in range(50):     # the second call: 50.00 of credit left, 100.00 from the balance
        if _call_rows(asterisk, account):
            break
        time.sleep(0.2)
    assert [r["amount"] for r in _call_rows(asterisk, account)] == [-10000]
    assert json.loads(asterisk.vpbx("number", "show", caller_id, "--json").stdout)["call_credit"] == 0
    assert _balance(asterisk, account) == balance - 10000
    # the next period begins: the credit is renewed to the plan's, not carried over or added to
    with Store.open(asterisk.cfg.db) as st:
        st.numbers.update([caller_id], credit_renews_on=date.today().isoformat())
    summary = json.loads(asterisk.vpbx("billing", "run", "--json").stdout)
    assert caller_id in summary["credit_refilled"], summary
    assert json.loads(asterisk.vpbx("number", "show", caller_id, "--json").stdout)["call_credit"] == 20000
    asterisk.vpbx("account", "check")
    wait_no_channels(asterisk)


def test_a_forward_to_a_mobile_is_charged_to_the_numbers_owner(asterisk, sipp, engine, tmp_path):
    asterisk.vpbx("tariff", "load", str(REPO / "tariffs" / "seed-ru.toml"))
    out = _outbound_setup(asterisk, sipp, _unique_number(), "both")     # its number and trunk carry the forward
    number = _caller_id(asterisk, out)
    account = _account(asterisk, "5000")
    asterisk.vpbx("number", "assign", number, "--account", account, "--end-user", "Ivan Petrov")
    asterisk.vpbx("number", "route", number, f"tel:{UA_MOBILE}")
    _rates(asterisk, tmp_path, "380,3,60/60,,Ukraine mobile")
    asterisk.vpbx("reload")
    balance = _balance(asterisk, account)
    engine.start()
    res = sipp.uac(number, from_user=CALLER, hold_ms=2000, timeout_s=60).wait(60)
    assert res.ok, res.describe()
    assert len(carrier_invites(out)) == 1
    row = _wait_charged(asterisk, number)
    assert row["reached"] == f"tel:{UA_MOBILE}" and row["account"] == account and row["cost"] == 300, row
    ledger = _call_rows(asterisk, account)
    assert [(r["amount"], r["number"]) for r in ledger] == [(-300, number)], ledger
    assert _balance(asterisk, account) == balance - 300
    asterisk.vpbx("account", "check")
    wait_no_channels(asterisk)


def test_a_call_through_the_customers_own_trunk_is_not_charged(asterisk, sipp, engine, tmp_path):
    out, account = _paying_account(asterisk, sipp, tmp_path, "1", "380,100,60/60,,Ukraine mobile")
    asterisk.vpbx("trunk", "set", out.trunk, "--account", account)      # the customer's own operator
    engine.start()
    res = _call(sipp, out).wait(60)                  # 100.00 a minute: the balance of 1.00 could not pay it
    assert res.ok and len(carrier_invites(out)) == 1, res.describe()
    caller_id = _caller_id(asterisk, out)
    record = wait_record(asterisk, caller_id)
    with Store.open(asterisk.cfg.db) as st:
        row = st.calls.get(record["call_id"])
    assert row is not None and not row.get("cost") and not row.get("account"), row
    assert not _call_rows(asterisk, account) and _balance(asterisk, account) == 100
    wait_no_channels(asterisk)


def test_twenty_simultaneous_calls_cannot_overspend(asterisk, sipp, engine, tmp_path):
    # 1 minor unit a second, 0.45 in all: twenty calls that would each talk 20 s share 45 s
    out, account = _paying_account(asterisk, sipp, tmp_path, "0.45", "380,0.60,1/1,,Ukraine mobile")
    asterisk.vpbx("sip", "set", out.login, "--channels", "25", "--max-outbound-calls", "25")
    engine.start()
    calls = [_call(sipp, out, hold_ms=20000) for _ in range(20)]
    for proc in calls:
        proc.wait(120)
    wait_no_channels(asterisk, timeout=30)
    caller_id = _caller_id(asterisk, out)
    with Store.open(asterisk.cfg.db) as st:
        rows = [r for r in st.calls.recent(caller_id) if r.get("sip_account") == out.login]
    assert len(rows) == 20, rows
    charged = -sum(r["amount"] for r in _call_rows(asterisk, account))
    balance = _balance(asterisk, account)
    assert balance >= 0, f"overspent: balance {balance}"
    assert charged + balance == 45 and charged > 0, (charged, balance)
    talked = sum(r["billsec"] for r in rows)
    assert charged <= 45 and talked <= 45 + 2 * 20, (talked, charged)      # each cut within its rounding
    asterisk.vpbx("account", "check")
