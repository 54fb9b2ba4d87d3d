"""Storage of sip accounts (phones), third-party sip trunks, ring groups, ivr menus.

Rule: the only SQL for these tables; returns domain records or plain dicts; one transaction per change.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from vpbx.domain.errors import ConflictError, NotFoundError
from vpbx.domain.records import Group, Ivr, SipAccount, Trunk
from vpbx.storage.rows import RESERVED_ENDPOINTS, Repo, from_row, now_iso, to_row


def destination_users(conn: sqlite3.Connection, dest: str) -> list[str]:
    """Numbers, groups and IVRs whose routing names destination string `dest`."""
    users = [f"number {n}" for (n,) in conn.execute(
        "SELECT number FROM numbers WHERE route = ? OR instr(forward_to, ?) > 0", [dest, json.dumps(dest)])]
    for (name, members) in conn.execute("SELECT name, members FROM groups"):
        if dest in json.loads(members):
            users.append(f"group {name}")
    for (name, options) in conn.execute("SELECT name, options FROM ivrs"):
        if any(d == dest for _k, d in json.loads(options)):
            users.append(f"IVR {name}")
    return sorted(set(users))


class SipAccountRepo(Repo):
    """SIP accounts (phones)."""

    def add(self, account: SipAccount) -> SipAccount:
        with self.write():
            if self._exists("sip_accounts", "login", account.login):
                raise ConflictError(f"SIP account {account.login} already exists; pick another login or "
                                    f"`vpbx sip remove {account.login}` first")
            if self._exists("trunks", "name", account.login) or account.login in RESERVED_ENDPOINTS:
                raise ConflictError(f"SIP account {account.login}: the name is taken by a trunk or reserved "
                                    f"(Asterisk endpoints share one namespace); pick another login")
            if account.login.isdigit() and self.conn.execute("SELECT name FROM accounts WHERE org_id = ?",
                                                             [int(account.login)]).fetchone():
                raise ConflictError(f"SIP account {account.login}: callers type {account.login} to reach an account's "
                                    "organisation ID already; pick another login")
            if account.caller_id and not self._exists("numbers", "number", account.caller_id):
                raise NotFoundError(f"caller ID {account.caller_id} is not a number of this install; "
                                    f"add it with `vpbx number add {account.caller_id}`")
            self.db["sip_accounts"].insert({**to_row(account), "created_at": now_iso()})
        return account

    def get(self, login: str) -> SipAccount:
        return self._get("sip_accounts", "login", login, SipAccount, "SIP account", "list them with `vpbx sip list`")

    def all(self) -> list[SipAccount]:
        return [from_row(SipAccount, r) for r in self.db["sip_accounts"].rows_where(order_by="login")]

    def set_password(self, login: str, password: str) -> SipAccount:
        with self.write():
            account = self.get(login)
            self.db["sip_accounts"].update(login, {"password": password})
        return replace(account, password=password)

    def users(self, login: str) -> list[str]:
        users = [f"number {n} (route)" for (n,) in self.conn.execute(
            "SELECT number FROM numbers WHERE route = ? OR instr(forward_to, ?) > 0", [f"sip:{login}", json.dumps(f"sip:{login}")])]
        users += destination_users(self.conn, f"sip:{login}")
        return users

    def remove(self, login: str) -> None:
        with self.write():
            self.get(login)
            users = self.users(login)
            if users:
                raise ConflictError(f"SIP account {login} is still used by {', '.join(users)}; change those first")
            self.db["sip_accounts"].delete(login)


class TrunkRepo(Repo):
    """Third-party SIP trunks."""

    def add(self, trunk: Trunk) -> Trunk:
        with self.write():
            if self._exists("trunks", "name", trunk.name):
                raise ConflictError(f"trunk {trunk.name} already exists; pick another name or `vpbx trunk remove {trunk.name}` first")
            if self._exists("sip_accounts", "login", trunk.name) or trunk.name in RESERVED_ENDPOINTS:
                raise ConflictError(f"trunk {trunk.name}: the name is taken by a SIP account or reserved "
                                    f"(Asterisk endpoints share one namespace); pick another name")
            self.db["trunks"].insert({**to_row(trunk), "created_at": now_iso()})
        return trunk

    def get(self, name: str) -> Trunk:
        return self._get("trunks", "name", name, Trunk, "trunk", "list them with `vpbx trunk list`")

    def all(self) -> list[Trunk]:
        return [from_row(Trunk, r) for r in self.db["trunks"].rows_where(order_by="name")]

    def remove(self, name: str) -> None:
        with self.write():
            self.get(name)
            users = [r[0] for r in self.conn.execute("SELECT number FROM numbers WHERE trunk = ?", [name])]
            if users:
                raise ConflictError(f"trunk {name} is still used by number(s) {', '.join(users)}; "
                                    f"move them with `vpbx number set NUMBER --trunk OTHER` first")
            self.db["trunks"].delete(name)


class GroupRepo(Repo):
    """Ring groups."""

    def add(self, group: Group) -> Group:
        with self.write():
            if self._exists("groups", "name", group.name):
                raise ConflictError(f"group {group.name} already exists; remove it first or pick another name")
            self.db["groups"].insert({**to_row(group), "created_at": now_iso()})
        return group

    def get(self, name: str) -> Group:
        return self._get("groups", "name", name, Group, "group", "list them with `vpbx group list`")

    def all(self) -> list[Group]:
        return [from_row(Group, r) for r in self.db["groups"].rows_where(order_by="name")]

    def remove(self, name: str) -> None:
        with self.write():
            self.get(name)
            users = destination_users(self.conn, f"group:{name}")
            if users:
                raise ConflictError(f"group {name} is still used by {', '.join(users)}; change those first")
            self.db["groups"].delete(name)


class IvrRepo(Repo):
    """IVR menus."""

    def add(self, ivr: Ivr) -> Ivr:
        with self.write():
            if self._exists("ivrs", "name", ivr.name):
                raise ConflictError(f"IVR {ivr.name} already exists; remove it first or pick another name")
            self.db["ivrs"].insert({**to_row(ivr), "created_at": now_iso()})
        return ivr

    def get(self, name: str) -> Ivr:
        return self._get("ivrs", "name", name, Ivr, "IVR", "list them with `vpbx ivr list`")

    def all(self) -> list[Ivr]:
        return [from_row(Ivr, r) for r in self.db["ivrs"].rows_where(order_by="name")]

    def remove(self, name: str) -> None:
        with self.write():
            self.get(name)
            users = [u for u in destination_users(self.conn, f"ivr:{name}") if u != f"IVR {name}"]
            if users:
                raise ConflictError(f"IVR {name} is still used by {', '.join(users)}; change those first")
            self.db["ivrs"].delete(name)
