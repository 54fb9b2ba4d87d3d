"""Calls between colleagues in the outbound decision (vpbx.dialplan.outbound): what a phone dialled (`dialled_kind`),
who it reaches (`decide(..., exten=, callee=, callee_own=)` -> Colleague | Refused) and the callee's flow
(`colleague_call`: ring it, then its own no-answer handling), compiled and run by the pure model.

Pure: records in, a decision out, no mocks. The real-Asterisk side is tests/test_colleague_calls.py.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from vpbx.dialplan import compile_flow
from vpbx.dialplan.model import ForwardNode, HangupNode, PlayAndHangupNode, Target, VoicemailNode
from vpbx.dialplan.outbound import (
    COLLEAGUE_CHANNELS,
    EXTENSION,
    LOGIN,
    MIN_NUMBER_DIGITS,
    NUMBER,
    Colleague,
    Internal,
    Outbound,
    Refused,
    colleague_call,
    decide,
    dialled_kind,
    extension_problem,
    forward_problem,
)
from vpbx.dialplan.simulate import run
from vpbx.domain.records import Number, SipAccount

KYIV = "+380441234567"
MOBILE = "+380671234567"
LOGINS = {"alice", "bob", "201", "acc-carol"}


def account(login: str, **fields: object) -> SipAccount:
    return SipAccount(login, "secret-password-1", **fields)  # type: ignore[arg-type]


def own(direction: str = "both", trunk: str | None = "carrier", type_: str = "geographic") -> Number:
    return Number(KYIV, direction=direction, trunk=trunk, type=type_)


ALICE = account("alice", caller_id=KYIV)
BOB = account("bob", extension="201", ring_timeout=15, no_answer="voicemail", vm_emails=("bob@example.com",))


# ---- what a phone dialled ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exten,kind", [
    ("+380441234567", NUMBER), ("380441234567", NUMBER), ("1234567", NUMBER), ("+431119", NUMBER),
    ("123456", EXTENSION), ("201", EXTENSION), ("20", EXTENSION), ("7", EXTENSION),
    ("bob", LOGIN), ("acc-carol", LOGIN), ("j.doe_2", LOGIN), ("1bob", LOGIN), ("B", LOGIN),
    ("", NUMBER), ("*97", NUMBER), ("12#", NUMBER), ("+", NUMBER), ("bob,alice", NUMBER), ("bob\n", NUMBER),
    (" bob", NUMBER), ("_bob", NUMBER), (".bob", NUMBER), ("b" * 65, NUMBER), ("١٢٣", NUMBER), ("sip:bob", NUMBER),
])
def test_dialled_kind_by_shape_alone(exten: str, kind: str) -> None:
    assert dialled_kind(exten) == kind


def test_no_number_of_six_digits_or_fewer_is_taken_for_a_number_without_its_plus() -> None:
    """The rule that tells extensions (<= 6 digits) from numbers: every digit string shorter than MIN_NUMBER_DIGITS is
    an extension, every longer one a number; so an extension never hides a number dialled with its '+'."""
    for length in range(1, 16):
        assert dialled_kind("9" * length) == (EXTENSION if length < MIN_NUMBER_DIGITS else NUMBER)
        assert dialled_kind("+" + "9" * length) == NUMBER


@pytest.mark.parametrize("text,ok", [("20", True), ("201", True), ("123456", True), ("2", False),
                                     ("1234567", False), ("20a", False), ("", False), ("٢٠١", False),
                                     ("201\n", False), (" 201", False), (None, False), (201, False)])
def test_extension_problem(text: object, ok: bool) -> None:
    assert (extension_problem(text) is None) is ok


# ---- who it reaches ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exten", ["bob", "201"])
def test_a_login_or_an_extension_rings_the_colleague(exten: str) -> None:
    decision = decide(None, "", ALICE, own(), "t", exten=exten, callee=BOB, callee_own=None)
    assert isinstance(decision, Colleague) and decision.callee == BOB and decision.problem is None
    assert decision.number.number == "sip:bob"          # the call record names the called account


def test_numbers_keep_their_way_whatever_the_callee() -> None:
    """A number (with '+' or 7+ digits) is never a colleague call, even when the edge passed a callee."""
    mine = Number("+380449990000")
    assert decide(mine, mine.number, ALICE, own(), "t", exten="380449990000", callee=BOB) == Internal(mine)
    decision = decide(None, MOBILE, ALICE, own(), "t", exten=MOBILE, callee=BOB)
    assert isinstance(decision, Outbound) and decision.dest == MOBILE


@pytest.mark.parametrize("exten,caller,callee,why", [
    ("bob", None, BOB, "no SIP account places this call"),
    ("carol", ALICE, None, "alice dialled carol: no SIP account has that login"),
    ("299", ALICE, None, "no SIP account has that extension or all-digit login"),
    ("bob", account("bob"), BOB, "bob dialled bob, its own login"),
    ("201", account("bob"), BOB, "bob dialled 201, its own extension"),
])
def test_refusals_name_the_reason(exten: str, caller: SipAccount | None, callee: SipAccount | None,
                                  why: str) -> None:
    decision = decide(None, "", caller, own(), "t", exten=exten, callee=callee)
    assert isinstance(decision, Refused) and why in decision.reason and decision.rule == "route", decision


def test_no_toll_fraud_guard_applies_to_a_colleague_call() -> None:
    """An account that may not call out at all (no caller ID, outbound calls forbidden, no minutes) still reaches its
    colleagues: the call never reaches a trunk."""
    locked = account("alice", max_outbound_calls=0, daily_minutes=0, allow_prefixes=("+999",))
    decision = decide(None, "", locked, None, None, exten="bob", callee=BOB)
    assert isinstance(decision, Colleague)


# ---- the callee's flow ---------------------------------------------------------------------------------------------
def compiled(callee: SipAccount, callee_own: Number | None = None, default: str | None = None):
    decision = colleague_call(callee, callee_own, default)
    return decision, compile_flow(decision.number, {}, {}, LOGINS, {})


def test_voicemail_flow_rings_for_the_timeout_then_records_for_the_callees_emails() -> None:
    decision, flow = compiled(BOB)
    ring = flow.node(flow.start)
    assert isinstance(ring, ForwardNode) and ring.targets == (Target("sip", "bob"),) and ring.timeout == 15
    assert flow.start == flow.route_start == "sip:bob"
    vm = flow.node(ring.fallback)
    assert isinstance(vm, VoicemailNode) and vm.emails == ("bob@example.com",)
    assert (flow.number, flow.channels, flow.record) == ("sip:bob", COLLEAGUE_CHANNELS, False)
    assert decision.number.language == ""         # prompts in the install's language


@pytest.mark.parametrize("outcome", ["no_answer", "busy"])
def test_no_answer_or_busy_goes_to_voicemail_exactly_as_a_numbers_fallback(outcome: str) -> None:
    _, flow = compiled(BOB)
    steps = run(flow, "alice", **{outcome: {"sip:bob"}})        # type: ignore[arg-type]
    last = steps[-1].state
    assert (last.disposition, last.voicemail) == ("voicemail", True), [s.state.node for s in steps]
    number = Number("+380449990000", forward_to=("sip:bob",), forward_timeout=15, fallback="voicemail",
                    vm_emails=("bob@example.com",))
    like = run(compile_flow(number, {}, {}, LOGINS, {}), "alice", **{outcome: {"sip:bob"}})  # type: ignore[arg-type]
    assert [type(a).__name__ for s in steps for a in s.actions] == [type(a).__name__ for s in like for a in s.actions]


def test_answered_colleague_call_is_bridged() -> None:
    _, flow = compiled(BOB)
    last = run(flow, "alice")[-1].state
    assert (last.disposition, last.reached) == ("answered", "sip:bob")


@pytest.mark.parametrize("no_answer,node", [("hangup", HangupNode), ("play:away", PlayAndHangupNode),
                                            ("voicemail", VoicemailNode)])
def test_each_no_answer_handling(no_answer: str, node: type) -> None:
    _, flow = compiled(account("bob", no_answer=no_answer, vm_emails=("b@example.com",)))
    ring = flow.node(flow.start)
    assert isinstance(ring, ForwardNode) and ring.timeout == 20            # the default ring timeout
    assert isinstance(flow.node(ring.fallback), node)


def test_forward_to_a_mobile_goes_out_through_the_callees_caller_id_numbers_trunk() -> None:
    bob = account("bob", caller_id=KYIV, no_answer=f"tel:{MOBILE}", ring_timeout=10)
    decision, flow = compiled(bob, own(trunk="carrier"), "default")
    assert decision.problem is None and decision.number.trunk == "carrier"
    fwd = decision.forward_as
    assert fwd is not None and (fwd.dest, fwd.trunk, fwd.caller_id, fwd.shown, fwd.login) == \
        (MOBILE, "carrier", KYIV, True, "bob")
    berlin = colleague_call(replace(bob, no_answer="tel:+4930123456"), own(), None).forward_as
    assert berlin is not None and berlin.shown is False           # another country: withheld, as when bob calls out
    ring = flow.node(flow.start)
    assert isinstance(ring, ForwardNode) and ring.mode == "sequential" and ring.timeout == 10
    assert ring.targets == (Target("sip", "bob"), Target("tel", MOBILE))
    assert isinstance(flow.node(ring.fallback), HangupNode)
    last = run(flow, "alice", no_answer={"sip:bob"})[-1].state
    assert (last.disposition, last.reached) == ("answered", f"tel:{MOBILE}")
    assert colleague_call(bob, own(trunk=None), "default").number.trunk == "default"


@pytest.mark.parametrize("caller_id,callee_own,default,why", [
    (None, None, "t", "no caller-ID number"),
    (KYIV, None, "t", "not a number of this install"),
    (KYIV, own(direction="in"), "t", "direction 'in'"),
    (KYIV, own(type_="tollfree"), "t", "toll-free"),
    (KYIV, own(trunk=None), None, "no trunk"),
])
def test_a_forward_that_cannot_go_out_hangs_up_after_the_ring_and_says_why(
        caller_id: str | None, callee_own: Number | None, default: str | None, why: str) -> None:
    bob = account("bob", caller_id=caller_id, no_answer=f"tel:{MOBILE}")
    assert why in (forward_problem(bob, callee_own, default) or "")
    decision, flow = compiled(bob, callee_own, default)
    assert decision.problem is not None and why in decision.problem and MOBILE in decision.problem
    ring = flow.node(flow.start)
    assert isinstance(ring, ForwardNode) and ring.targets == (Target("sip", "bob"),)
    assert isinstance(flow.node(ring.fallback), HangupNode)


def test_recording_follows_the_callee() -> None:
    decision = colleague_call(account("bob", record_calls=True, record_prompt="rec"), None, None)
    assert (decision.number.record_calls, decision.number.record_prompt) == (True, "rec")


# ---- exhaustive: every caller x callee x no-answer x caller-ID state ---------------------------------------------
CALLERS = (None, ALICE, account("alice"), account("bob"))
NO_ANSWERS = ("hangup", "voicemail", "play:away", f"tel:{MOBILE}")
OWNS = (None, own(), own(direction="in"), own(trunk=None), own(type_="tollfree"))


@pytest.mark.parametrize("exten,caller,no_answer,callee_own,default", list(itertools.product(
    ("bob", "201"), CALLERS, NO_ANSWERS, OWNS, (None, "default"))))
def test_every_combination_is_decided_and_compiles(exten: str, caller: SipAccount | None, no_answer: str,
                                                   callee_own: Number | None, default: str | None) -> None:
    bob = account("bob", extension="201", caller_id=KYIV if callee_own else None, no_answer=no_answer,
                  vm_emails=("bob@example.com",))
    decision = decide(None, "", caller, None, default, exten=exten, callee=bob, callee_own=callee_own)
    if caller is None or caller.login == "bob":
        assert isinstance(decision, Refused) and decision.rule == "route"
        return
    assert isinstance(decision, Colleague)
    flow = compile_flow(decision.number, {}, {}, LOGINS, {})
    ring = flow.node(flow.start)
    assert isinstance(ring, ForwardNode) and ring.targets[0] == Target("sip", "bob")
    can_go_out = callee_own is not None and callee_own.direction != "in" and callee_own.type != "tollfree" \
        and bool(callee_own.trunk or default)
    forwards = no_answer.startswith("tel:") and can_go_out
    assert (len(ring.targets) == 2) is forwards
    assert (decision.problem is not None) is (no_answer.startswith("tel:") and not can_go_out)
    assert (decision.forward_as is not None) is forwards
    # whatever happens, an unanswered call ends: answered elsewhere, voicemail, a prompt or a hang-up
    last = run(flow, "alice", no_answer={"sip:bob", f"tel:{MOBILE}"})[-1].state
    assert last.finished and last.disposition in ("voicemail", "missed", "failed", "answered"), last
