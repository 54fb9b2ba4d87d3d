"""Business hours: named schedules that routes, fallbacks and IVR options branch on
(`hours:NAME?open=DEST&closed=DEST`, vpbx.domain.destinations).

Rule: a schedule's texts are checked by vpbx.domain.schedules (full match, canonical form) and its zone against the
tz database (zoneinfo) before anything is written; a changed schedule is checked by compiling every flow that
branches on it, inside the transaction that writes it. A schedule a route uses cannot be removed.
"""
from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vpbx.domain import schedules as rules
from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import Schedule, to_dict
from vpbx.domain.schedules import Hours
from vpbx.domain.timestamps import utc_now
from vpbx.services.flows import zone, zone_offsets
from vpbx.services.routing import check_flows

if TYPE_CHECKING:
    from vpbx.storage.store import Store

# in the tz database's directory but not a place: the machine's own zone (changes with the machine) and filler
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
NONE = "none"    # `--closed none` / `--holiday none`: no closed dates / holidays


def known_zone(name: str, obj: str) -> str:
    """`name` if it is a tz database zone (full match of its syntax first, so nothing odd reaches zoneinfo)."""
    rules.zone_name(name, obj)
    if name in NOT_ZONES or name not in zoneinfo.available_timezones() or zone(name) is None:
        raise ValidationError(f"{obj}: time zone {validate.shown(name)} is not in the tz database; use one like "
                              f"Europe/Kyiv or UTC (`timedatectl list-timezones` lists them)")
    return name


def _checked(schedule: Schedule) -> Schedule:
    checked = rules.check(schedule)
    known_zone(checked.tz, f"schedule {checked.name}")
    return checked


def _open_entries(name: str, open_hours: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(rules.open_entry(days, hours, f"schedule {name}") for days, hours in open_hours)


def _dates(values: Sequence[str]) -> tuple[str, ...]:
    """`--closed` / `--holiday` values; `none` alone means none."""
    return () if tuple(values) == (NONE,) else tuple(values)


def add(store: Store, name: str, tz: str, open_hours: Sequence[tuple[str, str]], *, closed: Sequence[str] = (),
        holidays: Sequence[str] = ()) -> Schedule:
    """Add a schedule: `open_hours` are (DAYS, HH:MM-HH:MM[,...]) pairs, `closed` one-off dates YYYY-MM-DD,
    `holidays` yearly days MM-DD, all in zone `tz`."""
    validate.name(name, "schedule")
    record = _checked(Schedule(name=name, tz=tz, open=_open_entries(name, open_hours), closed=tuple(closed),
                               holidays=tuple(holidays)))
    with store.write():
        return store.schedules.add(record)


def set_(store: Store, name: str, *, tz: str | None = None, open_hours: Sequence[tuple[str, str]] = (),
         closed: Sequence[str] = (), holidays: Sequence[str] = ()) -> Schedule:
    """Change a schedule: each part given replaces that part (`closed` / `holidays` of just `none` empty it)."""
    with store.write():
        current = store.schedules.get(name)
        changes: dict[str, Any] = {}
        if tz is not None:
            changes["tz"] = tz
        if open_hours:
            changes["open"] = _open_entries(name, open_hours)
        if closed:
            changes["closed"] = _dates(closed)
        if holidays:
            changes["holidays"] = _dates(holidays)
        if not changes:
            raise ValidationError(f"schedule {name}: nothing to change; give --tz, --open, --closed or --holiday")
        record = _checked(replace(current, **changes))
        users = [store.numbers.get(u.partition(" ")[2]) for u in store.schedules.used_by(name)
                 if u.startswith("number ")]
        ivrs = [store.ivrs.get(u.partition(" ")[2]) for u in store.schedules.used_by(name) if u.startswith("IVR ")]
        check_flows(store, numbers=users, ivrs=ivrs, schedules=[record])
        return store.schedules.update(record)


def remove(store: Store, name: str) -> None:
    """Remove a schedule (refused while a number or IVR branches on it)."""
    store.schedules.remove(name)


def state(schedule: Schedule, at: datetime) -> str:
    """Open or closed at `at`, and why: "open at Thu 2026-12-31 10:00 Europe/Kyiv (thu 09:00-18:00)"."""
    offsets = zone_offsets(schedule.tz, at)
    if offsets is None:
        return f"unknown: time zone {schedule.tz} is not in the tz database"
    return Hours.of(schedule, offsets).explain(at.timestamp())


def show(store: Store, name: str, at: datetime | None = None) -> dict[str, Any]:
    """A schedule, whether it is open `at` (default now) and what branches on it."""
    schedule = store.schedules.get(name)
    return {**to_dict(schedule), "now": state(schedule, at or utc_now()), "used_by": store.schedules.used_by(name)}


def listing(store: Store, at: datetime | None = None) -> list[dict[str, Any]]:
    """Every schedule, with whether it is open `at` (default now)."""
    when = at or utc_now()
    return [{**to_dict(s), "now": state(s, when)} for s in store.schedules.all()]
