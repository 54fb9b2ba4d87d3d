"""Prepaid control (vpbx.billing.prepaid): holds, quotas in whole intervals, the capped charge, and the rule that no
combination of simultaneous calls spends more than the account has. Pure: no Asterisk, no database."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vpbx.billing.outbound import OutboundRate, outbound_cost
from vpbx.billing.prepaid import QUOTA_SECONDS, Wallet

PER_MINUTE = OutboundRate("49", price=600, initial=60, increment=60)          # 6.00 a started minute
FINE = OutboundRate("7495", price=120, initial=30, increment=6, connection=50)  # 30/6 and a connection charge
PER_SECOND = OutboundRate("380", price=60, initial=1, increment=1)             # 1 minor unit a second


def test_hold_takes_the_first_interval_or_nothing():
    wallet = Wallet(600)
    assert wallet.hold("a", PER_MINUTE) == 60
    assert wallet.available == 0
    assert wallet.hold("b", PER_MINUTE) == 0          # nothing left for a second call
    assert not wallet.holds("b") and wallet.available == 0
    assert wallet.close("a", 0) == (0, 0)              # never talked: released for nothing
    assert wallet.available == 600 and wallet.money == 600


def test_first_interval_includes_the_connection_charge():
    cost = outbound_cost(FINE, 30)                    # 50 + 120 * 30 / 60 = 110
    assert cost == 110
    assert Wallet(cost - 1).hold("a", FINE) == 0
    wallet = Wallet(cost)
    assert wallet.hold("a", FINE) == 30 and wallet.available == 0


def test_extend_grants_whole_intervals_up_to_the_money():
    wallet = Wallet(1000)                             # 1000 / 600 a minute: one minute and no more
    wallet.hold("a", PER_MINUTE)
    assert wallet.extend("a") == 60                   # a second minute costs 1200 > 1000
    wallet = Wallet(5000)
    wallet.hold("a", PER_MINUTE)
    assert wallet.extend("a") == 60 + QUOTA_SECONDS
    assert wallet.extend("a", quota=600) == 480       # 8 minutes = 4800 <= 5000 < 5400
    assert wallet.extend("a") == 480


def test_fine_increments_are_granted_in_sixes():
    wallet = Wallet(110 + 12 * 3)                     # the first 30 s, then three 6 s steps (12 each)
    assert wallet.hold("a", FINE) == 30
    assert wallet.extend("a", quota=600) == 48


def test_close_charges_the_seconds_talked_capped_at_the_grant():
    wallet = Wallet(10_000)
    wallet.hold("a", PER_SECOND)
    wallet.extend("a", quota=100)
    assert wallet.granted("a") == 101
    assert wallet.close("a", 42) == (42, 42)
    assert wallet.money == 10_000 - 42
    wallet.hold("b", PER_SECOND)                      # granted 1 s: a talk reported longer is charged 1 s
    assert wallet.close("b", 30) == (1, 1)


def test_rekey_moves_a_hold_to_the_leg():
    wallet = Wallet(600)
    wallet.hold("call", PER_MINUTE)
    wallet.rekey("call", "leg")
    assert wallet.holds("leg") and not wallet.holds("call") and wallet.granted("leg") == 60


def test_idle_only_without_holds_and_pending_charges():
    wallet = Wallet(600)
    assert wallet.idle
    wallet.hold("a", PER_MINUTE)
    assert not wallet.idle
    wallet.close("a", 10)
    wallet.pending += 1
    assert not wallet.idle
    wallet.pending -= 1
    assert wallet.idle


OPS = st.lists(st.tuples(st.sampled_from(["hold", "extend", "close"]), st.integers(0, 19),
                         st.sampled_from([PER_MINUTE, FINE, PER_SECOND]), st.integers(0, 400)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(money=st.integers(0, 20_000), ops=OPS)
def test_simultaneous_calls_never_spend_more_than_the_money(money, ops):
    """Whatever 20 calls do in whatever order, the money never goes below zero and every charge is covered."""
    wallet = Wallet(money)
    charged = 0
    for op, leg, rate, value in ops:
        key = f"leg{leg}"
        if op == "hold":
            wallet.hold(key, rate)
        elif op == "extend":
            wallet.extend(key, quota=value)
        else:
            _seconds, cost = wallet.close(key, value)
            charged += cost
        assert wallet.available >= 0
    for leg in range(20):
        charged += wallet.close(f"leg{leg}", 10 ** 6)[1]
    assert charged == money - wallet.money
    assert wallet.money >= 0
