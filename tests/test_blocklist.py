"""The caller blocklist without Asterisk: the pure decision (vpbx.domain.blocklist), exhaustively over a small
universe of rules and calls and by hypothesis over random ones; what a blocked caller hears (vpbx.dialplan.blocklist
through the call machine); the store's one-query lookup against the decision; the engine's resolve and its write;
the service and `vpbx block ...` (every refusal one `Error:` line, nothing written). Real calls:
tests/test_blocklist_asterisk.py.
"""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from clitools import dump, ok
from vpbx.cli import main
from vpbx.dialplan import machine
from vpbx.dialplan import model as dm
from vpbx.dialplan.blocklist import BLOCKED_NODE, blocked_flow, reject_blocked
from vpbx.domain.blocklist import (
    ANONYMOUS,
    BlockRule,
    caller_key,
    candidates,
    decide,
    in_scope,
    matches,
    parse_caller,
)
from vpbx.domain.errors import ConflictError, NotFoundError, ValidationError
from vpbx.domain.records import Account, Number, SipAccount
from vpbx.engine.calls import _note_block, resolve
from vpbx.engine.events import CallStart
from vpbx.services import blocklist as service
from vpbx.storage.store import Store

N1 = "+380441234567"
N2 = "+380442718459"
CALLER = "+380671112233"
OTHER = "+74951234567"


# ---- parsing what the command line names ---------------------------------------------------------------------------
@pytest.mark.parametrize("text,prefix,stored", [
    (CALLER, False, CALLER), ("+12025550123", False, "+12025550123"), ("anonymous", False, ANONYMOUS),
    ("Anonymous", False, ANONYMOUS), ("+7", True, "+7"), ("+7495", True, "+7495"), (CALLER, True, CALLER),
    ("+123456789012345", True, "+123456789012345"),
])
def test_parse_caller_accepts(text: str, prefix: bool, stored: str) -> None:
    assert parse_caller(text, prefix) == stored


@pytest.mark.parametrize("text,prefix,needle", [
    ("+7495", False, "add --prefix"), ("380671112233", False, "with + and the country code"),
    ("", False, "not an E.164 number"), ("+0671112233", False, "not an E.164 number"),
    ("+38067 1112233", False, "not an E.164 number"), ("+3806711122334455", False, "not an E.164 number"),
    (f"{CALLER}\n", False, "not an E.164 number"), ("+３８０６７１１１２２３３", False, "not an E.164 number"),
    ("anonymous", True, "drop --prefix"), ("+", True, "1-15 digits"), ("+0", True, "1-15 digits"),
    ("7495", True, "1-15 digits"), ("+1234567890123456", True, "1-15 digits"), ("+74*", True, "1-15 digits"),
])
def test_parse_caller_refuses_naming_the_fix(text: str, prefix: bool, needle: str) -> None:
    with pytest.raises(ValidationError, match="caller") as err:
        parse_caller(text, prefix)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("caller,key", [
    (CALLER, CALLER), ("380671112233", CALLER), ("00380671112233", CALLER), (f" {CALLER} ", CALLER),
    ("", ANONYMOUS), ("anonymous", ANONYMOUS), ("Anonymous", ANONYMOUS), ("unknown", ANONYMOUS),
    ("Restricted", ANONYMOUS), ("private", ANONYMOUS), ("withheld", ANONYMOUS), ("unavailable", ANONYMOUS),
    ("0671112233", None), ("+0671112233", None), ("alice", None), ("101", "+101"), ("+38067-111", None),
    ("٣٨٠٦٧", None), ("00", None), ("+", None),
])
def test_how_a_caller_id_is_read(caller: str, key: str | None) -> None:
    assert caller_key(caller) == key


def test_candidates_are_every_prefix_and_the_number() -> None:
    assert candidates(ANONYMOUS) == [ANONYMOUS]
    assert candidates("+380") == ["+3", "+38", "+380"]
    got = candidates(CALLER)
    assert got[0] == "+3" and got[-1] == CALLER and len(got) == len(CALLER) - 1
    long = "+" + "1" * 20                     # longer than E.164: prefixes of up to 15 digits, and itself
    assert candidates(long)[-2] == "+" + "1" * 15 and candidates(long)[-1] == long


# ---- the decision: exhaustively over a small universe --------------------------------------------------------------
CALLERS = [(CALLER, False), ("+380671112234", False), (ANONYMOUS, False), ("+3", True), ("+380", True),
           ("+38067", True), (CALLER, True), ("+7", True)]
SCOPES_OF = [(None, None), (N1, None), (N2, None), (None, "acme"), (None, "beta")]
UNIVERSE = [BlockRule(caller=c, prefix=p, number=n, account=a, id=i + 1)
            for i, ((c, p), (n, a)) in enumerate(itertools.product(CALLERS, SCOPES_OF))]
CALLS = [(caller, number, account)
         for caller in (CALLER, "380671112233", "+380671112234", "+380501234567", OTHER, "", "anonymous", "alice",
                        "0671112233")
         for number in (N1, N2) for account in (None, "acme", "beta")]


def _rank(rule: BlockRule) -> tuple[int, int, int]:
    """How specific a rule is, written out the long way (the module doc's order, without the id)."""
    scope = 0 if rule.number is not None else 1 if rule.account is not None else 2
    return scope, 1 if rule.prefix else 0, -len(rule.caller)


def _check(rules: list[BlockRule], caller: str, number: str, account: str | None) -> BlockRule | None:
    got = decide(rules, caller, number, account)
    key = caller_key(caller)
    hits = [r for r in rules if key is not None and in_scope(r, number, account) and matches(r, key)]
    if not hits:
        assert got is None                                  # nothing matches: the call goes on
        return got
    assert got is not None and got in hits                  # any match refuses, by a rule that matches
    assert all(_rank(got) <= _rank(r) for r in hits)        # ... the most specific one
    assert all(got.id <= r.id for r in hits if _rank(r) == _rank(got))     # ties: the oldest
    assert decide(list(reversed(rules)), caller, number, account) == got   # the order rules come in is irrelevant
    return got


def test_every_single_rule_against_every_call() -> None:
    for rule in UNIVERSE:
        for caller, number, account in CALLS:
            got = _check([rule], caller, number, account)
            key = caller_key(caller)
            scoped = rule.number == number if rule.number else rule.account == account if rule.account else True
            caught = key is not None and (key.startswith(rule.caller) and key != ANONYMOUS if rule.prefix
                                          else key == rule.caller)
            assert (got is rule) == (scoped and caught), (rule, caller, number, account)


def test_every_pair_of_rules_against_every_call() -> None:
    for a, b in itertools.combinations(UNIVERSE, 2):
        for caller, number, account in CALLS:
            got = _check([a, b], caller, number, account)
            # adding a rule never lets through a call that one rule alone refused
            if decide([a], caller, number, account) or decide([b], caller, number, account):
                assert got is not None


def test_the_most_specific_rule_answers_for_the_refusal() -> None:
    install = BlockRule(CALLER, id=1)
    prefix_number = BlockRule("+38067", prefix=True, number=N1, prompt="go", id=2)
    account_exact = BlockRule(CALLER, account="acme", id=3)
    longer = BlockRule("+3806711", prefix=True, id=4)
    shorter = BlockRule("+380", prefix=True, id=5)
    rules = [install, prefix_number, account_exact, longer, shorter]
    assert decide(rules, CALLER, N1, "acme") is prefix_number          # the number's own rule first
    assert decide(rules, CALLER, N2, "acme") is account_exact          # then the account's
    assert decide(rules, CALLER, N2, None) is install                  # then install-wide, exact before prefix
    assert decide(rules, "+380671199999", N2, None) is longer          # a longer prefix before a shorter one
    assert decide(rules, "+380501234567", N2, "beta") is shorter
    assert decide(rules, OTHER, N1, "acme") is None
    assert decide([BlockRule(ANONYMOUS, id=1)], "", N1, None).caller == ANONYMOUS
    assert decide([BlockRule("+3", prefix=True, id=1)], "anonymous", N1, None) is None   # no number, no prefix


# ---- the decision: random rules and calls ---------------------------------------------------------------------------
digits = st.text("0123456789", min_size=0, max_size=6)
rule_strategy = st.builds(
    lambda body, prefix, anon, scope, ident: BlockRule(
        caller=ANONYMOUS if anon else "+3" + body if prefix else "+38067" + (body + "000000")[:6],
        prefix=prefix and not anon, number=scope[0], account=scope[1], id=ident),
    digits, st.booleans(), st.sampled_from([False, False, True]), st.sampled_from(SCOPES_OF), st.integers(1, 10_000))
caller_strategy = st.one_of(st.sampled_from(["", "anonymous", "Unknown", "alice", "0671112233"]),
                            digits.map(lambda d: "+38067" + (d + "000000")[:6]),
                            digits.map(lambda d: "38067" + (d + "111111")[:6]), digits.map(lambda d: "+3" + d))


@settings(max_examples=400, deadline=None)
@given(st.lists(rule_strategy, max_size=8, unique_by=lambda r: r.id), caller_strategy, st.sampled_from([N1, N2]),
       st.sampled_from([None, "acme", "beta"]), st.integers(0, 2**32))
def test_decide_over_random_rules(rules: list[BlockRule], caller: str, number: str, account: str | None,
                                  seed: int) -> None:
    got = _check(rules, caller, number, account)
    shuffled = rules[:]
    random.Random(seed).shuffle(shuffled)
    assert decide(shuffled, caller, number, account) == got
    key = caller_key(caller)
    if key is not None:        # the store's pre-selection (rule callers among the caller's prefixes) loses nothing
        assert decide([r for r in rules if r.caller in candidates(key)], caller, number, account) == got


# ---- what a blocked caller hears (the call machine) ------------------------------------------------------------------
def test_refused_before_answer_is_cause_21() -> None:
    assert reject_blocked() == [dm.Hangup(cause=dm.CAUSE_CALL_REJECTED)]
    assert dm.CAUSE_CALL_REJECTED == 21


def test_a_prompt_answers_plays_and_hangs_up_with_disposition_blocked() -> None:
    flow = blocked_flow(Number(N1, channels=4), "go-away")
    state, actions = machine.start(flow, "c1", CALLER, 0, now=10.0)
    assert actions == [dm.Answer(), dm.Play("c1-pb-1", "sound:vpbx/go-away")]
    assert state.node == BLOCKED_NODE and state.disposition == "blocked" and state.reached is None
    state, actions = machine.step(state, dm.Dtmf("1"), now=11.0)            # keys mean nothing
    assert actions == []
    state, actions = machine.step(state, dm.PlaybackFinished("c1-pb-1"), now=13.0)
    assert actions == [dm.Hangup(dm.CAUSE_NORMAL)]
    assert state.finished and state.disposition == "blocked" and state.answered_at == 10.0
    assert "blocked" in dm.DISPOSITIONS


def test_a_caller_hanging_up_during_the_prompt_is_still_blocked() -> None:
    state, _ = machine.start(blocked_flow(Number(N1), "go-away"), "c1", CALLER, 0, now=10.0)
    state, actions = machine.step(state, dm.CallerHungUp(), now=11.0)
    assert state.finished and state.disposition == "blocked"
    assert dm.StopPlayback("c1-pb-1") in actions and not any(isinstance(a, dm.Hangup) for a in actions)


def test_the_prompt_takes_a_channel_like_any_answered_call() -> None:
    state, actions = machine.start(blocked_flow(Number(N1, channels=4), "go-away"), "c1", CALLER, 4, now=1.0)
    assert actions == [dm.Hangup(dm.CAUSE_BUSY)] and state.disposition == "busy"


def test_an_adopted_caller_at_the_block_node_hears_the_prompt_again() -> None:
    state, actions = machine.adopt(blocked_flow(Number(N1), "go-away"), "c1", CALLER, True, now=5.0, at=BLOCKED_NODE)
    assert actions == [dm.Play("c1-r1-pb-1", "sound:vpbx/go-away")] and state.disposition == "blocked"


# ---- the store: one query, the same decision -------------------------------------------------------------------------
def _world(store: Store) -> None:
    """Two numbers of the install and two customers' accounts (rules name them: foreign keys)."""
    store.numbers.add_many([Number(N1), Number(N2)])
    store.accounts.add(Account("acme", "boss@acme.example"))
    store.accounts.add(Account("beta", "boss@beta.example"))


@pytest.fixture
def store(tmp_path: Path):
    st_ = Store.open(tmp_path / "v.db")
    _world(st_)
    yield st_
    st_.close()


def _store_rule(store: Store, rule: BlockRule) -> BlockRule | None:
    try:
        return store.blocklist.add(rule)
    except ConflictError:
        return None


@settings(max_examples=60, deadline=None)
@given(st.lists(rule_strategy, max_size=10), st.lists(caller_strategy, min_size=1, max_size=5))
def test_the_stores_lookup_decides_like_decide_over_every_rule(tmp_path_factory: pytest.TempPathFactory,
                                                               rules: list[BlockRule], callers: list[str]) -> None:
    with Store.open(tmp_path_factory.mktemp("bl") / "v.db") as store:
        _world(store)
        for rule in rules:
            _store_rule(store, replace(rule, id=0))
        stored = store.blocklist.all()
        for caller, number, account in itertools.product(callers, (N1, N2), (None, "acme", "beta")):
            assert store.blocklist.for_call(caller, number, account) == decide(stored, caller, number, account)


def test_the_lookup_uses_the_index(store: Store) -> None:
    plan = " ".join(str(r) for r in store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM blocklist WHERE caller IN ('+3', '+38') AND ((number IS NULL AND "
        "account IS NULL) OR number = ? OR account = ?)", [N1, None]))
    assert "blocklist_one_rule" in plan, plan


def test_one_rule_per_caller_and_scope_and_a_numbers_rules_go_with_it(store: Store) -> None:
    store.blocklist.add(BlockRule(CALLER, number=N1))
    store.blocklist.add(BlockRule(CALLER, number=N2))
    store.blocklist.add(BlockRule(CALLER, prefix=True, number=N1))
    store.blocklist.add(BlockRule(CALLER))
    with pytest.raises(ConflictError, match=rf"caller \{CALLER} is already blocked for number \{N1} \(rule 1\)"):
        store.blocklist.add(BlockRule(CALLER, number=N1, prompt="other"))
    import sqlite3
    with pytest.raises(sqlite3.IntegrityError), store.write():      # the index holds even without the check
        store.conn.execute("INSERT INTO blocklist (caller, prefix, created_at) VALUES (?, 0, 'x')", [CALLER])
    store.numbers.remove(N2)
    assert [(r.caller, r.number) for r in store.blocklist.all()] == [(CALLER, N1), (CALLER, N1), (CALLER, None)]


# ---- the engine's side: resolve (reader thread) and the write (StoreWorker) -----------------------------------------
def test_resolve_finds_the_rule_for_inbound_and_internal_calls_only(store: Store) -> None:
    from vpbx.engine import calls

    store.blocklist.add(BlockRule("+38067", prefix=True, number=N1))
    store.numbers.update([N2], direction="both")
    store.sip_accounts.add(SipAccount("alice", "secret-pass-1", caller_id=N2))
    inbound = resolve(store, CallStart("ch1", CALLER, "inbound", N1, "", False), None)
    assert inbound.blocked is not None and inbound.blocked.caller == "+38067" and inbound.flow is not None
    assert resolve(store, CallStart("ch2", CALLER, "inbound", N2, "", False), None).blocked is None
    assert resolve(store, CallStart("ch3", OTHER, "inbound", N1, "", False), None).blocked is None
    internal = resolve(store, CallStart("ch4", CALLER, "outbound", N1.lstrip("+"), "alice", False), None)
    assert internal.blocked is not None and internal.outbound is None
    # an outbound call (to a number not of this install) is not the blocklist's
    out = resolve(store, CallStart("ch5", CALLER, "outbound", "+380501234567", "alice", False), None)
    assert out.blocked is None
    assert calls.Resolved(None, "").blocked is None


def test_a_refused_call_is_counted_and_recorded_blocked(store: Store) -> None:
    rule = store.blocklist.add(BlockRule(CALLER))
    _note_block("ch1", N1, CALLER, rule.id, "2026-11-22T10:00:00+00:00", refused=True)(store)
    got = store.blocklist.get(rule.id)
    assert (got.blocked_calls, got.last_blocked_at) == (1, "2026-11-22T10:00:00+00:00")
    record = store.calls.get("ch1")
    assert record is not None
    assert (record["disposition"], record["ended_at"], record["answered_at"], record["billsec"], record["caller"],
            record["node"]) == ("blocked", "2026-11-22T10:00:00+00:00", None, 0, CALLER, BLOCKED_NODE)
    # a prompt: counted, the record opened at the block node (a restarted engine adopts the caller there)
    _note_block("ch2", N1, CALLER, rule.id, "2026-11-22T10:01:00+00:00", refused=False)(store)
    record = store.calls.get("ch2")
    assert record is not None and record["ended_at"] is None and record["node"] == BLOCKED_NODE
    assert store.blocklist.get(rule.id).blocked_calls == 2
    # a rule removed meanwhile: the call is recorded, nothing else counted
    store.blocklist.remove([rule.id])
    _note_block("ch3", N1, CALLER, rule.id, "2026-11-22T10:02:00+00:00", refused=True)(store)
    assert store.calls.get("ch3") is not None and store.blocklist.all() == []


# ---- the service ---------------------------------------------------------------------------------------------------
def refused(db: Path, exc: type[Exception], match: str, fn, *args, **kwargs) -> None:
    before = dump(db)
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    assert dump(db) == before, "a refused change wrote something"


def test_service_add_list_remove(store: Store, tmp_path: Path) -> None:
    a = service.add(store, CALLER, comment="spam, twice a day")
    b = service.add(store, "+7495", prefix=True, number=N1, prompt="go-away")
    c = service.add(store, "Anonymous", account="acme")
    d = service.add(store, CALLER, number=N2)
    assert (a.scope, b.scope, c.scope, d.scope) == ("install", "number", "account", "number")
    assert c.caller == ANONYMOUS and b.prefix and b.prompt == "go-away"
    assert service.as_row(b) == {"id": b.id, "caller": "+7495", "prefix": True, "scope": f"number {N1}",
                                 "number": N1, "account": None, "prompt": "go-away", "comment": "",
                                 "blocked_calls": 0, "last_blocked_at": None}
    assert [r.id for r in service.rules(store)] == [a.id, b.id, c.id, d.id]
    assert [r.id for r in service.rules(store, N1)] == [a.id, b.id]          # N2's rule is not N1's
    store.numbers.update([N1], account="acme")
    assert [r.id for r in service.rules(store, N1)] == [a.id, b.id, c.id]    # now acme's numbers' rules too
    db = tmp_path / "v.db"
    refused(db, ConflictError, rf"caller \{CALLER} has 2 block rules .*`vpbx block remove {a.id} {d.id}`",
            service.remove, store, [CALLER])
    refused(db, NotFoundError, "block rule 99 not found", service.remove, store, [str(b.id), "99"])
    refused(db, NotFoundError, r"caller \+380501234567 is not blocked", service.remove, store, ["+380501234567"])
    refused(db, ValidationError, "neither a rule ID nor a caller", service.remove, store, ["alice"])
    refused(db, ValidationError, "give the ID or the caller", service.remove, store, [])
    gone = service.remove(store, [str(a.id), "anonymous", str(a.id)])
    assert [r.id for r in gone] == [a.id, c.id]
    assert [r.id for r in service.rules(store)] == [b.id, d.id]
    assert [r.id for r in service.remove(store, [CALLER, "+7495"])] == [d.id, b.id]   # one rule each now


@pytest.mark.parametrize("args,kwargs,exc,match", [
    ((CALLER,), {}, ConflictError, r"already blocked install-wide \(rule 1\)"),
    (("+7495",), {}, ValidationError, "add --prefix"),
    (("anonymous",), {"prefix": True}, ValidationError, "drop --prefix"),
    ((CALLER,), {"number": N1, "account": "acme"}, ValidationError, "one scope"),
    ((CALLER,), {"number": "+380449999999"}, NotFoundError, r"number \+380449999999 not found"),
    ((CALLER,), {"number": "junk"}, NotFoundError, "number junk not found"),
    ((CALLER,), {"account": "nobody"}, NotFoundError, "account nobody not found"),
    ((CALLER,), {"account": "closed"}, NotFoundError, "account closed was closed"),
    ((CALLER,), {"number": N1, "prompt": "../etc/passwd"}, ValidationError, "prompt name"),
    ((CALLER,), {"number": N1, "comment": "two\nlines"}, ValidationError, "comment contains"),
    ((CALLER,), {"number": N1, "comment": "x" * 256}, ValidationError, "256 characters"),
])
def test_service_refusals_write_nothing(store: Store, tmp_path: Path, args, kwargs, exc, match) -> None:
    service.add(store, CALLER)
    store.accounts.add(Account("closed", "c@closed.example"))
    store.accounts.close("closed")
    refused(tmp_path / "v.db", exc, match, service.add, store, *args, **kwargs)


# ---- `vpbx block ...` ----------------------------------------------------------------------------------------------
class Cli:
    def __init__(self, tmp: Path) -> None:
        self.cfg = tmp / "vpbx.toml"
        self.db = tmp / "vpbx.db"
        ok(self._run("init", "--dir", tmp))

    def _run(self, *args: object) -> Result:
        return CliRunner().invoke(main, ["--config", str(self.cfg), *map(str, args)],
                                  env={"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"})

    def __call__(self, *args: object) -> Result:
        return ok(self._run(*args))

    def json(self, *args: object):
        result = self(*args, "--json")
        assert result.stderr == ""
        return json.loads(result.stdout)

    def fails(self, *args: object, code: int = 1) -> str:
        before = dump(self.db)
        result = self._run(*args)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        assert dump(self.db) == before, "a refused command changed the database"
        if code == 1:
            assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
            assert result.stderr.startswith("Error: ")
        return result.stderr


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path)
    c("number", "add", N1)
    c("number", "add", N2)
    c("account", "add", "acme", "--email", "boss@acme.example")
    return c


def test_block_add_list_remove(cli: Cli) -> None:
    rule = cli.json("block", "add", CALLER, "--comment", "rings at night")
    assert rule == {"id": 1, "caller": CALLER, "prefix": False, "scope": "install", "number": None, "account": None,
                    "prompt": None, "comment": "rings at night", "blocked_calls": 0, "last_blocked_at": None}
    cli.json("block", "add", "+7495", "--prefix", "--number", N1, "--prompt", "go-away")
    cli.json("block", "add", "anonymous", "--account", "acme")
    table = cli("block", "list").stdout
    for text in ("rings at night", "+7495", f"number {N1}", "account acme", "go-away", "blocked_calls"):
        assert text in table, table
    assert [r["id"] for r in cli.json("block", "list", "--number", N1)] == [1, 2]
    assert [r["id"] for r in cli.json("block", "list", "--number", N2)] == [1]
    with Store.open(cli.db) as store:
        store.blocklist.count(2, "2026-11-22T10:00:00+00:00")
    shown = cli.json("block", "list")[1]
    assert (shown["blocked_calls"], shown["last_blocked_at"]) == (1, "2026-11-22T10:00:00+00:00")
    out = cli("block", "remove", "1", "anonymous").stdout
    assert out.splitlines() == [f"Removed block rule 1 ({CALLER} install-wide)",
                                "Removed block rule 3 (anonymous for account acme)"]
    assert [r["id"] for r in cli.json("block", "list")] == [2]
    assert "no block rules" in ok(cli("block", "list", "--number", N2, "--format", "table")).stdout


def test_block_refusals_are_one_error_line_and_change_nothing(cli: Cli) -> None:
    cli("block", "add", CALLER)
    cli("block", "add", CALLER, "--number", N1)
    assert "already blocked install-wide (rule 1)" in cli.fails("block", "add", CALLER)
    assert "add --prefix" in cli.fails("block", "add", "+7495")
    assert "not an E.164 number" in cli.fails("block", "add", "hello")
    assert "one scope" in cli.fails("block", "add", CALLER, "--number", N2, "--account", "acme")
    assert "number +380449999999 not found" in cli.fails("block", "add", CALLER, "--number", "+380449999999")
    assert "account nobody not found" in cli.fails("block", "add", CALLER, "--account", "nobody")
    assert "prompt name" in cli.fails("block", "add", OTHER, "--prompt", "a b")
    assert "2 block rules" in cli.fails("block", "remove", CALLER)
    assert "block rule 7 not found" in cli.fails("block", "remove", "1", "7")
    assert "number +380449999999 not found" in cli.fails("block", "list", "--number", "+380449999999")
    cli.fails("block", "remove", code=2)                     # usage: nothing to remove
    cli.fails("block", "add", CALLER, "--bogus", code=2)
    assert [r["id"] for r in cli.json("block", "list")] == [1, 2]


def test_every_block_command_has_help(cli: Cli) -> None:
    for sub in ("add", "list", "remove"):
        text = cli("block", sub, "--help").stdout
        assert f"block {sub}" in text and len(text.splitlines()) > 4, text
