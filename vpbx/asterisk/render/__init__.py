"""Pure renderers of the Asterisk config vpbx owns (records in, text out; nothing here does I/O).

`render_all` returns every generated file by name; the static config the generated files plug into is asterisk-conf/
(each generated file is pulled in with `#tryinclude`, so Asterisk boots without them).
"""
from __future__ import annotations

from collections.abc import Sequence

from vpbx.asterisk.render.extensions import render_extensions
from vpbx.asterisk.render.manager_ari import render_ari_users, render_manager_users
from vpbx.asterisk.render.pjsip import account_endpoint, parse_pjsip, password_digest, render_pjsip, trunk_endpoint
from vpbx.config import Config
from vpbx.domain.records import Number, SipAccount, Trunk

FILES = ("pjsip_vpbx.conf", "extensions_vpbx.conf", "ari_vpbx.conf", "manager_vpbx.conf")
SECRET_FILES = frozenset({"pjsip_vpbx.conf", "ari_vpbx.conf", "manager_vpbx.conf"})

__all__ = [
    "FILES",
    "SECRET_FILES",
    "account_endpoint",
    "parse_pjsip",
    "password_digest",
    "render_all",
    "render_ari_users",
    "render_extensions",
    "render_manager_users",
    "render_pjsip",
    "trunk_endpoint",
]


def render_all(cfg: Config, numbers: Sequence[Number], accounts: Sequence[SipAccount],
               trunks: Sequence[Trunk]) -> dict[str, str]:
    """filename -> text for every file vpbx generates into Asterisk's config dir."""
    return {
        "pjsip_vpbx.conf": render_pjsip(accounts, trunks, cfg.domain, bind=cfg.sip_bind, port=cfg.sip_port),
        "extensions_vpbx.conf": render_extensions(numbers, accounts, app=cfg.ari.app),
        "ari_vpbx.conf": render_ari_users(cfg),
        "manager_vpbx.conf": render_manager_users(cfg),
    }
