"""Setting up an install: the config file (fresh ARI/AMI secrets) and an empty database.

Rule: nothing is written before every path is known to be usable; the config is written by `vpbx.config` (TOML
library, mode 0600) and the database is created with its schema.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vpbx.config import Config, SipSettings, check_sip, check_tls_files, new_config, write_config
from vpbx.domain.errors import ValidationError
from vpbx.domain.validation import shown
from vpbx.storage.store import Store


def _path(option: str, value: str) -> Path:
    if "\x00" in value:
        raise ValidationError(f"{option} {shown(value)} contains NUL, which no path can hold; give another path")
    return Path(value).resolve()


def init(directory: str, *, config_path: str | None = None, db_path: str | None = None,
         asterisk_config_dir: str | None = None, sounds_dir: str | None = None, sip_port: int = 5060,
         sip_bind: str = "127.0.0.1", sip: SipSettings | None = None, force: bool = False) -> tuple[Config, Path]:
    """Write `config_path` (default DIRECTORY/vpbx.toml) with new secrets and create the database (default
    DIRECTORY/vpbx.db); refused when the config exists unless `force`. `sip_bind`/`sip_port`/`sip`: the [sip]
    section (transports, NAT, TLS files, RTP range), checked before anything is written. Returns the config and
    where it was written."""
    base = _path("--dir", directory)
    path = _path("--config", config_path) if config_path else base / "vpbx.toml"
    if sip is not None:
        sip = replace(sip, tls_cert=str(_path("--tls-cert", sip.tls_cert)) if sip.tls_cert else "",
                      tls_key=str(_path("--tls-key", sip.tls_key)) if sip.tls_key else "")
    cfg = new_config(base, _path("--asterisk-config-dir", asterisk_config_dir) if asterisk_config_dir else None,
                     _path("--sounds-dir", sounds_dir) if sounds_dir else None, sip_port=sip_port, sip_bind=sip_bind,
                     sip=sip)
    check_sip(cfg)
    check_tls_files(cfg)
    if db_path:
        cfg = replace(cfg, db=_path("--db", db_path))
    write_config(cfg, path, force=force)
    Store.open(cfg.db).close()
    return cfg, path
