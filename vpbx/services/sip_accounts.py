"""SIP accounts: the phones and softphones that register to vpbx.

Rule: a password is either given (checked by `vpbx.domain.validation.password`) or generated here with `secrets`
(24 URL-safe characters); every field that reaches pjsip_vpbx.conf is checked by `vpbx.domain.rules.check_sip_account`,
the same check the renderer makes. A caller ID must be a number of this install (the store refuses any other).
"""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from vpbx.domain import rules
from vpbx.domain import validation as validate
from vpbx.domain.records import SipAccount

if TYPE_CHECKING:
    from vpbx.config import Config
    from vpbx.storage.store import Store

DEFAULT_CHANNELS = 2


def generate_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters


def add(store: Store, cfg: Config, login: str, *, password: str | None = None, caller_id: str | None = None,
        channels: int = DEFAULT_CHANNELS) -> SipAccount:
    """Add a SIP account in the install's domain; without `password` a strong one is generated (returned once)."""
    validate.login(login)
    if password is not None:
        with validate.about(f"SIP account {login}"):
            validate.password(password)
    account = rules.check_sip_account(SipAccount(login=login, password=password or generate_password(),
                                                 domain=cfg.domain, caller_id=caller_id, channels=channels))
    return store.sip_accounts.add(account)


def new_password(store: Store, login: str) -> SipAccount:
    """Give the account a new generated password (returned once)."""
    return store.sip_accounts.set_password(login, generate_password())


def remove(store: Store, login: str) -> None:
    """Remove a SIP account (refused while a route, group or IVR uses it)."""
    store.sip_accounts.remove(login)
