"""Third-party SIP trunks: a provider's line vpbx registers to, dials out through and takes calls from.

Rule: every field that reaches pjsip_vpbx.conf is checked by `vpbx.domain.rules.check_trunk`, the same check the
renderer makes; the password is kept plain (Asterisk answers the provider's challenge with it). A trunk may be a
customer's own (`account`, an open account): that account's calls through it are not charged
(vpbx.services.charging).
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vpbx.domain import rules
from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import Trunk
from vpbx.services import charging

if TYPE_CHECKING:
    from vpbx.storage.store import Store


def add(store: Store, name: str, *, server: str, login: str, password: str, port: int = 5060,
        transport: str = "udp", register: bool = True, srtp: bool = False, account: str | None = None) -> Trunk:
    """Add a trunk; `account`: the customer's account whose own trunk it is (None: the provider's)."""
    trunk = rules.check_trunk(Trunk(name=name, server=server, port=port, login=login, password=password,
                                    transport=transport, register=register, srtp=srtp, account=account))
    with store.write():
        if account is not None:
            charging.open_account(store, account, f"trunk {name}")
        return store.trunks.add(trunk)


def update(store: Store, name: str, *, server: str | None = None, port: int | None = None, login: str | None = None,
           password: str | None = None, transport: str | None = None, register: bool | None = None,
           srtp: bool | None = None, account: str | None = None, no_account: bool = False) -> Trunk:
    """`vpbx trunk set`: change the given fields (None: keep); `account` makes it that customer's own trunk,
    `no_account` the provider's again. The changed trunk is checked whole by `rules.check_trunk` (the renderer's
    check) before the one write: refused input changes nothing."""
    validate.name(name, "trunk")
    given: dict[str, Any] = {"server": server, "port": port, "login": login, "password": password,
                             "transport": transport, "register": register, "srtp": srtp, "account": account}
    changes = {k: v for k, v in given.items() if v is not None}
    if account is not None and no_account:
        raise ValidationError(f"trunk {name}: give --account NAME or --no-account, not both")
    if no_account:
        changes["account"] = None
    if not changes:
        raise ValidationError(f"trunk {name}: nothing to change; give --server, --port, --login, --password or "
                              f"--password-file, --transport, --register/--no-register, --srtp/--no-srtp, --account "
                              f"or --no-account")
    with store.write():
        if account is not None:
            charging.open_account(store, account, f"trunk {name}")
        trunk = rules.check_trunk(replace(store.trunks.get(name), **changes))
        return store.trunks.update(trunk)


def remove(store: Store, name: str) -> None:
    """Remove a trunk (refused while numbers use it)."""
    store.trunks.remove(name)
