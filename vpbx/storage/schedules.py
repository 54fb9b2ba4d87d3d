"""Storage of business-hours schedules (vpbx.domain.schedules).

Rules: the only SQL for the `schedules` table; returns Schedule records (open hours, closed dates and holidays stored
as JSON lists); every change is one transaction. A schedule a route still branches on cannot be removed: "who names
it" compares parsed destinations (`Destination.schedule`), never text matched by hand.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from vpbx.domain.destinations import try_parse
from vpbx.domain.errors import ConflictError, NotFoundError
from vpbx.domain.records import Schedule
from vpbx.storage.rows import Repo, now_iso

_LISTS = ("open", "closed", "holidays")


def _row(schedule: Schedule) -> dict[str, Any]:
    return {"name": schedule.name, "tz": schedule.tz, **{k: json.dumps(list(getattr(schedule, k))) for k in _LISTS}}


def _record(row: dict[str, Any]) -> Schedule:
    lists = {k: tuple(json.loads(row[k] or "[]")) for k in _LISTS}
    return Schedule(name=row["name"], tz=row["tz"], **lists)


def schedule_users(conn: sqlite3.Connection, name: str) -> list[str]:
    """Numbers (route, fallback) and IVR menus (options) that branch on schedule `name`, sorted."""
    needle = f"hours:{name}?"        # SQL narrows the candidates; the parsed destination decides
    users: set[str] = set()
    for number, route, fallback in conn.execute(
            "SELECT number, route, fallback FROM numbers WHERE instr(route, ?) > 0 OR instr(fallback, ?) > 0",
            [needle, needle]):
        if any((d := try_parse(text)) is not None and d.schedule == name for text in (route, fallback)):
            users.add(f"number {number}")
    for ivr, options in conn.execute("SELECT name, options FROM ivrs WHERE instr(options, ?) > 0", [needle]):
        if any((d := try_parse(dest)) is not None and d.schedule == name for _key, dest in json.loads(options)):
            users.add(f"IVR {ivr}")
    return sorted(users)


class ScheduleRepo(Repo):
    """Business-hours schedules."""

    def add(self, schedule: Schedule) -> Schedule:
        with self.write():
            if self._exists("schedules", "name", schedule.name):
                raise ConflictError(f"schedule {schedule.name} already exists; change it with `vpbx schedule set "
                                    f"{schedule.name} ...` or pick another name")
            self._table("schedules").insert({**_row(schedule), "created_at": now_iso()})
        return schedule

    def get(self, name: str) -> Schedule:
        rows = list(self._table("schedules").rows_where("name = ?", [name]))
        if not rows:
            raise NotFoundError(f"schedule {name} not found; list them with `vpbx schedule list`")
        return _record(rows[0])

    def all(self) -> list[Schedule]:
        return [_record(r) for r in self._table("schedules").rows_where(order_by="name")]

    def update(self, schedule: Schedule) -> Schedule:
        """Store `schedule`'s zone, open hours, closed dates and holidays (the name must exist)."""
        with self.write():
            self.get(schedule.name)
            row = _row(schedule)
            del row["name"]
            self._table("schedules").update(schedule.name, row)
        return schedule

    def used_by(self, name: str) -> list[str]:
        """Numbers and IVR menus whose routing branches on this schedule."""
        return schedule_users(self.conn, name)

    def remove(self, name: str) -> None:
        with self.write():
            self.get(name)
            users = self.used_by(name)
            if users:
                raise ConflictError(f"schedule {name} is still used by {', '.join(users)}; route those elsewhere "
                                    f"first")
            self._table("schedules").delete(name)
