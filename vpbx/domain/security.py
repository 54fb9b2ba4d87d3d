"""Brute-force protection (issue 11): who is banned, for how long, and when a ban is lifted.

Rule: pure - failures and the clock come in as values, decisions go out as values; the watcher in `vpbx serve`
(vpbx.asterisk.security) feeds it Asterisk's security events, stores the bans it returns and enforces them with a
pjsip ACL.

The policy (vpbx.toml `[security]`):

- An address that fails SIP authentication `max_failures` times within `find_time` seconds is banned for `ban_time`
  seconds (every login counts: a scanner trying many logins is banned as fast as one guessing one password).
- A login under attack from many addresses is slowed down: once a login has failed from `attack_addresses` distinct
  addresses within `attack_window` seconds, every address that fails it is banned after `attack_max_failures`
  failures (default 1: one guess per address per ban). The login itself is never locked, so its real phone on another
  address, which does not fail, keeps registering and receiving calls.
- No address is exempt by default, loopback included; only `trusted` networks (CIDRs) are never counted or banned.
- A ban ends at `until` (expired) or when lifted by hand (`vpbx security unban`); either way the address's earlier
  failures are forgotten, so it starts again from zero.
"""
from __future__ import annotations

import ipaddress
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vpbx.domain.errors import ValidationError
from vpbx.domain.validation import shown

DEFAULT_MAX_FAILURES = 5
DEFAULT_FIND_TIME = 600           # 10 min
DEFAULT_BAN_TIME = 3600           # 1 h
DEFAULT_ATTACK_ADDRESSES = 3
DEFAULT_ATTACK_MAX_FAILURES = 1
DEFAULT_ATTACK_WINDOW = 86400     # 1 day
MAX_SECONDS = 366 * 86400         # no window or ban longer than a year
LOGINS_KEPT = 10                  # a ban names at most this many of the logins its address failed
MAX_TRACKED = 100_000             # addresses / logins kept in memory; the oldest are dropped beyond this

REASON_FAILURES = "failures"
REASON_ATTACK = "login under attack"

# Asterisk's security events name the remote end as "IPV4/UDP/192.0.2.1/5060" or "IPV6/UDP/2001:db8::1/5060"
_REMOTE_RE = re.compile(r"\A(?:IPV4|IPV6)/(?:UDP|TCP|TLS|WS|WSS|SCTP)/(?P<addr>[0-9A-Fa-f:.\[\]]+)/[0-9]{1,5}\Z")


# ---- addresses and networks ------------------------------------------------------------------------------------
def address(value: object) -> str:
    """An IPv4 or IPv6 address, normalised ("::ffff:192.0.2.1" -> "192.0.2.1"); ValidationError otherwise."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise ValidationError(f"address {shown(value)} is not an IP address; give e.g. 192.0.2.10 or 2001:db8::10")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(f"address {shown(value)} is not an IP address; give e.g. 192.0.2.10 or 2001:db8::10"
                              ) from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def network(value: object) -> str:
    """A CIDR network ("192.0.2.0/24", "2001:db8::/32"; a bare address is one host), normalised; host bits must be
    zero. ValidationError otherwise."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise ValidationError(f"network {shown(value)} is not a CIDR network; give e.g. 192.0.2.0/24 or 10.0.0.5")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        hint = ""
        if "host bits set" in str(exc):
            hint = f" (host bits are set: did you mean {ipaddress.ip_network(value, strict=False)}?)"
        raise ValidationError(f"network {shown(value)} is not a CIDR network{hint}; give e.g. 192.0.2.0/24 or "
                              f"10.0.0.5") from None
    return str(net)


def remote_address(remote: str) -> str | None:
    """The IP address of an AMI security event's RemoteAddress ("IPV4/UDP/192.0.2.1/5060" -> "192.0.2.1"), or None
    when it is not one."""
    m = _REMOTE_RE.fullmatch(remote.strip()) if isinstance(remote, str) else None
    if m is None:
        return None
    try:
        return address(m.group("addr").strip("[]"))
    except ValidationError:
        return None


# ---- the policy ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    max_failures: int = DEFAULT_MAX_FAILURES
    find_time: int = DEFAULT_FIND_TIME
    ban_time: int = DEFAULT_BAN_TIME
    trusted: tuple[str, ...] = ()
    attack_addresses: int = DEFAULT_ATTACK_ADDRESSES
    attack_max_failures: int = DEFAULT_ATTACK_MAX_FAILURES
    attack_window: int = DEFAULT_ATTACK_WINDOW
    _nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_nets", tuple(ipaddress.ip_network(n) for n in self.trusted))

    def is_trusted(self, addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        return any(ip in net for net in self._nets)


INT_SETTINGS = ("max_failures", "find_time", "ban_time", "attack_addresses", "attack_max_failures", "attack_window")


def check_policy(max_failures: object = DEFAULT_MAX_FAILURES, find_time: object = DEFAULT_FIND_TIME,
                 ban_time: object = DEFAULT_BAN_TIME, trusted: object = (),
                 attack_addresses: object = DEFAULT_ATTACK_ADDRESSES,
                 attack_max_failures: object = DEFAULT_ATTACK_MAX_FAILURES,
                 attack_window: object = DEFAULT_ATTACK_WINDOW) -> Policy:
    """The settings of `[security]`, checked: whole numbers >= 1 (seconds at most a year; failures at most 1000),
    `attack_max_failures` <= `max_failures`, `trusted` a list of CIDR networks. ValidationError names the bad one."""
    values = {"max_failures": max_failures, "find_time": find_time, "ban_time": ban_time,
              "attack_addresses": attack_addresses, "attack_max_failures": attack_max_failures,
              "attack_window": attack_window}
    for key, value in values.items():
        top = 1000 if key in ("max_failures", "attack_addresses", "attack_max_failures") else MAX_SECONDS
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ValidationError(f"{key} must be a whole number from 1 to {top}; got {shown(value)}")
    if int(attack_max_failures) > int(max_failures):    # type: ignore[call-overload]  # checked above
        raise ValidationError(f"attack_max_failures ({attack_max_failures}) must not exceed max_failures "
                              f"({max_failures})")
    if isinstance(trusted, str) or not isinstance(trusted, (list, tuple)):
        raise ValidationError(f"trusted must be a list of CIDR networks, e.g. [\"192.0.2.0/24\"]; got {shown(trusted)}")
    nets = tuple(dict.fromkeys(network(n) for n in trusted))
    return Policy(trusted=nets, **{k: int(v) for k, v in values.items()})  # type: ignore[call-overload]


# ---- failures and bans -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """One failed authentication: from `address`, for `login` (what the request claimed; "" when Asterisk named
    none), at `at` (aware UTC)."""
    address: str
    login: str
    at: datetime


@dataclass(frozen=True)
class Ban:
    address: str
    logins: tuple[str, ...]       # the logins it failed (at most LOGINS_KEPT, first seen first)
    failures: int                 # failures counted when it was banned
    banned_at: datetime
    until: datetime
    reason: str = REASON_FAILURES

    def active(self, now: datetime) -> bool:
        return now < self.until


@dataclass
class _AddressState:
    times: deque[datetime] = field(default_factory=deque)    # failures within find_time, oldest first
    logins: list[str] = field(default_factory=list)


class Tracker:
    """The watcher's memory: recent failures per address and per login, and the bans in force.

    `record(failure)` returns the Ban it causes (None: no ban); `expire(now)` and `lift(address)` end bans;
    `restore(bans, now)` takes the stored bans back after a restart. Failures of a trusted or already banned address
    are ignored. Time must not run backwards between calls (events arrive in order); a failure older than the
    newest seen is taken as happening at the newest.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._addresses: dict[str, _AddressState] = {}
        self._logins: dict[str, dict[str, datetime]] = {}     # login -> address -> its last failure
        self._bans: dict[str, Ban] = {}
        self._clock: datetime | None = None

    # -- queries --
    def bans(self) -> list[Ban]:
        return sorted(self._bans.values(), key=lambda b: (b.banned_at, b.address))

    def banned(self, addr: str, now: datetime) -> bool:
        ban = self._bans.get(addr)
        return ban is not None and ban.active(now)

    def failures(self, addr: str) -> int:
        state = self._addresses.get(addr)
        return len(state.times) if state else 0

    def attackers(self, login: str, now: datetime) -> int:
        """How many distinct addresses failed `login` within attack_window."""
        since = now - timedelta(seconds=self.policy.attack_window)
        return sum(1 for t in self._logins.get(login, {}).values() if t > since)

    def under_attack(self, login: str, now: datetime) -> bool:
        return self.attackers(login, now) >= self.policy.attack_addresses

    def limit(self, login: str, now: datetime) -> int:
        """Failures an address may make on `login` before it is banned."""
        p = self.policy
        return p.attack_max_failures if self.under_attack(login, now) else p.max_failures

    # -- changes --
    def record(self, failure: Failure) -> Ban | None:
        p = self.policy
        now = failure.at if self._clock is None or failure.at > self._clock else self._clock
        self._clock = now
        addr = failure.address
        if p.is_trusted(addr) or self.banned(addr, now):
            return None
        # the login's attackers first: this address counts towards "under attack" as well ("": no login named)
        if failure.login:
            seen = self._logins.pop(failure.login, None) or {}
            self._logins[failure.login] = seen           # most recently failed last (the oldest are dropped first)
            seen.pop(addr, None)
            seen[addr] = now
            window_start = now - timedelta(seconds=p.attack_window)
            for old in [a for a, t in seen.items() if t <= window_start]:
                del seen[old]
        state = self._addresses.pop(addr, None) or _AddressState()
        self._addresses[addr] = state                    # most recently failing last (the oldest are dropped first)
        find_start = now - timedelta(seconds=p.find_time)
        while state.times and state.times[0] <= find_start:
            state.times.popleft()
        state.times.append(now)
        if failure.login and failure.login not in state.logins and len(state.logins) < LOGINS_KEPT:
            state.logins.append(failure.login)
        self._bound()
        attack = bool(failure.login) and self.under_attack(failure.login, now)
        limit = p.attack_max_failures if attack else p.max_failures
        if len(state.times) < limit:
            return None
        ban = Ban(address=addr, logins=tuple(state.logins), failures=len(state.times), banned_at=now,
                  until=now + timedelta(seconds=p.ban_time),
                  reason=REASON_ATTACK if attack and len(state.times) < p.max_failures else REASON_FAILURES)
        self._bans[addr] = ban
        del self._addresses[addr]
        return ban

    def expire(self, now: datetime) -> list[Ban]:
        """End every ban whose time is up; returns them."""
        ended = [b for b in self._bans.values() if not b.active(now)]
        for ban in ended:
            del self._bans[ban.address]
            self._addresses.pop(ban.address, None)
        return sorted(ended, key=lambda b: (b.until, b.address))

    def lift(self, addr: str) -> Ban | None:
        """End the ban of `addr` now (an administrator's unban) and forget its failures."""
        self._addresses.pop(addr, None)
        return self._bans.pop(addr, None)

    def restore(self, bans: Iterable[Ban], now: datetime) -> None:
        """Take back the stored bans (after a restart); those already over are skipped."""
        for ban in bans:
            if ban.active(now) and not self.policy.is_trusted(ban.address):
                self._bans[ban.address] = ban

    def _bound(self) -> None:
        while len(self._addresses) > MAX_TRACKED:
            del self._addresses[next(iter(self._addresses))]
        while len(self._logins) > MAX_TRACKED:
            del self._logins[next(iter(self._logins))]


def replay(policy: Policy, failures: Sequence[Failure]) -> list[Ban]:
    """Every ban a sequence of failures (in time order) causes, expiring bans as time passes."""
    tracker = Tracker(policy)
    out: list[Ban] = []
    for f in failures:
        tracker.expire(f.at)
        ban = tracker.record(f)
        if ban is not None:
            out.append(ban)
    return out
