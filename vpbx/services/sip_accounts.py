"""SIP accounts: the phones and softphones that register to vpbx.

Rule: a password is either given (checked by `vpbx.domain.validation.password`) or generated here with `secrets`
(24 URL-safe characters); every field that reaches pjsip_vpbx.conf is checked by `vpbx.domain.rules.check_sip_account`,
the same check the renderer makes. A caller ID must be a number of this install (the store refuses any other).
"""
from __future__ import annotations

import secrets
from dataclasses import replace
from typing import TYPE_CHECKING

from vpbx.domain import rules
from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import SipAccount

if TYPE_CHECKING:
    from vpbx.config import Config
    from vpbx.storage.store import Store

DEFAULT_CHANNELS = 2


def generate_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters


def parse_codecs(text: str, login: str) -> tuple[str, ...]:
    """`--codecs g722,alaw` -> ("g722", "alaw"); `default` -> () (the install's [sip] codecs)."""
    if text == "default":
        return ()
    return rules.check_codecs(tuple(text.split(",")), f"SIP account {login}")   # whole names: nothing is stripped


def _check(account: SipAccount, cfg: Config) -> SipAccount:
    rules.check_sip_account(account)
    rules.check_tls_transport([account], bool(cfg.sip.tls_cert and cfg.sip.tls_key))
    if account.dtmf == "inband" and not account.codecs and not set(cfg.sip.codecs) & set(rules.INBAND_CODECS):
        raise ValidationError(f"SIP account {account.login}: inband DTMF is detected on alaw/ulaw audio only and the "
                              f"install's [sip] codecs have neither; give --codecs alaw,ulaw")
    return account


def add(store: Store, cfg: Config, login: str, *, password: str | None = None, caller_id: str | None = None,
        channels: int = DEFAULT_CHANNELS, codecs: str | None = None, dtmf: str | None = None,
        transport: str = "udp", srtp: bool = False) -> SipAccount:
    """Add a SIP account in the install's domain; without `password` a strong one is generated (returned once).
    `codecs`: comma-separated, preferred first (None or "default": the install's [sip] codecs)."""
    validate.login(login)
    if password is not None:
        with validate.about(f"SIP account {login}"):
            validate.password(password)
    account = _check(SipAccount(login=login, password=password or generate_password(), domain=cfg.domain,
                                caller_id=caller_id, channels=channels,
                                codecs=() if codecs is None else parse_codecs(codecs, login),
                                dtmf=rules.DEFAULT_DTMF if dtmf is None else dtmf, transport=transport,
                                srtp=srtp), cfg)
    return store.sip_accounts.add(account)


def update(store: Store, cfg: Config, login: str, *, codecs: str | None = None, dtmf: str | None = None,
           caller_id: str | None = None, transport: str | None = None, srtp: bool | None = None) -> SipAccount:
    """`vpbx sip set`: change the given fields (None: keep); `caller_id` "" removes the caller ID. Everything is
    checked before the one write: refused input changes nothing."""
    validate.login(login)
    account = store.sip_accounts.get(login)
    changes: dict[str, object] = {}
    if codecs is not None:
        changes["codecs"] = parse_codecs(codecs, login)
    if dtmf is not None:
        changes["dtmf"] = dtmf
    if caller_id is not None:
        changes["caller_id"] = caller_id or None
    if transport is not None:
        changes["transport"] = transport
    if srtp is not None:
        changes["srtp"] = srtp
    if not changes:
        raise ValidationError(f"SIP account {login}: nothing to change; give --codecs, --dtmf, --caller-id, "
                              f"--transport or --srtp/--no-srtp")
    return store.sip_accounts.update(_check(replace(account, **changes), cfg))  # type: ignore[arg-type]


def new_password(store: Store, login: str) -> SipAccount:
    """Give the account a new generated password (returned once)."""
    return store.sip_accounts.set_password(login, generate_password())


def remove(store: Store, login: str) -> None:
    """Remove a SIP account (refused while a route, group or IVR uses it)."""
    store.sip_accounts.remove(login)
