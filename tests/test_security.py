"""Brute-force protection (issue 11, test 7): the pure decision (vpbx.domain.security, hypothesis), its storage, the
ACL it renders, the `[security]` config, `vpbx security bans|unban`, and - against the real Asterisk sandbox - a sipp
brute force from one address, a distributed one against one login, and the real phone that keeps working meanwhile.

The real-Asterisk tests print their figures (failures before the ban, time taken, guess rates); they never assert a
timing.
"""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import skip_outside_ci
from hypothesis import given, settings
from hypothesis import strategies as st

from vpbx.asterisk.render.pjsip import parse_sections
from vpbx.asterisk.render.security import ACL_NAME, parse_bans, render_bans
from vpbx.cli import main
from vpbx.config import ConfigError, load_config, render_config
from vpbx.domain.errors import ValidationError
from vpbx.domain.security import (
    REASON_ATTACK,
    REASON_FAILURES,
    Ban,
    Failure,
    Policy,
    Tracker,
    address,
    check_policy,
    network,
    remote_address,
    replay,
)
from vpbx.storage.store import Store

T0 = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fail(addr: str, seconds: float, login: str = "101") -> Failure:
    return Failure(address=addr, login=login, at=at(seconds))


# ---- addresses, networks, the AMI RemoteAddress ----------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("192.0.2.1", "192.0.2.1"), ("127.0.0.1", "127.0.0.1"), ("2001:DB8::1", "2001:db8::1"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
])
def test_address_normalises(value: str, expected: str) -> None:
    assert address(value) == expected


@pytest.mark.parametrize("value", ["", " 192.0.2.1", "192.0.2.1 ", "192.0.2.256", "host.example", "192.0.2.1/32",
                                   "1.2.3.4\n", "::1;deny", None, 3])
def test_address_refuses_what_is_not_one(value: object) -> None:
    with pytest.raises(ValidationError, match="is not an IP address"):
        address(value)


def test_network_full_match_and_host_bits() -> None:
    assert network("192.0.2.0/24") == "192.0.2.0/24"
    assert network("10.0.0.5") == "10.0.0.5/32"
    assert network("2001:db8::/32") == "2001:db8::/32"
    with pytest.raises(ValidationError, match=r"did you mean 192\.0\.2\.0/24"):
        network("192.0.2.1/24")
    for bad in ("192.0.2.0/33", "192.0.2.0/24 ", "any", "", "0/0;x"):
        with pytest.raises(ValidationError, match="is not a CIDR network"):
            network(bad)


@pytest.mark.parametrize("remote, expected", [
    ("IPV4/UDP/127.0.0.2/5062", "127.0.0.2"), ("IPV4/TCP/192.0.2.9/40000", "192.0.2.9"),
    ("IPV6/UDP/2001:db8::5/5060", "2001:db8::5"), ("IPV6/TLS/[2001:db8::6]/5061", "2001:db8::6"),
    ("IPV4/UDP/999.0.0.1/5060", None), ("garbage", None), ("", None), ("IPV4/UDP/127.0.0.2", None),
])
def test_remote_address_of_a_security_event(remote: str, expected: str | None) -> None:
    assert remote_address(remote) == expected


# ---- the policy ------------------------------------------------------------------------------------------------
def test_defaults_trust_nobody_not_even_loopback() -> None:
    p = Policy()
    assert (p.max_failures, p.find_time, p.ban_time, p.trusted) == (5, 600, 3600, ())
    assert not p.is_trusted("127.0.0.1") and not p.is_trusted("::1")
    bans = replay(p, [fail("127.0.0.1", i) for i in range(5)])
    assert [b.address for b in bans] == ["127.0.0.1"]


@pytest.mark.parametrize("kwargs, message", [
    ({"max_failures": 0}, "max_failures must be a whole number from 1 to 1000"),
    ({"find_time": True}, "find_time must be a whole number"),
    ({"ban_time": "60"}, "ban_time must be a whole number"),
    ({"ban_time": 10**9}, "ban_time must be a whole number from 1 to"),
    ({"attack_max_failures": 6}, "attack_max_failures (6) must not exceed max_failures (5)"),
    ({"trusted": "127.0.0.1/32"}, "trusted must be a list of CIDR networks"),
    ({"trusted": ["127.0.0.1/8"]}, "did you mean 127.0.0.0/8"),
])
def test_check_policy_refuses(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        check_policy(**kwargs)  # type: ignore[arg-type]
    assert message in str(exc.value)


# ---- the decision: properties ----------------------------------------------------------------------------------
ADDRS = [f"192.0.2.{i}" for i in range(1, 7)] + ["2001:db8::1", "127.0.0.1"]
LOGINS = ["101", "102", "alice", "admin", ""]
policies = st.builds(
    lambda n, find, ban, k, m, window, trusted: check_policy(
        max_failures=n, find_time=find, ban_time=ban, attack_addresses=k, attack_max_failures=min(m, n),
        attack_window=window, trusted=trusted),
    st.integers(1, 8), st.integers(1, 40), st.integers(1, 120), st.integers(1, 5), st.integers(1, 8),
    st.integers(1, 200),
    st.lists(st.sampled_from(["192.0.2.1/32", "192.0.2.0/30", "2001:db8::/32", "127.0.0.0/8"]), max_size=2))


@st.composite
def failure_runs(draw: st.DrawFn) -> list[Failure]:
    # whole seconds, so failures land exactly on a window's edge
    gaps = draw(st.lists(st.integers(0, 12), min_size=1, max_size=80))
    addrs = draw(st.lists(st.sampled_from(ADDRS), min_size=1, max_size=4, unique=True))
    out, t = [], 0.0
    for gap in gaps:
        t += gap
        out.append(Failure(draw(st.sampled_from(addrs)), draw(st.sampled_from(LOGINS)), at(t)))
    return out


def reference(policy: Policy, failures: list[Failure]) -> list[tuple[str, datetime, str]]:
    """The rule written out naively, by scanning the whole history at every failure: (address, when, reason) of
    every ban. A failure counts unless its address is trusted or banned at that moment; an address is banned once
    its counted failures within find_time since its last ban reach the limit, which is attack_max_failures when the
    login has counted failures from attack_addresses distinct addresses within attack_window, else max_failures."""
    counted: list[Failure] = []
    last_ban: dict[str, tuple[datetime, datetime]] = {}          # address -> (banned_at, until)
    out = []
    for f in failures:
        now, ban = f.at, last_ban.get(f.address)
        if policy.is_trusted(f.address) or (ban is not None and now < ban[1]):
            continue
        counted.append(f)
        attackers = {g.address for g in counted
                     if f.login and g.login == f.login and g.at > now - timedelta(seconds=policy.attack_window)}
        mine = [g for g in counted if g.address == f.address and g.at > now - timedelta(seconds=policy.find_time)
                and (ban is None or g.at > ban[0])]
        attack = len(attackers) >= policy.attack_addresses
        limit = policy.attack_max_failures if attack else policy.max_failures
        if len(mine) >= limit:
            reason = REASON_ATTACK if attack and len(mine) < policy.max_failures else REASON_FAILURES
            out.append((f.address, now, reason))
            last_ban[f.address] = (now, now + timedelta(seconds=policy.ban_time))
    return out


@settings(max_examples=300, deadline=None)
@given(policies, failure_runs())
def test_bans_match_the_rule_written_out(policy: Policy, failures: list[Failure]) -> None:
    got = [(b.address, b.banned_at, b.reason) for b in replay(policy, failures)]
    assert got == reference(policy, failures)


@settings(max_examples=200, deadline=None)
@given(policies, failure_runs())
def test_invariants(policy: Policy, failures: list[Failure]) -> None:
    tracker = Tracker(policy)
    for f in failures:
        tracker.expire(f.at)
        was_banned = tracker.banned(f.address, f.at)
        ban = tracker.record(f)
        if ban is None:
            continue
        assert not policy.is_trusted(ban.address), "a trusted address is never banned"
        assert not was_banned, "an address in a ban is not banned again"
        assert ban.until - ban.banned_at == timedelta(seconds=policy.ban_time)
        assert policy.attack_max_failures <= ban.failures <= policy.max_failures
        assert ban.reason == REASON_FAILURES or ban.failures < policy.max_failures
        assert (f.login in ban.logins or not f.login) and "" not in ban.logins
        assert len(ban.logins) == len(set(ban.logins))
        assert tracker.banned(ban.address, f.at) and not tracker.banned(ban.address, ban.until)
        assert tracker.failures(ban.address) == 0, "a ban starts the address from zero"


@given(st.integers(1, 20), st.integers(1, 100))
def test_one_address_gets_exactly_max_failures_guesses(n: int, rounds: int) -> None:
    policy = check_policy(max_failures=n, attack_max_failures=1)
    bans = replay(policy, [fail("198.51.100.7", i * 0.01, login=f"user{i % 7}") for i in range(n * rounds)])
    assert len(bans) == 1 and bans[0].failures == n, "banned at the n-th failure, then ignored while banned"


def test_failures_outside_find_time_do_not_add_up() -> None:
    policy = check_policy(max_failures=3, find_time=60)
    assert replay(policy, [fail("192.0.2.1", t) for t in (0, 30, 61, 100, 200)]) == []
    assert replay(policy, [fail("192.0.2.1", t) for t in (0, 30, 60)]) == [], "find_time ago is outside"
    bans = replay(policy, [fail("192.0.2.1", t) for t in (0, 30, 59)])
    assert [(b.address, b.failures, b.banned_at) for b in bans] == [("192.0.2.1", 3, at(59))]


def test_trusted_networks_are_never_banned() -> None:
    policy = check_policy(max_failures=2, trusted=["127.0.0.1/32", "10.0.0.0/8"])
    assert replay(policy, [fail(a, i) for i in range(10) for a in ("127.0.0.1", "10.1.2.3")]) == []
    assert [b.address for b in replay(policy, [fail("127.0.0.2", i) for i in range(2)])] == ["127.0.0.2"]


def test_a_login_under_attack_bans_each_further_address_at_its_first_failure() -> None:
    policy = check_policy(max_failures=5, attack_addresses=3, attack_max_failures=1)
    tracker = Tracker(policy)
    assert tracker.record(fail("203.0.113.1", 0)) is None
    assert tracker.record(fail("203.0.113.2", 1)) is None
    assert not tracker.under_attack("101", at(1))
    third = tracker.record(fail("203.0.113.3", 2))      # the third address makes 101 a login under attack
    assert third is not None and third.reason == REASON_ATTACK and third.failures == 1
    fourth = tracker.record(fail("203.0.113.4", 3))
    assert fourth is not None and fourth.failures == 1 and fourth.logins == ("101",)
    # the first two still have their failure on record: their next one bans them
    assert tracker.record(fail("203.0.113.1", 4)) is not None
    # another login is not under attack: a new address gets its max_failures there
    assert [tracker.record(fail("203.0.113.9", 5 + i, login="102")) for i in range(4)] == [None] * 4
    assert tracker.limit("102", at(9)) == 5 and tracker.limit("101", at(9)) == 1


def test_attack_state_lapses_after_attack_window() -> None:
    policy = check_policy(attack_addresses=2, attack_window=100)
    tracker = Tracker(policy)
    tracker.record(fail("203.0.113.1", 0))
    tracker.record(fail("203.0.113.2", 1))
    assert tracker.under_attack("101", at(50))
    assert not tracker.under_attack("101", at(101))


def test_expire_and_lift_forget_the_failures() -> None:
    policy = check_policy(max_failures=3, ban_time=100)
    tracker = Tracker(policy)
    bans = [tracker.record(fail("192.0.2.5", t)) for t in (0, 1, 2)]
    assert bans[:2] == [None, None] and bans[2] is not None
    assert tracker.expire(at(50)) == [] and tracker.banned("192.0.2.5", at(50))
    assert tracker.record(fail("192.0.2.5", 50)) is None and tracker.failures("192.0.2.5") == 0, "ignored while banned"
    assert [b.address for b in tracker.expire(at(102))] == ["192.0.2.5"]
    assert [tracker.record(fail("192.0.2.5", 103 + t)) for t in (0, 1)] == [None, None]
    lifted_at_third = tracker.record(fail("192.0.2.5", 105))
    assert lifted_at_third is not None, "after an expiry it takes max_failures again"
    assert tracker.lift("192.0.2.5") == lifted_at_third and not tracker.banned("192.0.2.5", at(106))
    assert tracker.failures("192.0.2.5") == 0 and tracker.lift("192.0.2.5") is None


def test_restore_takes_back_only_bans_in_force() -> None:
    tracker = Tracker(check_policy(trusted=["10.0.0.0/8"]))
    live = Ban("192.0.2.1", ("101",), 5, at(0), at(3600))
    over = Ban("192.0.2.2", ("101",), 5, at(0), at(10))
    trusted_now = Ban("10.0.0.1", ("101",), 5, at(0), at(3600))
    tracker.restore([live, over, trusted_now], at(20))
    assert tracker.bans() == [live]
    assert tracker.record(fail("192.0.2.1", 21)) is None


# ---- the ACL ---------------------------------------------------------------------------------------------------
def test_render_bans_is_one_acl_of_host_denies() -> None:
    bans = [Ban("192.0.2.1", ("101",), 5, at(0), at(3600)), Ban("2001:db8::1", ("a", "b"), 1, at(1), at(3601),
                                                                  REASON_ATTACK)]
    text = render_bans(bans)
    sections = parse_sections(text)
    assert [(s.name, s.options) for s in sections] == [
        (ACL_NAME, (("type", "acl"), ("deny", "192.0.2.1/32"), ("deny", "2001:db8::1/128")))]
    assert parse_bans(text) == ["192.0.2.1", "2001:db8::1"]
    assert parse_sections(render_bans([])) == [], "no bans: no ACL object at all"
    with pytest.raises(ValidationError):
        render_bans([Ban("0.0.0.0/0", (), 1, at(0), at(1))])    # never a value that could deny everyone


def test_accounts_refuse_a_second_contact_and_include_the_bans() -> None:
    from vpbx.asterisk.render.pjsip import render_pjsip
    from vpbx.domain.records import SipAccount

    text = render_pjsip([SipAccount(login="101", password="secret-pass-1", domain="vpbx.local")], [], "vpbx.local")
    aor = next(s for s in parse_sections(text) if s.get("type") == "aor")
    assert (aor.get("max_contacts"), aor.get("remove_existing"), aor.get("remove_unavailable")) == ("1", "no", "yes")
    assert int(aor.get("qualify_frequency") or 0) > 0, "remove_unavailable needs qualify to tell a dead contact"
    # from vpbx's own directory in Asterisk's config dir: the only place there the engine's unit may write
    assert text.rstrip().endswith("#tryinclude vpbx-bans/pjsip_bans_vpbx.conf")


# ---- storage ---------------------------------------------------------------------------------------------------
def test_store_keeps_bans_and_closes_them(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "vpbx.db")
    try:
        a = Ban("192.0.2.1", ("101", "102"), 5, at(0), at(100))
        b = Ban("192.0.2.2", ("101",), 1, at(5), at(105), REASON_ATTACK)
        store.bans.add(a)
        store.bans.add(b)
        assert store.bans.active(at(10)) == [a, b]
        assert store.bans.lift("192.0.2.2", at(20)) == b and store.bans.lift("192.0.2.2", at(21)) is None
        assert store.bans.active(at(20)) == [a]
        assert store.bans.active(at(100)) == [], "until is exclusive"
        assert store.bans.expire(at(100)) == [a] and store.bans.expire(at(200)) == []
        again = Ban("192.0.2.1", ("103",), 5, at(300), at(400))
        store.bans.add(again)
        history = store.bans.history("192.0.2.1")
        assert [(h["lifted_by"], h["logins"]) for h in history] == [(None, ["103"]), ("expired", ["101", "102"])]
        assert [h["lifted_by"] for h in store.bans.history("192.0.2.2")] == ["unban"]
    finally:
        store.close()


def test_a_new_ban_closes_an_expired_open_row_of_the_same_address(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "vpbx.db")
    try:
        store.bans.add(Ban("192.0.2.1", ("101",), 5, at(0), at(10)))
        store.bans.add(Ban("192.0.2.1", ("101",), 5, at(20), at(30)))     # the watcher had not closed the first
        assert [b.banned_at for b in store.bans.active(at(25))] == [at(20)]
    finally:
        store.close()


# ---- config ----------------------------------------------------------------------------------------------------
def test_security_section_round_trips_and_is_checked(tmp_path: Path) -> None:
    from dataclasses import replace

    from vpbx.config import Config

    cfg = replace(Config(), security=check_policy(max_failures=4, find_time=300, ban_time=7200,
                                                  trusted=["192.168.0.0/16", "127.0.0.1"]))
    path = tmp_path / "vpbx.toml"
    path.write_text(render_config(cfg))
    loaded = load_config(str(path)).security
    assert loaded == cfg.security and loaded.trusted == ("192.168.0.0/16", "127.0.0.1/32")
    for bad, message in (('trusted = ["10.0.0.1/8"]', "did you mean 10.0.0.0/8"),
                         ("max_failures = 0", "max_failures must be a whole number"),
                         ("bantime = 60", "unknown setting 'bantime'")):
        path.write_text(f"[security]\n{bad}\n")
        with pytest.raises(ConfigError) as exc:
            load_config(str(path))
        assert f"config {path} [security]: " in str(exc.value) and message in str(exc.value)
    path.write_text("[vpbx]\n")
    assert load_config(str(path)).security == Policy(), "the default trusts nobody"


# ---- the command line ------------------------------------------------------------------------------------------
def _cli(tmp_path: Path, *args: str) -> object:
    cfg = tmp_path / "vpbx.toml"
    if not cfg.exists():
        cfg.write_text(f'[vpbx]\ndb = "{tmp_path / "vpbx.db"}"\n[asterisk]\nconfig_dir = "{tmp_path / "etc"}"\n'
                       '[ami]\nport = 1\nsecret = "a-secret-that-is-long-enough"\n')
    return CliRunner().invoke(main, ["--config", str(cfg), *args])


def test_cli_lists_bans_and_unban_says_what_is_wrong(tmp_path: Path) -> None:
    from vpbx.domain.timestamps import utc_now

    now = utc_now()
    store = Store.open(tmp_path / "vpbx.db")
    store.bans.add(Ban("192.0.2.1", ("101",), 5, now, now + timedelta(hours=1)))
    store.bans.add(Ban("192.0.2.2", ("101",), 5, now - timedelta(hours=2), now - timedelta(hours=1)))
    store.close()
    res = _cli(tmp_path, "security", "bans", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["address"], r["logins"], r["failures"]) for r in rows] == [("192.0.2.1", ["101"], 5)]
    assert set(rows[0]) == {"address", "logins", "failures", "reason", "banned_at", "until"}
    table = _cli(tmp_path, "security", "bans")
    assert table.exit_code == 0 and "192.0.2.1" in table.stdout and "192.0.2.2" not in table.stdout
    res = _cli(tmp_path, "security", "unban", "192.0.2.9")
    assert res.exit_code == 1 and res.stderr.startswith("Error: address 192.0.2.9 is not banned")
    res = _cli(tmp_path, "security", "unban", "not-an-ip")
    assert res.exit_code == 1 and "is not an IP address" in res.stderr and res.stderr.count("\n") == 1
    # AMI unreachable (port 1): the ban is lifted in the database, the file rewritten, exit 3 names what is left
    res = _cli(tmp_path, "security", "unban", "192.0.2.1")
    assert res.exit_code == 3, res.output
    assert res.stderr.startswith("Error: the ban of 192.0.2.1 is lifted in the database")
    assert "unreachable" in res.stderr
    assert parse_bans((tmp_path / "etc" / "vpbx-bans" / "pjsip_bans_vpbx.conf").read_text()) == []
    assert not (tmp_path / "etc" / "pjsip_bans_vpbx.conf").exists(), "never the old place, straight in the dir"
    assert json.loads(_cli(tmp_path, "security", "bans", "--json").stdout) == []


def test_unban_says_when_the_bans_file_cannot_be_written(tmp_path: Path) -> None:
    from vpbx.domain.timestamps import utc_now

    now = utc_now()
    store = Store.open(tmp_path / "vpbx.db")
    store.bans.add(Ban("192.0.2.1", ("101",), 5, now, now + timedelta(hours=1)))
    store.close()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "vpbx-bans").write_text("")        # a file where vpbx's bans directory belongs
    res = _cli(tmp_path, "security", "unban", "192.0.2.1")
    assert res.exit_code == 1 and res.stdout == "" and res.stderr.count("\n") == 1, res.output
    assert res.stderr.startswith("Error: the ban of 192.0.2.1 is lifted in the database, but Asterisk still refuses "
                                 f"it: cannot write the brute-force bans {tmp_path / 'etc' / 'vpbx-bans'}/"), res.stderr
    assert "run `vpbx service install` as root" in res.stderr
    assert json.loads(_cli(tmp_path, "security", "bans", "--json").stdout) == []


@skip_outside_ci(os.geteuid() != 0, "giving a file to another user needs root")
def test_the_bans_file_belongs_to_the_bans_dirs_owner(tmp_path: Path) -> None:
    """Root (`vpbx security unban`) writing into the directory `vpbx service install` gave the service user: a new
    file is the service user's, a replaced one keeps its owner - the watcher can always replace it."""
    import grp
    import pwd
    from dataclasses import replace

    from vpbx.asterisk.security import bans_path, write_bans
    from vpbx.config import Config

    cfg = replace(Config(), asterisk_config_dir=tmp_path / "etc")
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    directory = tmp_path / "etc" / "vpbx-bans"
    directory.mkdir(parents=True)
    os.chown(directory, nobody, nogroup)
    path = write_bans(cfg, [Ban("192.0.2.1", ("101",), 5, at(0), at(3600))])
    assert path == bans_path(cfg) == directory / "pjsip_bans_vpbx.conf"
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (nobody, nogroup, 0o644)
    os.chown(path, 0, 0)
    write_bans(cfg, [])
    assert (path.stat().st_uid, path.stat().st_gid) == (0, 0) and parse_bans(path.read_text()) == []
    assert sorted(p.name for p in directory.iterdir()) == ["pjsip_bans_vpbx.conf"], "no temp file left"


HOSTILE_ADDRESSES = ["192.0.2.1\n", "192.0.2.1\r\ndeny = 0.0.0.0/0", "192.0.2.1;x", "192.0.2.1 ", " 192.0.2.1",
                     "192.0.2.1/32", "192.0.2.1\u2028", "192.0.2.1\x00", "1" * 100_000, "[2001:db8::1]", "",
                     "0.0.0.0/0", "192.0.2.1#", "ｌ92.0.2.1"]


@pytest.mark.parametrize("value", HOSTILE_ADDRESSES, ids=range(len(HOSTILE_ADDRESSES)))
def test_cli_unban_refuses_hostile_addresses(tmp_path: Path, value: str) -> None:
    from clitools import dump
    from vpbx.domain.timestamps import utc_now

    now = utc_now()
    store = Store.open(tmp_path / "vpbx.db")
    store.bans.add(Ban("192.0.2.1", ("101",), 5, now, now + timedelta(hours=1)))
    store.close()
    before = dump(tmp_path / "vpbx.db")
    res = _cli(tmp_path, "security", "unban", value)
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("Error: ") and res.stderr.count("\n") == 1 and res.stdout == ""
    assert dump(tmp_path / "vpbx.db") == before and not (tmp_path / "etc").exists()


# ---- the watcher's bookkeeping (real database, events as AMI sends them; no Asterisk) ---------------------------
def _event(remote: str, login: str = "101", name: str = "ChallengeResponseFailed",
           service: str = "PJSIP") -> dict[str, str]:
    return {"Event": name, "Service": service, "AccountID": login, "RemoteAddress": remote,
            "LocalAddress": "IPV4/UDP/127.0.0.1/5060", "SessionID": "x"}


def test_watcher_bans_stores_and_forgets_an_unbanned_address(tmp_path: Path) -> None:
    import asyncio
    from dataclasses import replace

    from vpbx.asterisk.security import Watcher
    from vpbx.config import Config
    from vpbx.services import security as service

    clock = [at(0)]
    cfg = replace(Config(), db=tmp_path / "vpbx.db", security=check_policy(max_failures=3, trusted=["127.0.0.1"]))

    async def scenario() -> None:
        w = Watcher(cfg, clock=lambda: clock[0])
        try:
            w.on_event(None, _event("IPV4/UDP/127.0.0.1/5062"))                # trusted
            w.on_event(None, _event("IPV4/UDP/127.0.0.2/5062", service="AMI"))  # not a SIP login
            w.on_event(None, _event("IPV4/UDP/not-an-address/5062"))
            # a challenge is a failure only for a login that is no SIP account (a phone's first REGISTER is challenged)
            w.on_event(None, _event("IPV4/UDP/127.0.0.9/5062", login="101", name="ChallengeSent"))   # not read yet
            w._known = frozenset({"101"})
            w.on_event(None, _event("IPV4/UDP/127.0.0.9/5062", login="101", name="ChallengeSent"))
            assert w.failures_seen == 1, "only the trusted address's failure reached the tracker"
            w.on_event(None, _event("IPV4/UDP/127.0.0.9/5062", login="ghost", name="ChallengeSent"))
            assert w.failures_seen == 2 and w.tracker.failures("127.0.0.9") == 1
            w.on_event(None, _event("IPV4/UDP/127.0.0.9/5062", login="<unknown>", name="ChallengeSent"))
            assert w.tracker.failures("127.0.0.9") == 2 and not w.tracker.under_attack("<unknown>", at(0))
            for i, name in enumerate(("InvalidAccountID", "InvalidPassword", "ChallengeResponseFailed")):
                clock[0] = at(i)
                w.on_event(None, _event("IPV4/UDP/127.0.0.2/5062", login=f"u{i}", name=name))
            assert w.failures_seen == 6 and w.tracker.failures("127.0.0.1") == 0
            stored = await w._db.run(lambda s: s.bans.active(at(3)))
            assert [(b.address, b.logins, b.failures) for b in stored] == [("127.0.0.2", ("u0", "u1", "u2"), 3)]
            # bans survive a restart: a new watcher takes them back from the database
            w2 = Watcher(cfg, clock=lambda: clock[0])
            try:
                active = await w2._db.run(lambda s: s.bans.active(at(3)))
                w2.tracker.restore(active, at(3))
                assert w2.tracker.banned("127.0.0.2", at(3))
            finally:
                w2._db.close()
            # `vpbx security unban` (another process) lifts it in the database; the next tick forgets its failures
            await w._db.run(lambda s: service.unban(s, "127.0.0.2", at(4)))
            clock[0] = at(4)
            await w.tick()
            assert not w.tracker.banned("127.0.0.2", at(4)) and w.tracker.failures("127.0.0.2") == 0
            w.on_event(None, _event("IPV4/UDP/127.0.0.2/5062"))
            assert not w.tracker.banned("127.0.0.2", at(4)), "one failure after an unban is not a ban"
            # an expired ban is closed in the database by the tick
            for _ in range(2):
                w.on_event(None, _event("IPV4/UDP/127.0.0.2/5062"))
            assert w.tracker.banned("127.0.0.2", at(4))
            clock[0] = at(4 + cfg.security.ban_time)
            await w.tick()
            assert not w.tracker.bans()
            history = await w._db.run(lambda s: s.bans.history("127.0.0.2"))
            assert [h["lifted_by"] for h in history] == ["expired", "unban"]
        finally:
            w._db.close()

    asyncio.run(scenario())


# ---- real Asterisk: brute force, distributed guessing, the real phone ------------------------------------------
PHONE_IP = "127.0.0.3"      # the real phone (vpbx-bench identifies 127.0.0.3 by IP, but a From user matches first)
ATTACKER_IP = "127.0.0.2"
SWARM = [f"127.0.0.{i}" for i in range(10, 18)]


def _login(prefix: str) -> str:
    import itertools
    import os

    counter = _login.__dict__.setdefault("n", itertools.count(1))
    return f"{prefix}{os.getpid() % 10000}{next(counter)}"


def _account(asterisk, login: str) -> str:
    return json.loads(asterisk.vpbx("sip", "add", login, "--json").stdout)["password"]


class Guesser:
    """A password guesser like SIPVicious `svcrack`, from one address: for each guess a REGISTER, and on the 401 a
    second REGISTER with an MD5 digest of the guess. Each attempt's outcome: "refused" (403 to the first REGISTER:
    the ACL, before any authentication), "wrong" (401 to the second: a password Asterisk checked and refused),
    "registered" (200), "too_many" (403 to the second: authenticated, refused by the registrar), "timeout"."""

    def __init__(self, ip: str, server: tuple[str, int] = ("127.0.0.1", 5060), domain: str = "vpbx.local") -> None:
        import socket

        self.ip, self.server, self.domain = ip, server, domain
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.attempts: list[tuple[float, float, str]] = []     # (sent, answered, outcome), time.monotonic()
        self._n = 0

    def close(self) -> None:
        self.sock.close()

    def _request(self, login: str, call_id: str, cseq: int, auth: str = "") -> str:
        branch = f"z9hG4bK-{call_id}-{cseq}"
        lines = [f"REGISTER sip:{self.domain} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport",
                 f"From: <sip:{login}@{self.domain}>;tag={call_id}", f"To: <sip:{login}@{self.domain}>",
                 f"Call-ID: {call_id}@{self.ip}", f"CSeq: {cseq} REGISTER",
                 f"Contact: <sip:{login}@{self.ip}:{self.port}>", "Max-Forwards: 70", "Expires: 300",
                 "User-Agent: vpbx-tests guesser"]
        if auth:
            lines.append(auth)
        return "\r\n".join([*lines, "Content-Length: 0", "", ""])

    def _answer(self, call_id: str, cseq: int, timeout: float) -> tuple[int, str] | None:
        import time

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                return None
            head = data.split("\r\n\r\n", 1)[0]
            if f"Call-ID: {call_id}@" not in head or f"CSeq: {cseq} REGISTER" not in head:
                continue                                   # a late answer to an earlier attempt
            status = int(head.split(" ", 2)[1])
            if status >= 200:
                return status, head
        return None

    def _digest(self, login: str, password: str, challenge: str) -> str:
        import hashlib
        import re

        line = next(h for h in challenge.split("\r\n") if h.lower().startswith("www-authenticate:"))
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', line.split(":", 1)[1].strip().removeprefix("Digest ")))

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        uri = f"sip:{self.domain}"
        ha1, ha2 = md5(f"{login}:{params['realm']}:{password}"), md5(f"REGISTER:{uri}")
        cnonce, nc = "0a4f113b", "00000001"
        response = md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        extra = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
        return (f'Authorization: Digest username="{login}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
                f'uri="{uri}", response="{response}", algorithm=MD5, cnonce="{cnonce}", qop=auth, nc={nc}{extra}')

    def attempt(self, login: str, password: str, timeout: float = 2.0) -> str:
        import time

        self._n += 1
        call_id = f"g{self.port}x{self._n}"
        sent = time.monotonic()
        self.sock.sendto(self._request(login, call_id, 1).encode(), self.server)
        first = self._answer(call_id, 1, timeout)
        if first is None or first[0] != 401:
            outcome = "timeout" if first is None else "refused" if first[0] == 403 else \
                "registered" if first[0] == 200 else f"status {first[0]}"
        else:
            self.sock.sendto(self._request(login, call_id, 2, self._digest(login, password, first[1])).encode(),
                             self.server)
            second = self._answer(call_id, 2, timeout)
            outcome = "timeout" if second is None else {401: "wrong", 200: "registered", 403: "too_many"}.get(
                second[0], f"status {second[0]}")
        self.attempts.append((sent, time.monotonic(), outcome))
        return outcome

    def run(self, login: str, passwords: list[str], rate: float) -> list[str]:
        """One attempt per password, started at `rate` per second at most."""
        import time

        start = time.monotonic()
        out = []
        for i, password in enumerate(passwords):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            out.append(self.attempt(login, password))
        return out

    def count(self, outcome: str) -> int:
        return sum(1 for *_, o in self.attempts if o == outcome)


def _when(m) -> datetime:
    """When sipp logged a message."""
    return datetime.strptime(m.timestamp, "%Y-%m-%d %H:%M:%S.%f")


def _bans(asterisk) -> list[dict]:
    return json.loads(asterisk.vpbx("security", "bans", "--json").stdout)


def _ring(asterisk, phone, login: str, wait_s: int = 1, timeout: float = 20) -> None:
    """Asterisk calls PJSIP/login; the phone (sipp with uas_answer.xml) must get the INVITE and answer it."""
    before = len(phone.messages())
    asterisk.cli(f"channel originate PJSIP/{login} application Wait {wait_s}")
    phone.wait_for(lambda ms: any(m.method == "INVITE" and m.status == 200 and m.direction == "sent"
                                  for m in ms[before:]), timeout=timeout)


@pytest.fixture
def guarded(asterisk, tmp_path):
    """`vpbx serve` (its security watcher) on the session's config; every ban lifted afterwards, whatever happened,
    so the shared sandbox is left with no ban."""
    from test_engine_asterisk import Engine

    eng = Engine(asterisk, tmp_path / "engine.log")
    try:
        eng.start()
        eng.wait_log(lambda e: "banned in Asterisk" in e.get("message", ""), timeout=20)
        yield eng
    finally:
        eng.stop()
        for ban in _bans(asterisk):
            asterisk.vpbx("security", "unban", ban["address"], check=False)
        left = asterisk.etc / "vpbx-bans" / "pjsip_bans_vpbx.conf"
        assert not left.exists() or parse_bans(left.read_text()) == [], left.read_text()


@pytest.mark.asterisk
@pytest.mark.timeout(240)
def test_brute_force_from_one_address_is_banned_and_the_real_phone_keeps_working(asterisk, guarded, tmp_path):
    import time

    from sipp import Sipp, free_udp_port

    domain = asterisk.cfg.domain
    policy = asterisk.cfg.security
    login, other = _login("victim"), _login("other")
    password, other_password = _account(asterisk, login), _account(asterisk, other)
    asterisk.vpbx("reload")
    phone_sipp = Sipp(tmp_path / "phone", local_ip=PHONE_IP)
    attacker = Guesser(ATTACKER_IP, domain=domain)
    try:
        port = free_udp_port(PHONE_IP)
        phone = phone_sipp.register(login, password, domain=domain, hold_ms=120000, ooc="uas_answer.xml", port=port)
        phone.wait_for(lambda ms: any(m.status == 200 and m.method == "REGISTER" for m in ms))
        # a call that is up while the ban is applied (a res_pjsip reload): it must stay up
        asterisk.cli(f"channel originate PJSIP/{login} application Wait 6")
        phone.wait_for(lambda ms: any(m.method == "INVITE" and m.status == 200 and m.direction == "sent" for m in ms))

        outcomes = attacker.run(login, [f"wrong-{i:03d}" for i in range(200)], rate=150)
        # "too_many": a 403 to the second REGISTER, i.e. the attempt the new ACL caught between its two requests
        assert set(outcomes) <= {"wrong", "refused", "too_many"} and outcomes.count("too_many") <= 1, outcomes
        assert "refused" in outcomes, f"never banned: {outcomes.count('wrong')} wrong passwords checked"
        first_refused = min(i for i, o in enumerate(outcomes) if o != "wrong")
        assert "wrong" not in outcomes[first_refused:], "once refused, always refused"
        start = attacker.attempts[0][0]
        banned_after = attacker.attempts[first_refused][0] - start
        took = attacker.attempts[-1][1] - start
        bans = [b for b in _bans(asterisk) if b["address"] == ATTACKER_IP]
        assert len(bans) == 1 and bans[0]["logins"] == [login], bans
        assert bans[0]["failures"] == policy.max_failures and bans[0]["reason"] == "failures", bans
        print(f"\nbrute force from {ATTACKER_IP}: 200 wrong passwords offered at 150/s; banned after "
              f"{bans[0]['failures']} failures (max_failures); {first_refused} passwords checked before the first "
              f"403 (the ones past {policy.max_failures} were in flight while the ACL was applied), refused "
              f"{banned_after:.2f} s after the first guess; {len(outcomes) - first_refused} refused by the ACL; all "
              f"200 answered in {took:.2f} s")

        # the call that was up during the reload ended normally (BYE from Asterisk after Wait 6), and the phone
        # still gets calls and answers them
        msgs = phone.wait_for(lambda ms: any(m.method == "BYE" and m.direction == "received" for m in ms), timeout=15)
        answered = next(_when(m) for m in msgs if m.method == "INVITE" and m.status == 200 and m.direction == "sent")
        bye = next(_when(m) for m in msgs if m.method == "BYE" and m.is_request and m.direction == "received")
        assert (bye - answered).total_seconds() >= 5.5, "the call was cut while the ban was applied"
        _ring(asterisk, phone, login)
        # the ACL refuses INVITE as well as REGISTER: the banned address cannot call either
        caller = Sipp(tmp_path / "caller", local_ip=ATTACKER_IP)
        try:
            call = caller.uac("+380441234567", login=login, password=password, hold_ms=0, timeout_s=10).wait(20)
        finally:
            caller.cleanup()
        assert call.final_response("INVITE") == 403 and not call.saw(401), call.describe()
        # the real phone keeps registering: a refresh from its address (the same contact) is accepted
        phone.kill()
        again = phone_sipp.register(login, password, domain=domain, hold_ms=60000, ooc="uas_answer.xml", port=port)
        again.wait_for(lambda ms: any(m.status == 200 and m.method == "REGISTER" for m in ms))
        _ring(asterisk, again, login)

        # the ban survives a restart of `vpbx serve` (taken back from the database, applied again)
        guarded.stop()
        guarded.start()
        guarded.wait_log(lambda e: "1 address(es) banned in Asterisk" in e.get("message", ""), since=guarded._offset)
        assert attacker.attempt(login, "after-restart") == "refused"
        assert [b["address"] for b in _bans(asterisk)] == [ATTACKER_IP]

        # unban works at once: the next REGISTER from that address is challenged and accepted
        started = time.monotonic()
        asterisk.vpbx("security", "unban", ATTACKER_IP)
        unbanned = time.monotonic() - started
        assert attacker.attempt(other, other_password) == "registered"
        print(f"unban: `vpbx security unban` returned in {unbanned:.2f} s (a CLI start, the database, the ACL file, "
              f"an AMI reload); the next REGISTER from {ATTACKER_IP} was accepted")
        assert ATTACKER_IP not in [b["address"] for b in _bans(asterisk)]
        # the watcher forgot its failures: max_failures - 1 more wrong passwords do not ban it again
        time.sleep(1.5)
        assert [attacker.attempt(login, f"again-{i}") for i in range(policy.max_failures - 1)] == \
            ["wrong"] * (policy.max_failures - 1)
        time.sleep(1.5)
        assert ATTACKER_IP not in [b["address"] for b in _bans(asterisk)]
    finally:
        phone_sipp.cleanup()
        attacker.close()


@pytest.mark.asterisk
@pytest.mark.timeout(240)
def test_distributed_guesses_against_one_login_are_slowed(asterisk, guarded, tmp_path):
    import threading

    from sipp import Sipp

    domain = asterisk.cfg.domain
    login = _login("target")
    password = _account(asterisk, login)
    asterisk.vpbx("reload")
    policy = asterisk.cfg.security
    phone_sipp = Sipp(tmp_path / "phone", local_ip=PHONE_IP)
    swarm = {addr: Guesser(addr, domain=domain) for addr in SWARM}
    per_address, rate = 25, 10
    try:
        phone = phone_sipp.register(login, password, domain=domain, hold_ms=120000, ooc="uas_answer.xml")
        phone.wait_for(lambda ms: any(m.status == 200 and m.method == "REGISTER" for m in ms))
        threads = [threading.Thread(target=g.run, args=(login, [f"guess-{a}-{i:02d}" for i in range(per_address)],
                                                         rate)) for a, g in swarm.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        for addr, g in swarm.items():
            assert len(g.attempts) == per_address and g.count("registered") == 0, addr
            assert g.count("refused") > 0 and g.count("too_many") <= 1, (addr, [o for *_, o in g.attempts])
        checked = sum(g.count("wrong") for g in swarm.values())
        start = min(g.attempts[0][0] for g in swarm.values())
        last_checked = max(t for g in swarm.values() for _, t, o in g.attempts if o == "wrong")
        end = max(g.attempts[-1][1] for g in swarm.values())
        bans = {b["address"]: b for b in _bans(asterisk) if b["address"] in SWARM}
        assert set(bans) == set(SWARM), bans
        slowed = [b for b in bans.values() if b["reason"] == "login under attack"]
        # the first addresses had their failures before the login counted as under attack; the others were banned
        # at attack_max_failures
        assert len(slowed) >= len(SWARM) - policy.attack_addresses + 1, bans
        assert all(b["failures"] < policy.max_failures for b in slowed), bans
        assert sum(b["failures"] == policy.attack_max_failures for b in slowed) >= len(SWARM) - policy.attack_addresses
        offered = per_address * len(SWARM)
        print(f"\ndistributed: {len(SWARM)} addresses x {per_address} guesses at {rate}/s each against {login} "
              f"({offered} offered at {rate * len(SWARM)}/s, {end - start:.1f} s); {checked} passwords checked in "
              f"all, the last {last_checked - start:.2f} s after the start, none after: "
              + ", ".join(f"{a}: {g.count('wrong')}" for a, g in swarm.items())
              + " checked; bans: " + ", ".join(f"{a}: {bans[a]['failures']} ({bans[a]['reason']})" for a in SWARM)
              + f". From now on each address gets {policy.attack_max_failures} guess(es) per ban_time "
              f"({policy.ban_time} s): {len(SWARM) * policy.attack_max_failures * 3600 / policy.ban_time:.0f} "
              f"guesses/hour for this swarm")
        # the real phone was never touched: still registered, still answering
        assert f"{login}/sip:{login}@{PHONE_IP}" in asterisk.cli("pjsip show contacts")
        _ring(asterisk, phone, login)
    finally:
        phone_sipp.cleanup()
        for g in swarm.values():
            g.close()


@pytest.mark.asterisk
@pytest.mark.timeout(180)
def test_a_second_contact_does_not_push_out_the_real_phone(asterisk, tmp_path):
    import time

    from sipp import Sipp

    domain = asterisk.cfg.domain
    login = _login("desk")
    password = _account(asterisk, login)
    asterisk.vpbx("reload")
    phone_sipp = Sipp(tmp_path / "phone", local_ip=PHONE_IP)
    intruder = Guesser("127.0.0.4", domain=domain)
    try:
        phone = phone_sipp.register(login, password, domain=domain, hold_ms=150000, ooc="uas_answer.xml")
        phone.wait_for(lambda ms: any(m.status == 200 and m.method == "REGISTER" for m in ms))
        # the right password from another address while the phone is alive: refused, the phone keeps its calls
        assert intruder.attempt(login, password) == "too_many"
        contacts = [line for line in asterisk.cli("pjsip show contacts").splitlines() if f"{login}/sip:" in line]
        assert len(contacts) == 1 and PHONE_IP in contacts[0], contacts
        _ring(asterisk, phone, login)
        # a phone that moved: once its old contact stops answering qualify it is removed, and the new one gets in
        phone.kill()
        started = time.monotonic()
        while time.monotonic() < started + 90:
            if intruder.attempt(login, password) == "registered":
                break
            time.sleep(1)
        moved_after = time.monotonic() - started
        contacts = [line for line in asterisk.cli("pjsip show contacts").splitlines() if f"{login}/sip:" in line]
        assert len(contacts) == 1 and "127.0.0.4" in contacts[0], contacts
        print(f"\nsecond contact: refused (403) while the phone answers qualify; after the phone went silent, the "
              f"same login registered from its new address {moved_after:.0f} s later")
    finally:
        phone_sipp.cleanup()
        intruder.close()


@pytest.mark.asterisk
@pytest.mark.timeout(120)
def test_a_scanner_trying_logins_that_do_not_exist_is_banned_too(asterisk, guarded):
    import time

    scanner = Guesser("127.0.0.5", domain=asterisk.cfg.domain)
    try:
        outcomes, start = [], time.monotonic()
        for i in range(100):                                  # at 150 attempts/s, like svcrack
            time.sleep(max(0.0, start + i / 150 - time.monotonic()))
            outcomes.append(scanner.attempt(f"nobody{i}", "123456"))
        # unknown and known logins get the same 401s until the ban; each attempt is two challenged requests
        watched = [e.get("message") for e in guarded.entries() if e.get("logger") == "vpbx.asterisk.security"]
        assert set(outcomes) <= {"wrong", "refused", "too_many"} and "refused" in outcomes, (outcomes, watched[-30:])
        # an attempt whose second REGISTER met the new ACL gets its 403 there
        first = min(outcomes.index(o) for o in ("refused", "too_many") if o in outcomes)
        assert "wrong" not in outcomes[first:]
        bans = [b for b in _bans(asterisk) if b["address"] == "127.0.0.5"]
        # a request Asterisk names no user for (AccountID <unknown>) counts without a login
        assert len(bans) == 1 and set(bans[0]["logins"]) <= {f"nobody{i}" for i in range(first)}, bans
        print(f"\nscanner of unknown logins: banned after {bans[0]['failures']} failures "
              f"(logins {', '.join(bans[0]['logins'])}); {first} attempts answered 401 before the first 403")
    finally:
        scanner.close()
