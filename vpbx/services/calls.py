"""Calls seen from the command line: a dry run of a number's call flow, the call records, per-number totals.

Rule: read-only. A dry run compiles the number's flow as the engine would (`vpbx.services.flows.load_flow`) and runs
it through the pure call machine with scripted keys and outcomes.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

from vpbx.dialplan import simulate as run_flow
from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.services.flows import load_flow

if TYPE_CHECKING:
    from vpbx.storage.store import Store

DEFAULT_CALLER = "+10000000000"


def simulate(store: Store, number: str, *, caller: str = DEFAULT_CALLER, dtmf: str = "",
             no_answer: Iterable[str] = (), busy: Iterable[str] = ()) -> list[str]:
    """Run `number`'s call flow without Asterisk: one line per step. `dtmf` are the keys the caller presses (one per
    menu prompt); `no_answer` / `busy` are destinations that ring out / are busy."""
    validate.dtmf(dtmf)
    flow = load_flow(store, store.numbers.get(number))
    lines: list[str] = run_flow(flow, caller, dtmf, set(no_answer), set(busy))
    return lines


def recent(store: Store, *, number: str | None = None, since: str | None = None,
           limit: int = 100) -> list[dict[str, Any]]:
    """Call records, newest first; `since` is a day YYYY-MM-DD (UTC)."""
    if since:
        try:
            date.fromisoformat(since)
        except ValueError:
            raise ValidationError(f"--since {since!r} is not a date; use YYYY-MM-DD") from None
    return store.calls.recent(number=number, since=since, limit=limit)


def stats(store: Store) -> list[dict[str, Any]]:
    """Per number: calls, answered, missed, minutes."""
    return store.calls.stats()
