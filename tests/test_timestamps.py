"""vpbx.domain.timestamps: one ISO-8601 UTC format, seconds precision."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vpbx.domain import timestamps as ts


def test_to_iso_is_utc_at_seconds_precision() -> None:
    kyiv = timezone(timedelta(hours=2))
    assert ts.to_iso(datetime(2026, 3, 1, 11, 30, 5, 999_999, tzinfo=kyiv)) == "2026-03-01T09:30:05+00:00"
    assert ts.to_iso(datetime(2026, 3, 1, 9, 30, 5)) == "2026-03-01T09:30:05+00:00"     # naive is UTC


def test_epoch() -> None:
    assert ts.iso_from_epoch(None) is None
    assert ts.iso_from_epoch(0) == "1970-01-01T00:00:00+00:00"
    assert ts.iso_from_epoch(1_772_357_405.7) == "2026-03-01T09:30:05+00:00"


def test_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    text = ts.utc_now_iso()
    assert text.endswith("+00:00") and len(text) == 25
    assert before <= ts.from_iso(text) <= datetime.now(UTC)
    assert ts.utc_now().tzinfo is not None


def test_from_iso_round_trips() -> None:
    text = "2026-03-01T09:30:05+00:00"
    assert ts.to_iso(ts.from_iso(text)) == text
    assert ts.from_iso("2026-03-01T11:30:05+02:00") == ts.from_iso(text)
    assert ts.from_iso("2026-03-01T09:30:05").tzinfo == UTC
    with pytest.raises(ValueError):
        ts.from_iso("yesterday")
