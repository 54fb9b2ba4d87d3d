"""Loading a number's call flow from the store: the one place that gathers what `compile_flow` needs.

Rule: read-only; both the CLI (dry runs, checks) and the engine (every call) load flows through here. This is also
where time zones are read (zoneinfo): the pure model decides business hours from `ZoneOffsets`, the offsets in force
over a window around the instant a flow is loaded for.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vpbx.dialplan import compile_flow
from vpbx.domain.destinations import Destination, try_parse
from vpbx.domain.errors import NotFoundError
from vpbx.domain.recording import recording_for
from vpbx.domain.records import Account, Group, Ivr, Number, Schedule, SipAccount
from vpbx.domain.schedules import ZoneOffsets

if TYPE_CHECKING:
    from vpbx.dialplan import Flow
    from vpbx.storage.store import Store


def extension_map(store: Store) -> dict[str, str]:
    """Extensions a caller may type in an `--extensions` IVR: every all-digit SIP login and every SIP account's own
    extension ring that account, and an account's organisation ID goes where the account's first active number goes
    (its route or first forward target; IVR routes are left out so a shared IVR cannot loop into itself)."""
    sip_accounts = store.sip_accounts.all()
    out = {a.login: str(Destination("sip", a.login)) for a in sip_accounts if a.login.isdigit()}
    out.update({a.extension: str(Destination("sip", a.login)) for a in sip_accounts if a.extension})
    for account in store.accounts.all():
        if account.org_id is None or str(account.org_id) in out:
            continue
        for n in store.numbers.held_by(account.name, ("active",)):
            dest = try_parse(n.route or (n.forward_to[0] if n.forward_to else None))
            if dest is not None and all(d.kind != "ivr" for d in dest.names()):
                out[str(account.org_id)] = str(dest)
                break
    return out


def load_flow(store: Store, number: Number, now: datetime | None = None,
              sip_account: SipAccount | None = None) -> Flow:
    """Compile `number`'s flow with the groups, IVRs and accounts now in the store (ValidationError if broken).
    A number that may not serve calls now (suspended, awaiting documents, released, an ended trial) gets the
    "number unavailable" flow instead of its routing. Whether the call is recorded (`Flow.record`, `record_prompt`)
    is decided from the number, the account holding it and `sip_account`: the SIP account placing an outbound call
    (None for a call to the number)."""
    from vpbx.services.lifecycle import calls_allowed

    allowed, _reason = calls_allowed(number, now or datetime.now(UTC))
    if not allowed:
        number = replace(number, route=None, forward_to=(), greeting=None)

    schedules, zones = schedule_inputs(store, now)
    record, record_prompt = recording_for(number, holder_of(store, number), sip_account)
    return compile_flow(number, *flow_inputs(store), schedules=schedules, zones=zones, record=record,
                        record_prompt=record_prompt)


def holder_of(store: Store, number: Number) -> Account | None:
    """The customer's account holding `number` (None: the install's own number)."""
    if not number.account:
        return None
    try:
        return store.accounts.get(number.account)
    except NotFoundError:
        return None


def flow_inputs(store: Store, groups: Sequence[Group] = (), ivrs: Sequence[Ivr] = ()
                ) -> tuple[dict[str, Group], dict[str, Ivr], set[str], dict[str, str]]:
    """What `compile_flow` needs besides the number: groups and IVRs by name (`groups`/`ivrs` replace stored ones of
    the same name, to check a change before it is written), SIP logins, and the extension map - read only when an
    IVR lets callers type extensions, since it reads every account."""
    all_groups = {g.name: g for g in store.groups.all()}
    all_groups.update({g.name: g for g in groups})
    all_ivrs = {i.name: i for i in store.ivrs.all()}
    all_ivrs.update({i.name: i for i in ivrs})
    logins = {a.login for a in store.sip_accounts.all()}
    extensions = extension_map(store) if any(i.extensions for i in all_ivrs.values()) else {}
    return all_groups, all_ivrs, logins, extensions


# ---- business hours: schedules and their zones ---------------------------------------------------------------------
ZONE_WINDOW_BEFORE = timedelta(days=2)     # a flow loaded at T decides by the true offsets from T-2d ...
ZONE_WINDOW_AFTER = timedelta(days=35)     # ... to T+35d (a call lasts far less); outside, the nearest offset holds
_ZONE_SAMPLE_S = 3 * 3600                  # offset changes are found by sampling, then bisected to the second


def schedule_inputs(store: Store, around: datetime | None = None, schedules: Sequence[Schedule] = ()
                    ) -> tuple[dict[str, Schedule], dict[str, ZoneOffsets]]:
    """What `compile_flow` needs for business hours: schedules by name (`schedules` replace stored ones of the same
    name) and the offsets of their zones around `around` (default now). A zone the tz database does not know is left
    out; compiling a flow that uses it then names the schedule and the fix."""
    by_name = {s.name: s for s in store.schedules.all()}
    by_name.update({s.name: s for s in schedules})
    return by_name, zones_for((s.tz for s in by_name.values()), around or datetime.now(UTC))


def zones_for(names: Iterable[str], around: datetime) -> dict[str, ZoneOffsets]:
    """The offsets of every known zone in `names` around instant `around` (aware)."""
    out: dict[str, ZoneOffsets] = {}
    for name in set(names):
        offsets = zone_offsets(name, around)
        if offsets is not None:
            out[name] = offsets
    return out


def zone(name: str) -> ZoneInfo | None:
    """The tz database's zone `name`, or None when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_offsets(name: str, around: datetime) -> ZoneOffsets | None:
    """Zone `name`'s UTC offsets from ZONE_WINDOW_BEFORE before `around` to ZONE_WINDOW_AFTER after it (None: no such
    zone). Cached per zone and hour, so the engine computes them once an hour, not once a call."""
    return _zone_offsets(name, int(around.timestamp()) // 3600 * 3600)


@functools.lru_cache(maxsize=256)
def _zone_offsets(name: str, hour: int) -> ZoneOffsets | None:
    tz = zone(name)
    if tz is None:
        return None

    def offset(t: int) -> int:
        utcoffset = datetime.fromtimestamp(t, tz).utcoffset()
        return int(utcoffset.total_seconds()) if utcoffset is not None else 0

    t = hour - int(ZONE_WINDOW_BEFORE.total_seconds())
    end = hour + int(ZONE_WINDOW_AFTER.total_seconds())
    changes = [(t, offset(t))]
    while t < end:
        nxt = min(t + _ZONE_SAMPLE_S, end)
        if offset(nxt) == changes[-1][1]:
            t = nxt
            continue
        lo, hi = t, nxt                      # the offset changes in (lo, hi]: find the second it does
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if offset(mid) == changes[-1][1] else (lo, mid)
        changes.append((hi, offset(hi)))
        t = hi
    return ZoneOffsets(name, tuple(changes))
