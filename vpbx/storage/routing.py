"""Storage of SIP accounts (phones), third-party SIP trunks, ring groups and IVR menus.

Rules: the only SQL for these tables; returns SipAccount / Trunk / Group / Ivr records; every change is one
transaction. An object something still routes to cannot be removed: "what names it" is answered by comparing
parsed destinations (vpbx.domain.destinations), never by matching text by hand. SIP accounts and trunks share
Asterisk's one endpoint namespace, so a name is refused when the other already has it.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from vpbx.domain.destinations import Destination, try_parse
from vpbx.domain.errors import ConflictError, NotFoundError
from vpbx.domain.records import Group, Ivr, SipAccount, Trunk
from vpbx.storage.rows import RESERVED_ENDPOINTS, Repo, from_row, to_row


def _names(text: object, target: Destination) -> bool:
    """Does stored destination `text` name `target`, itself or as a business-hours branch?"""
    d = try_parse(text)
    return d is not None and target in d.names()


def destination_users(conn: sqlite3.Connection, target: Destination, *, numbers: bool = True) -> list[str]:
    """Numbers (route, forward targets), ring groups (members) and IVR menus (options) whose routing names
    `target` (also as a branch of an `hours:` route), sorted; `numbers=False` leaves numbers out."""
    text = str(target)           # the canonical text: str(parse(t)) == t for every stored t that parses
    users: set[str] = set()
    if numbers:                  # SQL narrows thousands of numbers to the candidates; the parsed comparison decides
        for number, route, forward_to in conn.execute(
                "SELECT number, route, forward_to FROM numbers WHERE instr(route, ?) > 0 OR instr(forward_to, ?) > 0",
                [text, json.dumps(text)]):
            if _names(route, target) or any(try_parse(d) == target for d in json.loads(forward_to or "[]")):
                users.add(f"number {number}")
    for name, members in conn.execute("SELECT name, members FROM groups"):
        if any(try_parse(m) == target for m in json.loads(members)):
            users.add(f"group {name}")
    for name, options in conn.execute("SELECT name, options FROM ivrs"):
        if any(_names(dest, target) for _key, dest in json.loads(options)):
            users.add(f"IVR {name}")
    return sorted(users)


def prompt_users(conn: sqlite3.Connection, name: str) -> list[str]:
    """What plays prompt `name`, sorted: numbers (greeting, `play:` in route or fallback, recording announcement), IVR
    menus (prompt, invalid prompt, `play:` options), SIP accounts (recording announcement, no-answer handling) and
    customers' accounts (recording announcement), caller-blocklist rules."""
    target = Destination("play", name)
    users = set(destination_users(conn, target))
    for number, fallback in conn.execute("SELECT number, fallback FROM numbers WHERE instr(fallback, ?) > 0",
                                         [str(target)]):
        if _names(fallback, target):
            users.add(f"number {number}")
    for (number,) in conn.execute("SELECT number FROM numbers WHERE greeting = ? OR record_prompt = ?", [name, name]):
        users.add(f"number {number}")
    for (ivr,) in conn.execute("SELECT name FROM ivrs WHERE prompt = ? OR invalid_prompt = ?", [name, name]):
        users.add(f"IVR {ivr}")
    for (login,) in conn.execute("SELECT login FROM sip_accounts WHERE record_prompt = ? OR no_answer = ?",
                                 [name, str(target)]):
        users.add(f"SIP account {login}")
    for (account,) in conn.execute("SELECT name FROM accounts WHERE record_prompt = ?", [name]):
        users.add(f"account {account}")
    for (rule,) in conn.execute("SELECT id FROM blocklist WHERE prompt = ?", [name]):
        users.add(f"blocklist rule {rule}")
    return sorted(users)


class SipAccountRepo(Repo):
    """SIP accounts (phones)."""

    # what `update` writes (the login is the key; the password changes only through set_password)
    _CHANGEABLE = ("caller_id", "channels", "codecs", "dtmf", "transport", "srtp", "allow_countries", "allow_prefixes",
                   "max_outbound_calls", "daily_minutes", "record_calls", "record_prompt", "extension",
                   "ring_timeout", "no_answer", "vm_emails", "account")

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
            holder = self._scalar("SELECT login FROM sip_accounts WHERE extension = ?", [account.login])
            if holder is not None:
                raise ConflictError(f"SIP account {account.login}: {account.login} is SIP account {holder}'s "
                                    "extension already (colleagues dial it); pick another login")
            self._check_extension(account)
            if account.caller_id and not self._exists("numbers", "number", account.caller_id):
                raise NotFoundError(f"caller ID {account.caller_id} is not a number of this install; "
                                    f"add it with `vpbx number add {account.caller_id}`")
            self._insert("sip_accounts", account)
        return account

    def _check_extension(self, account: SipAccount) -> None:
        """An extension is dialled by colleagues and typed in `--extensions` IVRs: it may be no other account's
        extension or all-digit login, and no customer account's organisation ID."""
        ext = account.extension
        if ext is None:
            return
        fix = f"pick another --extension for SIP account {account.login}"
        for login, extension in self.conn.execute(
                "SELECT login, extension FROM sip_accounts WHERE (extension = ? OR login = ?) AND login != ?",
                [ext, ext, account.login]):
            what = "extension" if extension == ext else "login"
            raise ConflictError(f"extension {ext} is SIP account {login}'s {what} already; {fix}")
        holder = self._scalar("SELECT name FROM accounts WHERE CAST(org_id AS TEXT) = ?", [ext])
        if holder is not None:
            raise ConflictError(f"extension {ext} is account {holder}'s organisation ID already (callers type it in "
                                f"IVRs); {fix}")

    def find_dialled(self, text: str) -> SipAccount | None:
        """The SIP account a colleague reaches by dialling `text`: the one whose extension it is, else whose login it
        is (an extension is never another account's login: `_check_extension`)."""
        rows = list(self._table("sip_accounts").rows_where("extension = ? OR login = ?", [text, text],
                                                           order_by="extension IS NULL", limit=1))
        return from_row(SipAccount, rows[0]) if rows else None

    def get(self, login: str) -> SipAccount:
        return self._get("sip_accounts", "login", login, SipAccount, "SIP account", "list them with `vpbx sip list`")

    def all(self) -> list[SipAccount]:
        return self._records("sip_accounts", SipAccount, order_by="login")

    def set_password(self, login: str, password: str) -> SipAccount:
        with self.write():
            account = self.get(login)
            self._table("sip_accounts").update(login, {"password": password})
        return replace(account, password=password)

    def update(self, account: SipAccount) -> SipAccount:
        """Store `account`'s caller ID, codecs, DTMF mode, transport, SRTP and toll-fraud guards (one transaction;
        the login must exist)."""
        with self.write():
            self.get(account.login)
            if account.caller_id and not self._exists("numbers", "number", account.caller_id):
                raise NotFoundError(f"caller ID {account.caller_id} is not a number of this install; "
                                    f"add it with `vpbx number add {account.caller_id}`")
            self._check_extension(account)
            row = to_row(account)
            self._table("sip_accounts").update(account.login, {k: row[k] for k in self._CHANGEABLE})
        return account

    def used_by(self, login: str) -> list[str]:
        """Numbers, ring groups and IVR menus that route to this SIP account."""
        return destination_users(self.conn, Destination("sip", login))

    def remove(self, login: str) -> None:
        with self.write():
            self.get(login)
            users = self.used_by(login)
            if users:
                raise ConflictError(f"SIP account {login} is still used by {', '.join(users)}; change those first")
            self._table("sip_accounts").delete(login)


class TrunkRepo(Repo):
    """Third-party SIP trunks."""

    def add(self, trunk: Trunk) -> Trunk:
        with self.write():
            if self._exists("trunks", "name", trunk.name):
                raise ConflictError(f"trunk {trunk.name} already exists; "
                                    f"pick another name or `vpbx trunk remove {trunk.name}` first")
            if self._exists("sip_accounts", "login", trunk.name) or trunk.name in RESERVED_ENDPOINTS:
                raise ConflictError(f"trunk {trunk.name}: the name is taken by a SIP account or reserved "
                                    f"(Asterisk endpoints share one namespace); pick another name")
            self._insert("trunks", trunk)
        return trunk

    def get(self, name: str) -> Trunk:
        return self._get("trunks", "name", name, Trunk, "trunk", "list them with `vpbx trunk list`")

    def all(self) -> list[Trunk]:
        return self._records("trunks", Trunk, order_by="name")

    def account_of(self, name: str) -> str | None:
        """The customer's account that owns trunk `name` (None: the provider's trunk, or no such trunk)."""
        owner = self._scalar("SELECT account FROM trunks WHERE name = ?", [name])
        return str(owner) if owner is not None else None

    def update(self, trunk: Trunk) -> Trunk:
        """Store every field of `trunk` but its name (the key; it must exist). One transaction."""
        with self.write():
            self.get(trunk.name)
            row = to_row(trunk)
            del row["name"]
            self._table("trunks").update(trunk.name, row)
        return trunk

    def remove(self, name: str) -> None:
        with self.write():
            self.get(name)
            users = [r[0] for r in self.conn.execute("SELECT number FROM numbers WHERE trunk = ?", [name])]
            if users:
                raise ConflictError(f"trunk {name} is still used by number(s) {', '.join(users)}; "
                                    f"move them with `vpbx number set NUMBER --trunk OTHER` first")
            self._table("trunks").delete(name)


class GroupRepo(Repo):
    """Ring groups."""

    def add(self, group: Group) -> Group:
        with self.write():
            if self._exists("groups", "name", group.name):
                raise ConflictError(f"group {group.name} already exists; remove it first or pick another name")
            self._insert("groups", group)
        return group

    def get(self, name: str) -> Group:
        return self._get("groups", "name", name, Group, "group", "list them with `vpbx group list`")

    def all(self) -> list[Group]:
        return self._records("groups", Group, order_by="name")

    def update(self, group: Group) -> Group:
        """Store `group`'s members, strategy and timeout (the name is the key; it must exist). One transaction."""
        with self.write():
            self.get(group.name)
            row = to_row(group)
            del row["name"]
            self._table("groups").update(group.name, row)
        return group

    def remove(self, name: str) -> None:
        with self.write():
            self.get(name)
            users = destination_users(self.conn, Destination("group", name))
            if users:
                raise ConflictError(f"group {name} is still used by {', '.join(users)}; change those first")
            self._table("groups").delete(name)


class IvrRepo(Repo):
    """IVR menus."""

    def add(self, ivr: Ivr) -> Ivr:
        with self.write():
            if self._exists("ivrs", "name", ivr.name):
                raise ConflictError(f"IVR {ivr.name} already exists; remove it first or pick another name")
            self._insert("ivrs", ivr)
        return ivr

    def get(self, name: str) -> Ivr:
        return self._get("ivrs", "name", name, Ivr, "IVR", "list them with `vpbx ivr list`")

    def all(self) -> list[Ivr]:
        return self._records("ivrs", Ivr, order_by="name")

    def update(self, ivr: Ivr) -> Ivr:
        """Store every field of `ivr` but its name (the key; it must exist). One transaction."""
        with self.write():
            self.get(ivr.name)
            row = to_row(ivr)
            del row["name"]
            self._table("ivrs").update(ivr.name, row)
        return ivr

    def prompt_users(self, prompt: str) -> list[str]:
        """Everything that plays `prompt` (see `prompt_users`): numbers, IVRs, accounts, blocklist rules."""
        return prompt_users(self.conn, prompt)

    def used_by(self, name: str) -> list[str]:
        """Numbers and other IVR menus that route to this IVR (also through an `hours:` branch)."""
        return [u for u in destination_users(self.conn, Destination("ivr", name)) if u != f"IVR {name}"]

    def remove(self, name: str) -> None:
        with self.write():
            self.get(name)
            users = self.used_by(name)
            if users:
                raise ConflictError(f"IVR {name} is still used by {', '.join(users)}; change those first")
            self._table("ivrs").delete(name)
