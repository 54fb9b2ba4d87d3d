"""Calls seen from the command line: a dry run of a number's call flow, the call records, per-number totals, a
month's call records with their costs (the export a provider hands to accounting).

Rule: read-only. A dry run compiles the number's flow as the engine would (`vpbx.services.flows.load_flow`) and runs
it through the pure call machine with scripted keys and outcomes, at an instant (`--at`, default now) that decides
business hours.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from vpbx.dialplan import ScheduleNode
from vpbx.dialplan import simulate as run_flow
from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.timestamps import utc_now
from vpbx.services.flows import load_flow, zone

if TYPE_CHECKING:
    from vpbx.dialplan import Flow
    from vpbx.storage.store import Store

DEFAULT_CALLER = "+10000000000"


AT_SYNTAX = "YYYY-MM-DD HH:MM (the time in the number's schedules' zone) or an instant like 2026-12-31T10:00+02:00"
_AT_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:Z|[+-][0-9]{2}:[0-9]{2})?")


def simulate(store: Store, number: str, *, caller: str = DEFAULT_CALLER, dtmf: str = "",
             no_answer: Iterable[str] = (), busy: Iterable[str] = (), at: str | None = None) -> list[str]:
    """Run `number`'s call flow without Asterisk: one line per step. `dtmf` are the keys the caller presses (one per
    menu prompt); `no_answer` / `busy` are destinations that ring out / are busy; `at` is when the call comes
    (default now; see `call_instant`), which decides business hours."""
    validate.dtmf(dtmf)
    record = store.numbers.get(number)
    when = utc_now() if at is None else call_instant(at, number, load_flow(store, record))
    flow = load_flow(store, record, when)
    lines: list[str] = run_flow(flow, caller, dtmf, set(no_answer), set(busy), at=when.timestamp())
    return lines


def call_instant(text: str, number: str, flow: Flow) -> datetime:
    """`--at` as an aware instant. With an offset (or Z) it is that instant; without, it is wall-clock time in the
    zone of the schedules the number's flow uses (UTC when it uses none; refused when they are in several zones, or
    when that time does not exist there because clocks go forward; a time that happens twice is the first)."""
    if not isinstance(text, str) or _AT_RE.fullmatch(text) is None:
        raise ValidationError(f"--at {validate.shown(text)} is not a time; use {AT_SYNTAX}")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"--at {validate.shown(text)} is not a time; use {AT_SYNTAX}") from None
    if when.tzinfo is not None:
        return when.astimezone(UTC)
    zones = sorted({node.hours.tz for node in flow.nodes.values() if isinstance(node, ScheduleNode)})
    if len(zones) > 1:
        raise ValidationError(f"--at {text}: number {number} uses schedules in several time zones "
                              f"({', '.join(zones)}); give the time with its offset, e.g. {text[:10]}T{text[11:16]}"
                              f"+02:00")
    tz = zone(zones[0]) if zones else UTC
    if tz is None:
        raise ValidationError(f"--at {text}: time zone {zones[0]} is not in the tz database; give the time with its "
                              f"offset")
    local = when.replace(tzinfo=tz)
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != when:
        raise ValidationError(f"--at {text}: there is no such time in {zones[0]} (the clocks go forward then); "
                              f"give another time or one with its offset")
    return local.astimezone(UTC)


def recent(store: Store, *, number: str | None = None, since: str | None = None,
           limit: int = 100) -> list[dict[str, Any]]:
    """Call records, newest first; `since` is a day YYYY-MM-DD (UTC). `recording`: the id of the call's recording
    (`vpbx recording export ID FILE`), None when it was not recorded."""
    if since:
        try:
            date.fromisoformat(since)
        except ValueError:
            raise ValidationError(f"--since {since!r} is not a date; use YYYY-MM-DD") from None
    rows = store.calls.recent(number=number, since=since, limit=limit)
    recorded = store.recordings.ids_for_calls(row["call_id"] for row in rows)
    return [{**row, "recording": recorded.get(row["call_id"])} for row in rows]


def stats(store: Store) -> list[dict[str, Any]]:
    """Per number: calls, answered, missed, minutes."""
    return store.calls.stats()


EXPORT_COLUMNS = ("call_id", "started_at", "direction", "number", "caller", "reached", "billsec", "account", "cost",
                  "rate_prefix", "disposition", "sip_account")


def month_records(store: Store, month: str) -> Iterator[dict[str, Any]]:
    """The records of the calls that started in `month` (YYYY-MM, UTC), oldest first, streamed, with EXPORT_COLUMNS:
    `cost` in minor units (None: not charged), `account` who paid, `rate_prefix` the outbound rate it was charged at.
    The month is checked before anything is read."""
    from vpbx.services.lifecycle import month_bounds

    first, nxt = month_bounds(month)
    return (dict(zip(EXPORT_COLUMNS, (row[c] for c in EXPORT_COLUMNS), strict=True))
            for row in store.calls.in_period(first.isoformat(), nxt.isoformat()))
