"""Pure renderers of the Asterisk config vpbx owns (records in, text out; nothing here does I/O).

`render_all` returns every generated file by name; the static config the generated files plug into is asterisk-conf/
(each generated file is pulled in with `#tryinclude`, so Asterisk boots without them).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

from vpbx.asterisk.render.extensions import render_extensions
from vpbx.asterisk.render.manager_ari import render_ari_users, render_manager_users
from vpbx.asterisk.render.moh import render_moh
from vpbx.asterisk.render.pjsip import account_endpoint, parse_pjsip, password_digest, render_pjsip, trunk_endpoint
from vpbx.asterisk.render.transports import render_rtp, render_transports
from vpbx.config import Config
from vpbx.domain import rules
from vpbx.domain.records import Number, SipAccount, Trunk

FILES = ("pjsip_vpbx.conf", "extensions_vpbx.conf", "ari_vpbx.conf", "manager_vpbx.conf", "rtp_vpbx.conf",
         "musiconhold_vpbx.conf")
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
               trunks: Sequence[Trunk], opus: bool = False, reuse: Collection[str] = (),
               tls_files: tuple[str, str] | None = None) -> dict[str, str]:
    """filename -> text for every file vpbx generates into Asterisk's config dir. `opus`: Asterisk has codec_opus
    (vpbx.asterisk.deploy.asterisk_has_opus); without it opus is never offered to a phone. `reuse`: transport kinds
    the Asterisk config already has (vpbx.asterisk.system.reused_transports); `tls_files`: [sip] tls_cert / tls_key
    as Asterisk sees them (vpbx.asterisk.deploy.asterisk_path)."""
    rules.check_tls_transport(accounts, bool(cfg.sip.tls_cert and cfg.sip.tls_key))
    transports = render_transports(cfg, tls_client=any(t.transport == "tls" for t in trunks), reuse=reuse,
                                   tls_files=tls_files)
    return {
        "pjsip_vpbx.conf": render_pjsip(accounts, trunks, cfg.domain, codecs=cfg.sip.codecs, opus=opus,
                                        transports=transports),
        "extensions_vpbx.conf": render_extensions(numbers, accounts, app=cfg.ari.app),
        "ari_vpbx.conf": render_ari_users(cfg),
        "manager_vpbx.conf": render_manager_users(cfg),
        "rtp_vpbx.conf": render_rtp(cfg),
        "musiconhold_vpbx.conf": render_moh(),
    }
