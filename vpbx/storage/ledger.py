"""Storage of customers' accounts and their ledger, the tariff source, the toll-free and the outbound rate tables.

Rules: the only SQL for these tables; returns Account records or plain dicts; every change is one transaction. An
account's balance changes only through `AccountRepo.post`, which writes the ledger row in the same transaction, so
balance == sum(ledger.amount) always (`mismatches()` is the check); a renewal period or a call is charged once (unique
indexes). A closed account is kept, never deleted: its ledger is history. Amounts are int minor units.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vpbx.domain.errors import ConflictError, NotFoundError
from vpbx.domain.records import Account
from vpbx.storage.rows import Repo, from_row, now_iso

if TYPE_CHECKING:
    from vpbx.billing.outbound import OutboundRate

_OUTBOUND_COLUMNS = "prefix, price, initial, increment, connection, description"


class AccountRepo(Repo):
    """Customers' accounts and their ledger: the balance changes only through `post`."""

    def add(self, account: Account) -> Account:
        with self.write():
            row = self.conn.execute("SELECT closed_at FROM accounts WHERE name = ?", [account.name]).fetchone()
            if row and row[0]:
                raise ConflictError(f"account {account.name} was closed on {row[0][:10]} and its ledger is kept under "
                                    "that name; pick another name")
            if row:
                raise ConflictError(f"account {account.name} already exists; "
                                    f"see it with `vpbx account show {account.name}`")
            if account.org_id is not None:
                self._check_org_id(account.org_id, account.name)
            self._insert("accounts", account, balance=0)
        return replace(account, balance=0)

    def _check_org_id(self, org_id: int, name: str) -> None:
        """Organisation IDs are extensions callers type: unique, and not an all-digit SIP login."""
        holder = self._scalar("SELECT name FROM accounts WHERE org_id = ? AND name != ?", [org_id, name])
        if holder is not None:
            raise ConflictError(f"organisation ID {org_id} is already account {holder}'s; pick another --org-id")
        if self._exists("sip_accounts", "login", str(org_id)):
            raise ConflictError(f"organisation ID {org_id} is SIP account {org_id}'s extension already; "
                                "pick another --org-id")
        holder = self._scalar("SELECT login FROM sip_accounts WHERE extension = ?", [str(org_id)])
        if holder is not None:
            raise ConflictError(f"organisation ID {org_id} is SIP account {holder}'s extension already; "
                                "pick another --org-id")

    def get(self, name: str, include_closed: bool = False) -> Account:
        rows = list(self._table("accounts").rows_where("name = ?", [name]))
        if not rows:
            raise NotFoundError(f"account {name} not found; list accounts with `vpbx account list`")
        if rows[0]["closed_at"] and not include_closed:
            raise NotFoundError(f"account {name} was closed on {rows[0]['closed_at'][:10]}; its ledger is kept "
                                f"(`vpbx account transactions {name}`)")
        return from_row(Account, rows[0])

    def all(self) -> list[Account]:
        return self._records("accounts", Account, "closed_at IS NULL", order_by="name")

    def update(self, name: str, **changes: Any) -> Account:
        with self.write():
            current = self.get(name)
            if "balance" in changes:
                raise ValueError("balance changes only through AccountRepo.post")
            if changes.get("org_id") is not None:
                self._check_org_id(changes["org_id"], name)
            self._table("accounts").update(name, changes)
            return replace(current, **changes)

    def close(self, name: str) -> None:
        with self.write():
            account = self.get(name)
            held = [r[0] for r in
                    self.conn.execute("SELECT number FROM numbers WHERE account = ? ORDER BY number", [name])]
            if held:
                raise ConflictError(f"account {name} still holds {', '.join(held)}; "
                                    "release them with `vpbx number release`")
            logins = [r[0] for r in
                      self.conn.execute("SELECT login FROM sip_accounts WHERE account = ? ORDER BY login", [name])]
            if logins:
                raise ConflictError(f"account {name} still pays for SIP account(s) {', '.join(logins)}; detach them "
                                    f"with `vpbx sip set {logins[0]} --no-account`")
            trunks = [r[0] for r in
                      self.conn.execute("SELECT name FROM trunks WHERE account = ? ORDER BY name", [name])]
            if trunks:
                raise ConflictError(f"account {name} still owns trunk(s) {', '.join(trunks)}; detach them with "
                                    f"`vpbx trunk set {trunks[0]} --no-account`")
            if account.balance != 0:
                from vpbx.billing import format_amount

                amount = format_amount(abs(account.balance)).replace(" ", "")
                fix = (f"refund it with `vpbx account adjust {name} --ref refund -- -{amount}`" if account.balance > 0
                       else f"collect it with `vpbx account topup {name} {amount}`")
                raise ConflictError(f"account {name} has a non-zero balance ({format_amount(account.balance)}); "
                                    f"{fix} first")
            self.conn.execute("DELETE FROM waitlist WHERE account = ?", [name])
            # closed, not deleted: revenue, statements and `account check` keep its history; the org ID is freed
            self.conn.execute("UPDATE accounts SET closed_at = ?, org_id = NULL WHERE name = ?", [now_iso(), name])

    def post(self, account: str, amount: int, kind: str, effective_on: str, *, number: str | None = None,
             call_id: str | None = None, period_start: str | None = None, period_end: str | None = None,
             ref: str = "") -> int:
        """Change `account`'s balance by `amount` (minor units) and write its ledger row; returns the new balance.
        Raises ConflictError if that renewal period or call was already charged."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("amounts are int minor units")
        with self.write():
            self.get(account)
            self.conn.execute("UPDATE accounts SET balance = balance + ? WHERE name = ?", [amount, account])
            balance = int(self._scalar("SELECT balance FROM accounts WHERE name = ?", [account]))
            try:
                self.conn.execute(
                    "INSERT INTO ledger (account, amount, balance_after, kind, number, call_id, period_start, "
                    "period_end, ref, effective_on, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [account, amount, balance, kind, number, call_id, period_start, period_end, ref, effective_on,
                     now_iso()])
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"{kind} for {number or call_id} ({period_start or call_id}) "
                                    "is already charged") from exc
            return balance

    def entries(self, account: str | None = None, since: str | None = None,
                before: str | None = None) -> list[dict[str, Any]]:
        """Ledger rows oldest first; `since`/`before` are YYYY-MM-DD bounds on effective_on."""
        where: list[str] = []
        args: list[str] = []
        for clause, value in (("account = ?", account), ("effective_on >= ?", since), ("effective_on < ?", before)):
            if value is not None:
                where.append(clause)
                args.append(value)
        return list(self._table("ledger").rows_where(" AND ".join(where) or None, args, order_by="id"))

    def ledger_sum(self, account: str, before: str | None = None) -> int:
        sql, args = "SELECT coalesce(sum(amount), 0) FROM ledger WHERE account = ?", [account]
        if before is not None:
            sql, args = sql + " AND effective_on < ?", [*args, before]
        return int(self._scalar(sql, args))

    def mismatches(self) -> list[dict[str, Any]]:
        """Accounts whose balance differs from the sum of their ledger (should always be empty)."""
        sql = """SELECT a.name, a.balance, coalesce(sum(l.amount), 0) AS ledger_sum FROM accounts a
                 LEFT JOIN ledger l ON l.account = a.name GROUP BY a.name HAVING a.balance != ledger_sum"""
        return [dict(zip(("account", "balance", "ledger_sum"), r, strict=True)) for r in self.conn.execute(sql)]

    def revenue_by_month(self) -> list[dict[str, Any]]:
        sql = """SELECT substr(effective_on, 1, 7) AS month, -sum(amount) AS revenue, count(*) AS charges FROM ledger
                 WHERE kind IN ('connection', 'period', 'renewal', 'call') GROUP BY month ORDER BY month"""
        return [dict(zip(("month", "revenue", "charges"), r, strict=True)) for r in self.conn.execute(sql)]


class RateRepo(Repo):
    """The tariff source, the toll-free rate table and the outbound rate table."""

    def save_tariff(self, source: str) -> None:
        with self.write():
            self.conn.execute("INSERT OR REPLACE INTO tariff (id, source, loaded_at) VALUES (1, ?, ?)",
                              [source, now_iso()])

    def tariff_source(self) -> str | None:
        source = self._scalar("SELECT source FROM tariff WHERE id = 1")
        return str(source) if source is not None else None

    def replace(self, rows: Sequence[tuple[str, int, str]]) -> int:
        """The toll-free rate table is replaced whole, in one transaction."""
        with self.write():
            self.conn.execute("DELETE FROM rates")
            self.conn.executemany("INSERT INTO rates (prefix, price, description) VALUES (?, ?, ?)", rows)
        return len(rows)

    def table(self) -> list[tuple[str, int, str]]:
        return [(str(p), int(price), str(d)) for p, price, d in
                self.conn.execute("SELECT prefix, price, description FROM rates ORDER BY prefix")]

    def lookup(self, prefixes: Sequence[str]) -> tuple[str, int] | None:
        """The longest of `prefixes` in the rate table, with its price per minute (an index probe per prefix)."""
        if not prefixes:
            return None
        row = self.conn.execute(
            f"SELECT prefix, price FROM rates WHERE prefix IN ({', '.join('?' for _ in prefixes)}) "
            "ORDER BY length(prefix) DESC LIMIT 1", list(prefixes)).fetchone()
        return (row[0], int(row[1])) if row else None

    # ---- outbound rates (vpbx.billing.outbound) -------------------------------------------------------------------
    def replace_outbound(self, rates: Sequence[OutboundRate]) -> int:
        """The outbound rate table is replaced whole, in one transaction."""
        with self.write():
            self.conn.execute("DELETE FROM outbound_rates")
            self.conn.executemany(f"INSERT INTO outbound_rates ({_OUTBOUND_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                                  [(r.prefix, r.price, r.initial, r.increment, r.connection, r.description)
                                   for r in rates])
        return len(rates)

    def outbound_table(self) -> list[OutboundRate]:
        from vpbx.billing.outbound import OutboundRate

        return [OutboundRate(str(p), int(price), int(initial), int(increment), int(connection), str(d))
                for p, price, initial, increment, connection, d in
                self.conn.execute(f"SELECT {_OUTBOUND_COLUMNS} FROM outbound_rates ORDER BY prefix")]

    def outbound_lookup(self, number: str) -> OutboundRate | None:
        """The rate of the longest prefix of `number` ("+E.164" or digits) in the outbound table: one query, an
        index probe per prefix; None when none matches."""
        from vpbx.billing.outbound import OutboundRate
        from vpbx.billing.rating import prefixes_of

        prefixes = prefixes_of(number)
        if not prefixes:
            return None
        row = self.conn.execute(
            f"SELECT {_OUTBOUND_COLUMNS} FROM outbound_rates WHERE prefix IN ({', '.join('?' for _ in prefixes)}) "
            "ORDER BY length(prefix) DESC LIMIT 1", prefixes).fetchone()
        if row is None:
            return None
        return OutboundRate(str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), str(row[5]))
