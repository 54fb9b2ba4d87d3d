"""Storage of call records: one row per call the engine handled, written as the call goes.

Rules: the only SQL for table `calls`; returns plain dicts; every change is one transaction. A record is written in
three steps, each named for what it records: `add` when the call arrives, `note_node` while it moves through its
flow (so a restarted engine can adopt it), `finish` once it has ended (`ended_at` is what makes a record finished);
`note_payer` when a paying account's call starts (prepaid outbound calls), `set_charge` once it is rated. The engine's
writes use plain SQL (no sqlite-utils introspection on the hot path).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vpbx.storage.rows import Repo, now_iso


class CallRepo(Repo):
    """Call records (one row per call the engine handled)."""

    # The engine writes these on every call: plain SQL, no sqlite-utils table introspection on the hot path.
    _CALL_COLUMNS = frozenset({"answered_at", "ended_at", "reached", "disposition", "duration", "billsec", "voicemail",
                               "node", "restarts", "account", "cost", "connected_at", "bridged_leg", "bridge_id",
                               "transferred_from", "transferred_by", "transferred_to", "rate_prefix"})

    def add(self, call_id: str, number: str, caller: str, direction: str = "inbound",
            started_at: str | None = None, sip_account: str | None = None) -> None:
        """The call has arrived (a second add of one call_id keeps the first: an adopted call is not re-added).
        `sip_account`: the account that placed an outbound call."""
        with self.write():
            self.conn.execute("INSERT OR IGNORE INTO calls (call_id, number, caller, direction, started_at, "
                              "sip_account) VALUES (?, ?, ?, ?, ?, ?)",
                              [call_id, number, caller, direction, started_at or now_iso(), sip_account])

    def finish(self, call_id: str, **facts: Any) -> None:
        """The call has ended: write its closing facts (`ended_at` required; answered_at, disposition, billsec...)."""
        if not facts.get("ended_at"):
            raise ValueError("a finished call record needs ended_at")
        self._set(call_id, facts)

    def _set(self, call_id: str, values: dict[str, Any]) -> None:
        unknown = set(values) - self._CALL_COLUMNS
        if unknown:
            raise ValueError(f"not call record columns: {sorted(unknown)}")
        if not values:
            return
        with self.write():
            self.conn.execute(f"UPDATE calls SET {', '.join(f'{k} = ?' for k in values)} WHERE call_id = ?",
                              [*values.values(), call_id])

    def get(self, call_id: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM calls WHERE call_id = ?", [call_id])
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def open_for_channel(self, channel: str) -> dict[str, Any] | None:
        """The unfinished record of the call whose caller is `channel`: the call `channel` began, or the one it went
        on in after a transfer handed it over (call id f"{channel}-x..."); the latest if several."""
        pattern = channel.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-x%"
        cur = self.conn.execute("SELECT * FROM calls WHERE ended_at IS NULL AND (call_id = ? OR call_id LIKE ? "
                                "ESCAPE '\\') ORDER BY started_at DESC LIMIT 1", [channel, pattern])
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def unfinished(self) -> list[dict[str, Any]]:
        return list(self._table("calls").rows_where("ended_at IS NULL", order_by="started_at"))

    def note_node(self, call_id: str, node: str | None, restarts: int | None = None) -> None:
        """Where the call is in its flow (and how often an engine adopted it): what a restarted engine resumes."""
        values: dict[str, Any] = {"node": node}
        if restarts is not None:
            values["restarts"] = restarts
        self._set(call_id, values)

    def note_talk(self, call_id: str, *, answered_at: str | None, connected_at: str | None, reached: str | None,
                  bridged_leg: str | None, bridge_id: str | None) -> None:
        """The call is bridged with `bridged_leg` in `bridge_id`: what a restarted engine needs to adopt it as
        talking (vpbx.engine.recovery)."""
        self._set(call_id, {"answered_at": answered_at, "connected_at": connected_at, "reached": reached,
                            "bridged_leg": bridged_leg, "bridge_id": bridge_id})

    def note_transfer(self, call_id: str, **facts: str | None) -> None:
        """Who transferred the call (`transferred_by`), to what (`transferred_to`), or, for the call a transferred
        party went on in, where it came from (`transferred_from`)."""
        self._set(call_id, facts)

    def active_count(self, number: str) -> int:
        return int(self._scalar("SELECT count(*) FROM calls WHERE number = ? AND ended_at IS NULL", [number]))

    def recent(self, number: str | None = None, since: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[str] = []
        if number:
            where.append("number = ?")
            args.append(number)
        if since:
            where.append("started_at >= ?")
            args.append(since)
        return list(self._table("calls").rows_where(" AND ".join(where) or None, args, order_by="started_at desc",
                                                   limit=limit))

    def stats(self) -> list[dict[str, Any]]:
        sql = """SELECT number, count(*) AS calls, sum(answered_at IS NOT NULL) AS answered,
                 sum(answered_at IS NULL) AS missed, round(sum(billsec) / 60.0, 1) AS minutes
                 FROM calls WHERE ended_at IS NOT NULL GROUP BY number ORDER BY number"""
        return [dict(zip(("number", "calls", "answered", "missed", "minutes"), r, strict=True))
                for r in self.conn.execute(sql)]

    def set_charge(self, call_id: str, account: str | None, cost: int | None, rate_prefix: str | None = None) -> None:
        """The call is rated: who was charged, what it cost, and (an outbound call) the rate prefix it was charged
        at."""
        with self.write():
            self.conn.execute("UPDATE calls SET account = ?, cost = ?, rate_prefix = ? WHERE call_id = ?",
                              [account, cost, rate_prefix, call_id])

    def note_payer(self, call_id: str, account: str, rate_prefix: str | None) -> None:
        """A paying account's call has started: `account` pays its legs to external numbers, at the outbound rate of
        `rate_prefix` (None: rated per leg when it is dialled). The cost is set once it is charged."""
        self._set(call_id, {"account": account, "rate_prefix": rate_prefix})

    def unrated_outbound(self) -> list[dict[str, Any]]:
        """Finished calls a paying account was noted for that reached an external number (`reached` tel:+...) and
        were not charged yet: what `vpbx billing run` rates (call_id, number, reached, billsec, account)."""
        cur = self.conn.execute(
            "SELECT call_id, number, reached, billsec, account FROM calls WHERE account IS NOT NULL AND cost IS NULL "
            "AND ended_at IS NOT NULL AND reached LIKE 'tel:%' ORDER BY started_at")
        return [dict(zip(("call_id", "number", "reached", "billsec", "account"), r, strict=True)) for r in cur]

    def outbound_by_destination(self, since: str | None = None, before: str | None = None,
                                account: str | None = None) -> list[dict[str, Any]]:
        """Charged outbound calls (those with a rate prefix) that started in [since, before), optionally of one
        account, per rate prefix: the outbound rate's description (as the table has it now), calls, seconds of talk
        and cost."""
        where, args = ["c.rate_prefix IS NOT NULL", "c.cost IS NOT NULL"], []
        for clause, value in (("c.account = ?", account), ("c.started_at >= ?", since),
                              ("c.started_at < ?", before)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"""SELECT c.rate_prefix, coalesce(r.description, ''), count(*), coalesce(sum(c.billsec), 0),
                  coalesce(sum(c.cost), 0) FROM calls c LEFT JOIN outbound_rates r ON r.prefix = c.rate_prefix
                  WHERE {" AND ".join(where)} GROUP BY c.rate_prefix ORDER BY c.rate_prefix"""
        return [{"prefix": p, "description": d, "calls": int(n), "seconds": int(sec), "cost": int(cost)}
                for p, d, n, sec, cost in self.conn.execute(sql, args)]

    def in_period(self, since: str, before: str) -> Iterator[dict[str, Any]]:
        """The records of calls that started in [since, before) (ISO strings), oldest first, streamed."""
        cur = self.conn.execute("SELECT * FROM calls WHERE started_at >= ? AND started_at < ? "
                                "ORDER BY started_at, call_id", [since, before])
        names = [d[0] for d in cur.description]
        for row in cur:
            yield dict(zip(names, row, strict=True))

    def unrated(self) -> list[str]:
        """Finished inbound calls to an account's toll-free number, made since it was connected, not yet rated."""
        sql = """SELECT c.call_id FROM calls c JOIN numbers n ON n.number = c.number
                 WHERE c.cost IS NULL AND c.ended_at IS NOT NULL AND c.direction = 'inbound' AND n.type = 'tollfree'
                 AND n.account IS NOT NULL AND n.connected_on IS NOT NULL AND c.started_at >= n.connected_on
                 ORDER BY c.started_at"""
        return [r[0] for r in self.conn.execute(sql)]

    def account_totals(self, account: str, since: str, before: str) -> dict[str, int]:
        """Calls charged to `account` that started in [since, before): count, billed seconds and cost."""
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(billsec), 0), coalesce(sum(cost), 0) FROM calls "
            "WHERE account = ? AND started_at >= ? AND started_at < ?", [account, since, before]).fetchone()
        return {"calls": int(row[0]), "seconds": int(row[1]), "cost": int(row[2])}

    # ---- outbound calls of a SIP account (the toll-fraud guards, vpbx.dialplan.outbound) ----
    def outbound_seconds(self, sip_account: str, since: str) -> int:
        """Billed seconds of `sip_account`'s outbound calls that started at or after `since` (ISO UTC)."""
        return int(self._scalar("SELECT coalesce(sum(billsec), 0) FROM calls WHERE sip_account = ? AND "
                                "direction = 'outbound' AND started_at >= ?", [sip_account, since]))

    def outbound_use(self, sip_account: str, since: str) -> dict[str, int]:
        """`vpbx sip show`: the account's outbound calls since `since`: calls, billed seconds, in progress, and the
        calls refused per rule (`refused_<rule>`)."""
        calls, seconds, running = self.conn.execute(
            "SELECT count(*), coalesce(sum(billsec), 0), coalesce(sum(ended_at IS NULL), 0) FROM calls "
            "WHERE sip_account = ? AND direction = 'outbound' AND started_at >= ?", [sip_account, since]).fetchone()
        use = {"calls": int(calls), "seconds": int(seconds), "in_progress": int(running)}
        for rule, count in self.conn.execute("SELECT rule, count(*) FROM outbound_refusals WHERE sip_account = ? "
                                             "AND at >= ? GROUP BY rule ORDER BY rule", [sip_account, since]):
            use[f"refused_{rule}"] = int(count)
        return use

    def add_refusal(self, sip_account: str, dest: str, rule: str, reason: str, at: str | None = None) -> None:
        """An outbound call `sip_account` placed was refused by `rule`."""
        with self.write():
            self.conn.execute("INSERT INTO outbound_refusals (sip_account, dest, rule, reason, at) "
                              "VALUES (?, ?, ?, ?, ?)", [sip_account, dest, rule, reason, at or now_iso()])
