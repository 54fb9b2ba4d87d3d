"""Business hours: a named schedule (open hours per weekday, yearly holidays, one-off closed dates, a time zone) and
the pure answer to "is it open at this instant?".

Rule: pure, no I/O. A time zone's rules come in as data: `ZoneOffsets`, the UTC offsets in force over a window of
time, which vpbx.services.schedules computes with zoneinfo (this layer may not read tz files). `check()` is the one
full-match validation of a schedule's texts; of the zone it checks the name's syntax only (whether the tz database
knows the zone is the service's check).

    open hours    "DAYS HH:MM-HH:MM[,HH:MM-HH:MM...]"   DAYS: mon, mon-fri, fri-mon (wraps round), mon,wed,fri
                  a range is [start, end) in local wall-clock time: 09:00-18:00 is open at 17:59:59 and closed at
                  18:00:00; 24:00 ends a day; a range never crosses midnight (write 22:00-24:00 and 00:00-06:00)
    closed dates  YYYY-MM-DD   closed all that local day
    holidays      MM-DD        closed all that local day, every year

Daylight saving needs nothing special: the local wall-clock time of an instant comes from the offset in force, so a
range means the same clock time on either side of a change (on the day clocks go forward the skipped hour is simply
not there; on the day they go back the repeated hour is open or closed both times alike).
"""
from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from vpbx.domain.errors import ValidationError
from vpbx.domain.records import Schedule
from vpbx.domain.validation import NAME_RE, shown

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60
MAX_OPEN = 50            # --open entries per schedule
MAX_CLOSED = 1000        # one-off closed dates per schedule
MAX_HOLIDAYS = 366
ZONE_MAX = 64

OPEN_SYNTAX = "DAYS HH:MM-HH:MM, e.g. mon-fri 09:00-18:00 or sat 10:00-14:00,15:00-17:00"

_DAY = "(?:mon|tue|wed|thu|fri|sat|sun)"
_DAYS_RE = re.compile(rf"{_DAY}(?:-{_DAY})?(?:,{_DAY}(?:-{_DAY})?)*")
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_RANGE_RE = re.compile(rf"({_TIME})-({_TIME}|24:00)")
_RANGES_RE = re.compile(rf"{_RANGE_RE.pattern}(?:,{_RANGE_RE.pattern})*")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HOLIDAY_RE = re.compile(r"[0-9]{2}-[0-9]{2}")
ZONE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}")

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

Range = tuple[int, int]          # [start, end) in minutes of the local day
Week = tuple[tuple[Range, ...], ...]   # seven days, Monday first; each day's ranges sorted, none overlapping


# --------------------------------------------------------------------------------------------------------------------
# Texts


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_range(r: Range) -> str:
    return f"{_hhmm(r[0])}-{_hhmm(r[1])}"


def parse_days(text: str, obj: str = "schedule") -> tuple[int, ...]:
    """"mon-fri" -> (0, 1, 2, 3, 4); "fri-mon" -> (0, 4, 5, 6); "mon,wed" -> (0, 2). Full match; lowercase."""
    if not isinstance(text, str) or _DAYS_RE.fullmatch(text) is None:
        raise ValidationError(f"{obj}: days {shown(text)} are not valid; use mon, tue, wed, thu, fri, sat, sun, a "
                              f"range like mon-fri or a list like mon,wed,fri")
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        a = DAYS.index(first)
        b = DAYS.index(last) if last else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return tuple(sorted(days))


def format_days(days: Sequence[int]) -> str:
    """(0, 1, 2, 3, 4) -> "mon-fri"; (0, 2) -> "mon,wed"; runs of three or more days become ranges."""
    out: list[str] = []
    ordered = sorted(set(days))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{DAYS[ordered[i]]}-{DAYS[ordered[j]]}")
        else:
            out.extend(DAYS[d] for d in ordered[i:j + 1])
        i = j + 1
    return ",".join(out)


def parse_ranges(text: str, obj: str = "schedule") -> tuple[Range, ...]:
    """"09:00-13:00,14:00-18:00" -> ((540, 780), (840, 1080)). Full match; every range ends after it starts."""
    if not isinstance(text, str) or _RANGES_RE.fullmatch(text) is None:
        raise ValidationError(f"{obj}: hours {shown(text)} are not valid; use HH:MM-HH:MM (00:00 to 24:00, "
                              f"several joined by commas: 09:00-13:00,14:00-18:00)")
    ranges: list[Range] = []
    for part in text.split(","):
        start, end = part.split("-")
        r = (_minutes(start), _minutes(end))
        if r[1] <= r[0]:
            raise ValidationError(
                f"{obj}: {part} does not end after it starts; a range ends on the day it starts (24:00 is "
                f"midnight): write a night as {start}-24:00 and 00:00-{end} on the next day")
        ranges.append(r)
    return tuple(ranges)


def open_entry(days: str, hours: str, obj: str = "schedule") -> str:
    """One `--open DAYS HOURS` as its canonical text, e.g. ("Mon-Fri", "09:00-18:00") -> "mon-fri 09:00-18:00"."""
    day_list = parse_days(days.lower() if isinstance(days, str) else days, obj)
    return f"{format_days(day_list)} {','.join(format_range(r) for r in parse_ranges(hours, obj))}"


def _split_entry(entry: object, obj: str) -> tuple[tuple[int, ...], tuple[Range, ...]]:
    if not isinstance(entry, str) or entry.count(" ") != 1:
        raise ValidationError(f"{obj}: open hours {shown(entry)} are not valid; use {OPEN_SYNTAX}")
    days, hours = entry.split(" ")
    return parse_days(days, obj), parse_ranges(hours, obj)


def closed_date(text: object, obj: str = "schedule") -> str:
    """A one-off closed date, YYYY-MM-DD (a real date)."""
    if isinstance(text, str) and _DATE_RE.fullmatch(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise ValidationError(f"{obj}: closed date {shown(text)} is not a date; use YYYY-MM-DD, e.g. 2026-12-31")


def holiday(text: object, obj: str = "schedule") -> str:
    """A yearly holiday, MM-DD (02-29 counts in leap years only)."""
    if isinstance(text, str) and _HOLIDAY_RE.fullmatch(text):
        try:
            date.fromisoformat(f"2000-{text}")       # a leap year: 02-29 is a valid holiday
            return text
        except ValueError:
            pass
    raise ValidationError(f"{obj}: holiday {shown(text)} is not a day of the year; use MM-DD, e.g. 01-01")


def zone_name(text: object, obj: str = "schedule") -> str:
    """The syntax of a tz database name (Europe/Kyiv, UTC, America/Argentina/Buenos_Aires, Etc/GMT-3)."""
    if not isinstance(text, str) or len(text) > ZONE_MAX or ZONE_RE.fullmatch(text) is None:
        raise ValidationError(f"{obj}: time zone {shown(text)} is not a tz database name; use one like "
                              f"Europe/Kyiv or UTC")
    return text


def week_of(entries: Sequence[str], obj: str = "schedule") -> Week:
    """The open hours of every weekday from canonical entries; ValidationError when two ranges of a day overlap."""
    days: list[list[tuple[Range, str]]] = [[] for _ in DAYS]
    for entry in entries:
        day_list, ranges = _split_entry(entry, obj)
        for d in day_list:
            days[d].extend((r, entry) for r in ranges)
    week: list[tuple[Range, ...]] = []
    for d, ranges_of_day in enumerate(days):
        ranges_of_day.sort()
        for (a, _), (b, _) in itertools.pairwise(ranges_of_day):
            if b[0] < a[1]:
                raise ValidationError(
                    f"{obj}: {DAYS[d]} {format_range(b)} overlaps {DAYS[d]} {format_range(a)}; give each day "
                    f"open hours that do not overlap (join them into one range or change one --open)")
        week.append(tuple(r for r, _ in ranges_of_day))
    return tuple(week)


def check(schedule: Schedule) -> Schedule:
    """`schedule` with its texts checked (full match) and in canonical form: open entries as `open_entry` writes
    them, closed dates and holidays sorted. ValidationError names the schedule and the fix."""
    name = schedule.name
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
        raise ValidationError(f"schedule name {shown(name)} is not valid; use 1-64 letters, digits, '_', '.', '-', "
                              f"starting with a letter or digit")
    obj = f"schedule {name}"
    zone_name(schedule.tz, obj)
    if not schedule.open:
        raise ValidationError(f"{obj} has no open hours, so it would never be open; give at least one --open "
                              f"{OPEN_SYNTAX}")
    for what, items, limit in (("--open entries", schedule.open, MAX_OPEN),
                               ("closed dates", schedule.closed, MAX_CLOSED),
                               ("holidays", schedule.holidays, MAX_HOLIDAYS)):
        if len(items) > limit:
            raise ValidationError(f"{obj} has {len(items)} {what}; at most {limit} are allowed")
    entries = []
    for entry in schedule.open:
        day_list, ranges = _split_entry(entry, obj)
        entries.append(f"{format_days(day_list)} {','.join(format_range(r) for r in ranges)}")
    week_of(entries, obj)
    closed = [closed_date(d, obj) for d in schedule.closed]
    holidays = [holiday(h, obj) for h in schedule.holidays]
    for what, days in (("closed date", closed), ("holiday", holidays)):
        seen: set[str] = set()
        for item in days:
            if item in seen:
                raise ValidationError(f"{obj}: {what} {item} is given twice; give it once")
            seen.add(item)
    return Schedule(name=name, tz=schedule.tz, open=tuple(entries), closed=tuple(sorted(closed)),
                    holidays=tuple(sorted(holidays)))


# --------------------------------------------------------------------------------------------------------------------
# Time zones as data


@dataclass(frozen=True)
class ZoneOffsets:
    """The UTC offsets of time zone `tz`: `changes` are (UTC epoch second, offset in seconds in force from then on),
    sorted by time. Before the first change the first offset holds, after the last the last one: the service computes
    a window around the instants that matter (vpbx.services.schedules.zone_offsets)."""

    tz: str
    changes: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.changes:
            raise ValueError("ZoneOffsets needs at least one offset")

    @classmethod
    def fixed(cls, tz: str, offset_s: int = 0) -> ZoneOffsets:
        """A zone whose offset never changes (UTC, Etc/GMT-3)."""
        return cls(tz, ((0, offset_s),))

    def offset(self, instant: float) -> int:
        """Seconds to add to UTC at `instant` (UTC epoch seconds) to get local wall-clock time."""
        i = bisect_right(self.changes, instant, key=lambda change: change[0]) - 1
        return self.changes[max(i, 0)][1]


def local_time(instant: float, zone: ZoneOffsets) -> datetime:
    """The local wall-clock time (naive) of UTC epoch `instant` in `zone`."""
    local = instant + zone.offset(instant)
    days, seconds = divmod(local, 86400)
    midnight = datetime.combine(date.fromordinal(_EPOCH_ORDINAL + int(days)), datetime.min.time())
    return midnight + timedelta(seconds=seconds)


# --------------------------------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Hours:
    """A checked schedule with its zone's offsets, ready to answer "open at this instant?" (`is_open`).

    Build it with `Hours.of(schedule, zone)`; `explain(instant)` says why, for dry runs and logs.
    """

    name: str
    tz: str
    week: Week
    closed: frozenset[str]
    holidays: frozenset[str]
    zone: ZoneOffsets = field(compare=False)    # the window differs from call to call; the rules do not
    open: tuple[str, ...] = ()

    @classmethod
    def of(cls, schedule: Schedule, zone: ZoneOffsets) -> Hours:
        s = check(schedule)
        return cls(s.name, s.tz, week_of(s.open), frozenset(s.closed), frozenset(s.holidays), zone, s.open)

    def local(self, instant: float) -> datetime:
        return local_time(instant, self.zone)

    def _decide(self, instant: float) -> tuple[bool, str]:
        t = self.local(instant)
        day = t.date()
        if day.isoformat() in self.closed:
            return False, f"closed date {day.isoformat()}"
        if day.strftime("%m-%d") in self.holidays:
            return False, f"holiday {day.strftime('%m-%d')}"
        minute = t.hour * 60 + t.minute + (t.second + t.microsecond / 1e6) / 60
        ranges = self.week[t.weekday()]
        name = DAYS[t.weekday()]
        for start, end in ranges:
            if start <= minute < end:
                return True, f"{name} {format_range((start, end))}"
        if not ranges:
            return False, f"no open hours on {name}"
        return False, f"outside {name} {','.join(format_range(r) for r in ranges)}"

    def is_open(self, instant: float) -> bool:
        """Open at UTC epoch `instant`? (local wall-clock time in the schedule's zone)."""
        return self._decide(instant)[0]

    def explain(self, instant: float) -> str:
        """E.g. "open at Thu 2026-12-31 10:00 Europe/Kyiv (thu 09:00-18:00)", "closed at ... (holiday 01-01)"."""
        is_open, why = self._decide(instant)
        t = self.local(instant)
        day = DAYS[t.weekday()].capitalize()
        return f"{'open' if is_open else 'closed'} at {day} {t:%Y-%m-%d %H:%M} {self.tz} ({why})"
