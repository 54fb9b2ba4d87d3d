"""Instants as text: the one ISO-8601 UTC format vpbx stores and prints, e.g. `2026-03-01T09:30:00+00:00`.

Rule: pure conversions, seconds precision, always UTC with an explicit `+00:00` offset (so stored values sort as text).
A naive datetime is taken to be UTC already (vpbx never stores local time). `utc_now()` / `utc_now_iso()` are the
only clock reads in the domain layer; code that needs a testable clock takes `now` as a parameter and calls
`to_iso(now)`.
"""
from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current instant, timezone-aware UTC (full precision: add intervals before formatting)."""
    return datetime.now(UTC)


def to_utc(dt: datetime) -> datetime:
    """`dt` as an aware UTC datetime; a naive one is taken to be UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def to_iso(dt: datetime) -> str:
    """`dt` as ISO-8601 UTC text at seconds precision (fractions are dropped, not rounded)."""
    return to_utc(dt).isoformat(timespec="seconds")


def utc_now_iso() -> str:
    """The current instant as ISO-8601 UTC text, e.g. `2026-03-01T09:30:00+00:00`."""
    return to_iso(utc_now())


def iso_from_epoch(ts: float | None) -> str | None:
    """A Unix timestamp (seconds) as ISO-8601 UTC text; None stays None (e.g. a call never answered)."""
    return None if ts is None else to_iso(datetime.fromtimestamp(ts, UTC))


def from_iso(text: str) -> datetime:
    """ISO-8601 text (as stored) -> aware UTC datetime; text without an offset is taken to be UTC.

    ValueError if `text` is not ISO-8601.
    """
    return to_utc(datetime.fromisoformat(text))


def local_day_start(now: datetime) -> str:
    """The ISO-8601 UTC instant the server's local day containing `now` began (a daily cap counts from there; a naive
    `now` is taken to be UTC, then seen in the server's time zone)."""
    local = to_utc(now).astimezone()
    return to_iso(local.replace(hour=0, minute=0, second=0, microsecond=0))
