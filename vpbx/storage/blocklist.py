"""Storage of the caller blocklist (vpbx.domain.blocklist): table `blocklist`.

Rules: the only SQL for that table; returns BlockRule records. One row per rule (a unique index: one rule per caller,
prefix flag and scope); a number's rules go with the number (ON DELETE CASCADE). The engine's lookup is one indexed
query (`for_call`: the caller's possible rule callers, the number's scopes) on its reader thread; the decision stays
vpbx.domain.blocklist.decide's. `count` is the engine's write (through its StoreWorker) for every refused call.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from vpbx.domain.blocklist import BlockRule, caller_key, candidates, decide
from vpbx.domain.errors import ConflictError, NotFoundError
from vpbx.storage.rows import Repo, now_iso

_COLUMNS = "id, caller, prefix, number, account, prompt, comment, blocked_calls, last_blocked_at"


def _rule(row: Sequence[Any]) -> BlockRule:
    rule_id, caller, prefix, number, account, prompt, comment, blocked, last = row
    return BlockRule(caller=caller, prefix=bool(prefix), number=number, account=account, prompt=prompt,
                     comment=comment, id=int(rule_id), blocked_calls=int(blocked), last_blocked_at=last)


class BlocklistRepo(Repo):
    """Rules refusing callers, install-wide, per account or per number, and the calls each refused."""

    def add(self, rule: BlockRule) -> BlockRule:
        """Store a new rule (ConflictError when the same caller is already blocked in the same scope)."""
        with self.write():
            same = self.same(rule)
            if same is not None:
                raise ConflictError(f"caller {same.caller_label} is already blocked {same.where} (rule {same.id}); "
                                    f"`vpbx block list` shows it, `vpbx block remove {same.id}` removes it")
            try:
                cur = self.conn.execute(
                    "INSERT INTO blocklist (caller, prefix, number, account, prompt, comment, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [rule.caller, int(rule.prefix), rule.number, rule.account, rule.prompt, rule.comment, now_iso()])
            except sqlite3.IntegrityError as exc:      # the service checked the number and account: a race
                raise ConflictError(f"block rule for caller {rule.caller_label} {rule.where} refused by the "
                                    f"database ({exc}); check the number or account exists") from None
            rule_id = int(cur.lastrowid or 0)
        return self.get(rule_id)

    def same(self, rule: BlockRule) -> BlockRule | None:
        """The stored rule with `rule`'s caller, prefix flag and scope, if any."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM blocklist WHERE caller = ? AND prefix = ? AND coalesce(number, '') = ? "
            "AND coalesce(account, '') = ?",
            [rule.caller, int(rule.prefix), rule.number or "", rule.account or ""]).fetchone()
        return None if row is None else _rule(row)

    def get(self, rule_id: int) -> BlockRule:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM blocklist WHERE id = ?", [rule_id]).fetchone()
        if row is None:
            raise NotFoundError(f"block rule {rule_id} not found; `vpbx block list` shows the rules")
        return _rule(row)

    def all(self) -> list[BlockRule]:
        """Every rule, in the order added."""
        return [_rule(r) for r in self.conn.execute(f"SELECT {_COLUMNS} FROM blocklist ORDER BY id")]

    def with_caller(self, caller: str) -> list[BlockRule]:
        """The rules naming exactly `caller` (a number, a prefix or `anonymous`), any scope."""
        return [_rule(r) for r in self.conn.execute(f"SELECT {_COLUMNS} FROM blocklist WHERE caller = ? ORDER BY id",
                                                    [caller])]

    def for_number(self, number: str, account: str | None) -> list[BlockRule]:
        """The rules that cover calls to `number` (held by `account`): install-wide, the account's, the number's."""
        return [_rule(r) for r in self.conn.execute(
            f"SELECT {_COLUMNS} FROM blocklist WHERE (number IS NULL AND account IS NULL) OR number = ? "
            "OR account = ? ORDER BY id", [number, account])]

    def for_call(self, caller: str, number: str, account: str | None) -> BlockRule | None:
        """The rule refusing `caller` calling `number` (held by `account`), or None: one query on the unique index
        (the caller's possible rule callers), then vpbx.domain.blocklist.decide."""
        key = caller_key(caller)
        if key is None:
            return None
        keys = candidates(key)
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM blocklist WHERE caller IN ({', '.join('?' for _ in keys)}) "
            "AND ((number IS NULL AND account IS NULL) OR number = ? OR account = ?)", [*keys, number, account])
        return decide([_rule(r) for r in rows], caller, number, account)

    def remove(self, rule_ids: Sequence[int]) -> None:
        """Remove the rules `rule_ids` (all in one transaction)."""
        with self.write():
            for rule_id in rule_ids:
                self.conn.execute("DELETE FROM blocklist WHERE id = ?", [rule_id])

    def count(self, rule_id: int, at: str | None = None) -> None:
        """Rule `rule_id` refused a call (at `at`, ISO UTC); a rule removed meanwhile is not counted."""
        with self.write():
            self.conn.execute("UPDATE blocklist SET blocked_calls = blocked_calls + 1, last_blocked_at = ? "
                              "WHERE id = ?", [at or now_iso(), rule_id])
