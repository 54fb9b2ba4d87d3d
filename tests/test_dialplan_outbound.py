"""The outbound decision (vpbx.dialplan.outbound): who may call out, through which trunk, showing which caller ID.

Pure: records in, a decision out. The real-Asterisk side (the carrier's INVITE, Privacy, P-Asserted-Identity) is in
tests/test_engine_asterisk.py.
"""
from __future__ import annotations

import pytest

from vpbx.dialplan import compile_flow
from vpbx.dialplan.model import ForwardNode, HangupNode, Target
from vpbx.dialplan.outbound import (
    ANONYMOUS,
    OUTBOUND_RING_TIMEOUT,
    Internal,
    Outbound,
    Refused,
    Usage,
    admit,
    allowed_destinations,
    decide,
    dialled_number,
    max_outbound_calls,
    may_call_out,
)
from vpbx.domain.records import Number, SipAccount

KYIV = "+380441234567"           # geographic, Ukraine
UA_MOBILE = "+380671234567"
BERLIN = "+4930123456"
RU_TOLLFREE = "+78005553535"


def own(number: str = KYIV, direction: str = "both", trunk: str | None = "carrier", type_: str = "geographic",
        **changes: object) -> Number:
    return Number(number, direction=direction, trunk=trunk, type=type_, route="ivr:main", greeting="welcome",
                  forward_to=("sip:alice",), **changes)  # type: ignore[arg-type]


def alice(caller_id: str | None = KYIV, **guards: object) -> SipAccount:
    return SipAccount("alice", "secret-password-1", caller_id=caller_id, **guards)  # type: ignore[arg-type]


def test_dialled_number_adds_the_plus() -> None:
    assert dialled_number("380671234567") == UA_MOBILE
    assert dialled_number(" +380671234567 ") == UA_MOBILE


def test_a_number_of_this_install_is_an_internal_call() -> None:
    mine = Number("+380449990000")
    assert decide(mine, mine.number, alice(), own(), "default") == Internal(mine)
    # whatever the account: an internal call needs no caller-ID rule
    assert decide(mine, mine.number, None, None, None) == Internal(mine)


def test_same_country_shows_the_caller_id() -> None:
    decision = decide(None, UA_MOBILE, alice(), own(), None)
    assert isinstance(decision, Outbound)
    assert (decision.dest, decision.trunk, decision.caller_id, decision.shown) == (UA_MOBILE, "carrier", KYIV, True)
    assert decision.caller == KYIV


def test_another_country_withholds_the_caller_id() -> None:
    decision = decide(None, BERLIN, alice(allow_countries=("UA", "DE")), own(), None)
    assert isinstance(decision, Outbound)
    assert decision.shown is False and decision.caller == ANONYMOUS
    assert decision.caller_id == KYIV            # the carrier is still told who calls


def test_the_flow_number_rings_the_destination_through_the_trunk_then_hangs_up() -> None:
    decision = decide(None, UA_MOBILE, alice(), own(channels=6, language="ru"), None)
    assert isinstance(decision, Outbound)
    n = decision.number
    assert (n.number, n.trunk, n.route, n.greeting) == (KYIV, "carrier", None, None)
    assert (n.forward_to, n.forward_mode, n.forward_timeout, n.fallback) == (
        (f"tel:{UA_MOBILE}",), "sequential", OUTBOUND_RING_TIMEOUT, "hangup")
    assert (n.channels, n.language) == (6, "ru")   # the caller-ID number's limits and language stay
    flow = compile_flow(n, {}, {}, set(), {})
    first = flow.node(flow.start)
    assert isinstance(first, ForwardNode) and first.targets == (Target("tel", UA_MOBILE),)
    assert isinstance(flow.node(first.fallback), HangupNode)


def test_the_default_trunk_serves_a_number_that_names_none() -> None:
    decision = decide(None, UA_MOBILE, alice(), own(trunk=None), "fallback-trunk")
    assert isinstance(decision, Outbound) and decision.trunk == "fallback-trunk"
    assert decision.number.trunk == "fallback-trunk"


@pytest.mark.parametrize("direction,allowed", [("in", False), ("out", True), ("both", True)])
def test_direction_of_the_caller_id_number(direction: str, allowed: bool) -> None:
    decision = decide(None, UA_MOBILE, alice(), own(direction=direction), None)
    assert isinstance(decision, Outbound) is allowed, decision
    if not allowed:
        assert isinstance(decision, Refused) and "direction 'in'" in decision.reason and "alice" in decision.reason


@pytest.mark.parametrize("direction", ["in", "out", "both"])
def test_a_tollfree_caller_id_never_calls_out(direction: str) -> None:
    """Toll-free is inbound-only whatever the database says (a row written before the rule, or by another tool)."""
    decision = decide(None, UA_MOBILE, alice(RU_TOLLFREE), own(RU_TOLLFREE, direction, type_="tollfree"), None)
    assert isinstance(decision, Refused) and "toll-free" in decision.reason, decision
    assert may_call_out(own(RU_TOLLFREE, direction, type_="tollfree")) is not None


def test_may_call_out() -> None:
    assert may_call_out(own(direction="both")) is None
    assert may_call_out(own(direction="out")) is None
    assert "direction" in (may_call_out(own(direction="in")) or "")


@pytest.mark.parametrize("account,number,default,why", [
    (None, own(), "t", "no SIP account"),
    (alice(caller_id=None), None, "t", "has no caller-ID number"),
    (alice(caller_id="+380449999999"), None, "t", "not a number of this install"),
    (alice(), own(trunk=None), None, "no trunk"),
])
def test_refusals_name_the_reason(account: SipAccount | None, number: Number | None, default: str | None,
                                  why: str) -> None:
    decision = decide(None, UA_MOBILE, account, number, default)
    assert isinstance(decision, Refused) and why in decision.reason, decision


@pytest.mark.parametrize("dest", ["+380", "+999123456789", "+38067123", "+abc", "+"])
def test_a_destination_that_is_no_valid_number_is_refused(dest: str) -> None:
    decision = decide(None, dest, alice(), own(), "t")
    assert isinstance(decision, Refused) and "alice" in decision.reason, decision


def test_trunk_for_tel_targets() -> None:
    from vpbx.dialplan.outbound import trunk_for

    assert trunk_for(own(trunk="mine"), "default") == "mine"
    assert trunk_for(own(trunk=None), "default") == "default"
    assert trunk_for(own(trunk=None), None) is None
    assert trunk_for(None, "default") == "default"


# ---- toll-fraud guards -------------------------------------------------------------------------------------------
JAMAICA = "+18765551234"         # +1 like the US, another country: the classic one-ring scam destination
NEW_YORK = "+12125551234"
WARSAW = "+48221234567"
SATELLITE = "+881612345678"      # Iridium: no country at all
KAZAKH = "+77271234567"          # +7 like Russia
MOSCOW = "+74951234567"


def _dest_rule(decision: object) -> str | None:
    return decision.rule if isinstance(decision, Refused) else None


@pytest.mark.parametrize("dest,allowed", [(UA_MOBILE, True), (KYIV, True), (BERLIN, False), (WARSAW, False),
                                          (SATELLITE, False), (JAMAICA, False)])
def test_by_default_only_the_caller_id_country(dest: str, allowed: bool) -> None:
    decision = decide(None, dest, alice(), own(), "t")
    assert isinstance(decision, Outbound) is allowed, decision
    if not allowed:
        assert _dest_rule(decision) == "destination"
        assert isinstance(decision, Refused) and "alice" in decision.reason and dest in decision.reason
        assert "vpbx sip set alice --allow-" in decision.reason        # the fix is named


@pytest.mark.parametrize("caller_id,dest,allowed", [
    (NEW_YORK, JAMAICA, False), (NEW_YORK, "+12025550123", True),   # one country code, two countries
    (MOSCOW, KAZAKH, False), (MOSCOW, "+78125551234", True),
])
def test_a_shared_country_code_is_not_one_country(caller_id: str, dest: str, allowed: bool) -> None:
    decision = decide(None, dest, alice(caller_id), own(caller_id), "t")
    assert isinstance(decision, Outbound) is allowed, decision


@pytest.mark.parametrize("countries,prefixes,dest,allowed", [
    (("UA", "PL"), (), WARSAW, True),
    (("UA", "PL"), (), BERLIN, False),
    (("PL",), (), UA_MOBILE, False),          # a list replaces the default: the home country is not added
    ((), ("+4930",), BERLIN, True),
    ((), ("+4930",), UA_MOBILE, False),       # prefixes alone: only those
    ((), ("+4989",), BERLIN, False),
    (("UA",), ("+881",), SATELLITE, True),    # a number of no country only through a prefix
    (("UA",), (), SATELLITE, False),
    (("*",), (), SATELLITE, True),
    (("*",), (), JAMAICA, True),
])
def test_allowed_countries_and_prefixes(countries: tuple[str, ...], prefixes: tuple[str, ...], dest: str,
                                        allowed: bool) -> None:
    account = alice(allow_countries=countries, allow_prefixes=prefixes)
    decision = decide(None, dest, account, own(), "t")
    assert isinstance(decision, Outbound) is allowed, decision
    assert (_dest_rule(decision) == "destination") is (not allowed)


def test_allowed_destinations_as_they_apply() -> None:
    assert allowed_destinations(alice(), KYIV) == (("UA",), ())
    assert allowed_destinations(alice(allow_prefixes=("+4930",)), KYIV) == ((), ("+4930",))
    assert allowed_destinations(alice(), "+80012345678") == ((), ())     # a caller ID of no country allows nothing


def test_the_guards_never_touch_internal_calls() -> None:
    mine = Number(BERLIN)
    account = alice(allow_countries=("PL",), max_outbound_calls=0, daily_minutes=1)
    assert decide(mine, BERLIN, account, own(), "t") == Internal(mine)


def _out(account: SipAccount) -> Outbound:
    decision = decide(None, UA_MOBILE, account, own(), "t")
    assert isinstance(decision, Outbound)
    assert decision.login == account.login
    return decision


@pytest.mark.parametrize("channels,cap,active,admitted", [
    (2, None, 0, True), (2, None, 1, True), (2, None, 2, False),   # default: the account's channels
    (5, 1, 0, True), (5, 1, 1, False),
    (2, 0, 0, False),                                             # 0: no outbound calls at all
    (1, 3, 2, True), (1, 3, 3, False),
])
def test_concurrent_outbound_calls(channels: int, cap: int | None, active: int, admitted: bool) -> None:
    account = alice(channels=channels, max_outbound_calls=cap)
    assert max_outbound_calls(account) == (channels if cap is None else cap)
    result = admit(_out(account), account, Usage(active_calls=active))
    assert isinstance(result, Outbound) is admitted, result
    if not admitted:
        assert isinstance(result, Refused) and result.rule == "concurrent" and "--max-outbound-calls" in result.reason


@pytest.mark.parametrize("minutes,used,left", [
    (None, 10 ** 6, None),        # no cap: no limit
    (300, 0, 18000), (300, 17999, 1), (300, 18000, 0), (300, 20000, 0),
    (1, 59, 1),
])
def test_daily_minutes(minutes: int | None, used: int, left: int | None) -> None:
    account = alice(daily_minutes=minutes)
    result = admit(_out(account), account, Usage(seconds_today=used))
    if left == 0:
        assert isinstance(result, Refused) and result.rule == "daily" and "--daily-minutes" in result.reason
    else:
        assert isinstance(result, Outbound) and result.limit_s == left


def test_the_daily_limit_reaches_the_outbound_leg() -> None:
    from vpbx.engine.actions import presentation

    account = alice(daily_minutes=2)
    limited = admit(_out(account), account, Usage(seconds_today=30))
    assert isinstance(limited, Outbound)
    variables = presentation(limited) or {}
    assert variables["TIMEOUT(absolute)"] == "90"
    free = admit(_out(alice()), alice(), Usage())
    assert isinstance(free, Outbound) and "TIMEOUT(absolute)" not in (presentation(free) or {})
