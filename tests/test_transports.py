"""vpbx.toml [sip] -> SIP transports (NAT, TLS) and the RTP range: the config, its checks, the renderer, `vpbx reload`'s
restart warning, `vpbx init`'s options. No Asterisk needed (tests/test_network.py has the real phones)."""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vpbx.asterisk import deploy
from vpbx.asterisk.render import render_all
from vpbx.asterisk.render.pjsip import parse_pjsip, parse_sections
from vpbx.asterisk.render.transports import render_rtp, render_transports, transport_changes, transport_sections
from vpbx.cli import main
from vpbx.config import (
    Config,
    SipSettings,
    check_sip,
    check_tls_files,
    load_config,
    new_config,
    render_config,
    write_config,
)
from vpbx.domain.errors import ConfigError, ValidationError
from vpbx.domain.records import SipAccount, Trunk

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def sections(text: str) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for s in parse_sections(text):
        opts: dict[str, list[str]] = {}
        for k, v in s.options:
            opts.setdefault(k, []).append(v)
        out[s.name] = opts
    return out


def transports(cfg: Config, **kwargs: object) -> dict[str, dict[str, list[str]]]:
    return sections("\n".join(render_transports(cfg, **kwargs)))  # type: ignore[arg-type]


# ---- the config file ---------------------------------------------------------------------------------------------
def test_sip_section_round_trips(tmp_path: Path) -> None:
    sip = SipSettings(tls_port=5071, tls_cert="/etc/vpbx/cert.pem", tls_key="/etc/vpbx/key.pem",
                      external_address="pbx.example.net", local_net=("192.168.0.0/16", "10.0.0.0/8"),
                      rtp_start=12000, rtp_end=12999)
    cfg = new_config(tmp_path, sip_port=5070, sip_bind="0.0.0.0", sip=sip)
    path = tmp_path / "vpbx.toml"
    write_config(cfg, path)
    assert load_config(str(path)) == replace(cfg, path=path)
    text = path.read_text()
    assert "[sip]\nbind = \"0.0.0.0\"" in text and "sip_bind" not in text and "sip_port" not in text


def test_an_old_config_with_asterisk_sip_bind_is_still_read(tmp_path: Path) -> None:
    text = render_config(new_config(tmp_path))
    text = re.sub(r"\[sip\]\n(?:(?!\n\[).)*", "", text, flags=re.S)          # a config from before [sip]
    text = text.replace("[asterisk]\n", '[asterisk]\nsip_bind = "10.1.2.3"\nsip_port = 5080\n')
    path = tmp_path / "old.toml"
    path.write_text(text)
    cfg = load_config(str(path))
    assert (cfg.sip_bind, cfg.sip_port, cfg.sip) == ("10.1.2.3", 5080, SipSettings())
    # [sip] wins over the old keys
    path.write_text(text + '\n[sip]\nbind = "0.0.0.0"\nport = 5062\n')
    assert (load_config(str(path)).sip_bind, load_config(str(path)).sip_port) == ("0.0.0.0", 5062)


@pytest.mark.parametrize("line", ['port = "5060"', "rtp_start = true", 'local_net = "10.0.0.0/8"',
                                  "local_net = [1]", "tls_cert = 5"])
def test_a_sip_value_of_the_wrong_type_is_one_config_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / "vpbx.toml"
    path.write_text(f"[sip]\n{line}\n")
    with pytest.raises(ConfigError, match=r"\[sip\]"):
        load_config(str(path))


# ---- the checks --------------------------------------------------------------------------------------------------
def cfg_with(**sip: object) -> Config:
    bind = str(sip.pop("bind", "127.0.0.1"))
    return replace(new_config(Path("/srv")), sip_bind=bind, sip=replace(SipSettings(), **sip))  # type: ignore[arg-type]


@pytest.mark.parametrize(("sip", "message"), [
    ({"local_net": ("192.168.1.5/16",)}, "host bits set; give the network, 192.168.0.0/16"),
    ({"local_net": ("192.168.0.0/33",)}, "not an IPv4 network"),
    ({"local_net": ("192.168.0.0/16\n[x]",)}, "not an IPv4 network"),
    ({"local_net": ("192.168.0.0",)}, "not an IPv4 network"),
    ({"local_net": ("10.0.0.0/8 ",)}, "not an IPv4 network"),
    ({"external_address": "1.2.3.4\nlocal_net=0.0.0.0/0"}, "external_address"),
    ({"external_address": "a;b"}, "external_address"),
    ({"bind": "0.0.0.0\n[evil]"}, "bind"),
    ({"tls_port": 5060}, "tls_port 5060 is the SIP port too"),
    ({"tls_port": 0}, "tls_port"),
    ({"tls_cert": "/etc/cert.pem"}, "give both tls_cert and tls_key"),
    ({"tls_cert": "cert.pem", "tls_key": "/k.pem"}, "absolute path"),
    ({"tls_cert": "/c.pem;x", "tls_key": "/k.pem"}, "tls_cert"),
    ({"rtp_start": 20000, "rtp_end": 10000}, "must be below rtp_end"),
    ({"rtp_start": 80}, "rtp_start 80 must be a port 1024-65535"),
    ({"rtp_end": 70000}, "rtp_end"),
])
def test_bad_sip_settings_are_refused_whole(sip: dict[str, object], message: str) -> None:
    cfg = cfg_with(**sip)
    with pytest.raises(ValidationError, match=re.escape(message)):
        check_sip(cfg)
    with pytest.raises(ValidationError):
        render_all(cfg, [], [], [])


def test_tls_files_must_be_readable_pem(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cfg = cfg_with(tls_cert=str(cert), tls_key=str(key))
    with pytest.raises(ConfigError, match=r"cert\.pem does not exist"):
        check_tls_files(cfg)
    cert.write_text(CERT)
    key.write_text("not a key")
    with pytest.raises(ConfigError, match=r"key\.pem holds no PEM private key"):
        check_tls_files(cfg)
    key.write_text(KEY.replace("PRIVATE KEY", "EC PRIVATE KEY"))
    check_tls_files(cfg)
    with pytest.raises(ConfigError, match="is a directory"):
        check_tls_files(cfg_with(tls_cert=str(tmp_path), tls_key=str(key)))


# ---- rendering ---------------------------------------------------------------------------------------------------
def test_default_transports_listen_on_loopback_without_nat_or_tls() -> None:
    got = transports(cfg_with())
    assert set(got) == {"transport-udp", "transport-tcp"}
    assert got["transport-udp"]["bind"] == ["127.0.0.1:5060"] and got["transport-udp"]["protocol"] == ["udp"]
    assert got["transport-tcp"]["bind"] == ["127.0.0.1:5060"] and got["transport-tcp"]["protocol"] == ["tcp"]
    assert not any("external_media_address" in t or "local_net" in t for t in got.values())


def test_external_address_goes_on_every_transport_with_loopback_local() -> None:
    cfg = cfg_with(bind="0.0.0.0", external_address="203.0.113.7", local_net=("192.168.0.0/16",), tls_cert="/c.pem",
                   tls_key="/k.pem")
    got = transports(cfg)
    assert set(got) == {"transport-udp", "transport-tcp", "transport-tls"}
    for t in got.values():
        assert t["external_signaling_address"] == ["203.0.113.7"]
        assert t["external_media_address"] == ["203.0.113.7"]
        assert t["local_net"] == ["127.0.0.0/8", "192.168.0.0/16"]
    assert got["transport-udp"]["bind"] == ["0.0.0.0:5060"]
    # no local_net given: the private networks a server behind NAT lives in
    plain = transports(cfg_with(external_address="pbx.example.net"))["transport-udp"]
    assert plain["local_net"] == ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    assert plain["external_signaling_address"] == ["pbx.example.net"]
    tls = got["transport-tls"]
    assert tls["bind"] == ["0.0.0.0:5061"] and tls["cert_file"] == ["/c.pem"] and tls["priv_key_file"] == ["/k.pem"]
    assert tls["method"] == ["tlsv1_2"]


def test_tls_only_with_both_files_or_for_a_tls_trunk() -> None:
    assert "transport-tls" not in transports(cfg_with())
    client = transports(cfg_with(tls_port=5071), tls_client=True)["transport-tls"]
    assert client["bind"] == ["127.0.0.1:5071"] and "cert_file" not in client
    assert client["verify_server"] == ["yes"]
    # the files as Asterisk sees them (a chroot)
    served = transports(cfg_with(tls_cert="/root/x/c.pem", tls_key="/root/x/k.pem"), tls_files=("/c.pem", "/k.pem"))
    assert served["transport-tls"]["cert_file"] == ["/c.pem"]


def test_a_transport_the_asterisk_config_has_is_not_rendered() -> None:
    got = transports(cfg_with(tls_cert="/c.pem", tls_key="/k.pem"), reuse={"udp", "tls"})
    assert set(got) == {"transport-tcp"}


def test_transports_come_first_in_pjsip_vpbx_conf() -> None:
    text = render_all(cfg_with(), [], [SipAccount("alice", "alice-password-1")], [])["pjsip_vpbx.conf"]
    names = [s.name for s in parse_sections(text)]
    assert names[:2] == ["transport-udp", "transport-tcp"] and "alice" in names


def test_phone_endpoints_are_nat_ready() -> None:
    text = render_all(cfg_with(), [], [SipAccount("alice", "alice-password-1")], [])["pjsip_vpbx.conf"]
    by_type = {s.get("type"): s for s in parse_sections(text) if s.name == "alice"}
    endpoint, aor = by_type["endpoint"], by_type["aor"]
    for key, value in (("direct_media", "no"), ("rtp_symmetric", "yes"), ("force_rport", "yes"),
                       ("rewrite_contact", "yes")):
        assert endpoint.get(key) == value, key
    assert 0 < int(aor.get("qualify_frequency") or 0) <= 30, "an OPTIONS at least every 30 s keeps a NAT binding open"


def test_rtp_range_file() -> None:
    text = render_rtp(cfg_with(rtp_start=16384, rtp_end=16483))
    assert "[general](+)\nrtpstart = 16384\nrtpend = 16483\n" in text
    assert render_all(cfg_with(), [], [], [])["rtp_vpbx.conf"].endswith("rtpstart = 10000\nrtpend = 20000\n")


def test_transport_changes_name_changed_or_removed_transports_only() -> None:
    old = "\n".join(render_transports(cfg_with()))
    assert transport_changes(None, old) == []
    assert transport_changes(old, old) == []
    assert transport_changes(old, old + "\n[x]\ntype = endpoint\n") == []
    tls = "\n".join(render_transports(cfg_with(tls_cert="/c.pem", tls_key="/k.pem")))
    assert transport_changes(old, tls) == [], "a new transport is created by the reload"
    moved = "\n".join(render_transports(cfg_with(bind="0.0.0.0")))
    assert transport_changes(old, moved) == ["transport-tcp", "transport-udp"]
    nat = "\n".join(render_transports(cfg_with(external_address="198.51.100.1")))
    assert transport_changes(old, nat) == ["transport-tcp", "transport-udp"]
    assert transport_changes(tls, old) == ["transport-tls"]
    assert set(transport_sections(moved)) == {"transport-udp", "transport-tcp"}


# ---- deploy: files, chroot paths, the restart warning ---------------------------------------------------------
def test_reload_warns_exactly_when_a_transport_changed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = replace(new_config(tmp_path), asterisk_config_dir=tmp_path / "etc")
    caplog.set_level(logging.WARNING, logger="vpbx.asterisk.deploy")
    deploy.generate(cfg, [], [], [])
    deploy.generate(cfg, [], [SipAccount("bob", "bob-password-12")], [])
    assert not caplog.records, "first render and unchanged transports: nothing to restart"
    deploy.generate(replace(cfg, sip_bind="0.0.0.0"), [], [], [])
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("SIP transports changed (transport-tcp, transport-udp): restart Asterisk")
    assert "systemctl restart asterisk" in warning and "scripts/asterisk-sandbox restart" in warning


def test_the_asterisk_configs_own_transport_is_reused(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "pjsip.conf").write_text("[transport-udp]\ntype = transport\nprotocol = udp\nbind = 0.0.0.0:5060\n")
    cfg = replace(new_config(tmp_path), asterisk_config_dir=etc)
    deploy.generate(cfg, [], [], [])
    names = set(transport_sections((etc / "pjsip_vpbx.conf").read_text()))
    assert names == {"transport-tcp"}, "two UDP transports on one port: Asterisk would refuse the file"


def test_tls_files_inside_a_chroot_are_named_as_asterisk_sees_them(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    etc = root / "etc" / "asterisk"
    keys = root / "etc" / "vpbx-keys"
    keys.mkdir(parents=True)
    etc.mkdir()
    (keys / "c.pem").write_text(CERT)
    (keys / "k.pem").write_text(KEY)
    cfg = replace(new_config(tmp_path), asterisk_config_dir=etc,
                  sip=SipSettings(tls_cert=str(keys / "c.pem"), tls_key=str(keys / "k.pem")))
    tls = sections(deploy.render_install(cfg, [], [], [])["pjsip_vpbx.conf"])["transport-tls"]
    assert (tls["cert_file"], tls["priv_key_file"]) == (["/etc/vpbx-keys/c.pem"], ["/etc/vpbx-keys/k.pem"])
    outside = tmp_path / "c.pem"
    outside.write_text(CERT)
    with pytest.raises(ConfigError, match=r"outside .* the root Asterisk runs in"):
        deploy.render_install(replace(cfg, sip=replace(cfg.sip, tls_cert=str(outside))), [], [], [])


# ---- vpbx init -----------------------------------------------------------------------------------------------
def test_init_writes_the_sip_options(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text(CERT)
    (tmp_path / "k.pem").write_text(KEY)
    result = CliRunner().invoke(main, [
        "init", "--dir", str(tmp_path / "v"), "--sip-bind", "0.0.0.0", "--sip-port", "5070", "--tls-port", "5071",
        "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"),
        "--external-address", "pbx.example.net", "--local-net", "192.168.0.0/16", "--local-net", "10.0.0.0/8",
        "--rtp-start", "30000", "--rtp-end", "30999"])
    assert result.exit_code == 0, result.stderr
    cfg = load_config(str(tmp_path / "v" / "vpbx.toml"))
    assert (cfg.sip_bind, cfg.sip_port) == ("0.0.0.0", 5070)
    assert cfg.sip == replace(SipSettings(), tls_port=5071, tls_cert=str(tmp_path / "c.pem"),
                              tls_key=str(tmp_path / "k.pem"), external_address="pbx.example.net",
                              local_net=("192.168.0.0/16", "10.0.0.0/8"), rtp_start=30000, rtp_end=30999)


@pytest.mark.parametrize(("args", "message"), [
    (["--local-net", "10.1.0.0/8"], "host bits set"),
    (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"], "does not exist"),
    (["--tls-key", "/etc/hostname"], "give both tls_cert and tls_key"),
    (["--rtp-start", "20000", "--rtp-end", "20001"], "must be below rtp_end"),
    (["--external-address", "bad host"], "external_address"),
])
def test_init_refuses_bad_sip_options_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["init", "--dir", str(tmp_path / "v"), *args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "v" / "vpbx.toml").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_asterisk_check_says_when_asterisks_user_cannot_read_the_tls_key(tmp_path: Path) -> None:
    from vpbx.asterisk import system

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "asterisk.conf").write_text("")
    os.chown(etc / "asterisk.conf", 65534, 65534)           # Asterisk runs as its own user (Debian: asterisk)
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text(CERT)
    key.write_text(KEY)
    cert.chmod(0o644)
    key.chmod(0o600)                                          # root's only
    cfg = replace(new_config(tmp_path), asterisk_config_dir=etc,
                  sip=SipSettings(tls_cert=str(cert), tls_key=str(key)))
    items = {i.what: i for i in system.check_config(cfg, etc)}
    assert items["[sip] tls_cert readable by Asterisk"].ok
    bad = items["[sip] tls_key readable by Asterisk"]
    assert not bad.ok and "not readable by Asterisk's user" in bad.detail and bad.fix.startswith("chgrp 65534")
    key.unlink()
    items = {i.what: i for i in system.check_config(cfg, etc)}
    assert not items["SIP TLS certificate and key"].ok


# ---- accounts and trunks: --transport, --srtp ----------------------------------------------------------------
def _cli(cfg_path: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--config", str(cfg_path), *args])


@pytest.fixture
def tls_cfg_path(tmp_path: Path) -> Path:
    (tmp_path / "c.pem").write_text(CERT)
    (tmp_path / "k.pem").write_text(KEY)
    cfg = new_config(tmp_path, asterisk_config_dir=tmp_path / "etc",
                     sip=SipSettings(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem")))
    write_config(cfg, tmp_path / "vpbx.toml")
    return tmp_path / "vpbx.toml"


def test_an_srtp_tls_account_renders_sdes_required_on_transport_tls() -> None:
    accounts = [SipAccount("sec", "sec-password-1", transport="tls", srtp=True),
                SipAccount("tcp1", "tcp-password-1", transport="tcp"), SipAccount("plain", "plain-password-1")]
    text = render_all(cfg_with(tls_cert="/c.pem", tls_key="/k.pem"), [], accounts, [])["pjsip_vpbx.conf"]
    endpoints = {s.name: s for s in parse_sections(text) if s.get("type") == "endpoint"}
    sec, tcp1, plain = endpoints["sec"], endpoints["tcp1"], endpoints["plain"]
    assert sec.get("transport") == "transport-tls"
    assert (sec.get("media_encryption"), sec.get("media_encryption_optimistic")) == ("sdes", "no")
    assert tcp1.get("transport") == "transport-tcp" and tcp1.get("media_encryption") is None
    assert plain.get("transport") is None and plain.get("media_encryption") is None
    back, _ = parse_pjsip(text)
    assert [(a.login, a.transport, a.srtp) for a in back] == [("sec", "tls", True), ("tcp1", "tcp", False),
                                                              ("plain", "udp", False)]


def test_an_srtp_trunk_renders_sdes_required() -> None:
    trunk = Trunk("carrier", "sip.example.net", "acct", "carrier-pass", transport="tls", srtp=True)
    text = render_all(cfg_with(), [], [], [trunk])["pjsip_vpbx.conf"]
    endpoint = next(s for s in parse_sections(text) if s.name == "carrier" and s.get("type") == "endpoint")
    assert (endpoint.get("media_encryption"), endpoint.get("media_encryption_optimistic")) == ("sdes", "no")
    assert parse_pjsip(text)[1] == [trunk]


def test_a_tls_account_needs_the_tls_transport_at_write_and_render_time(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"uses transport tls, but vpbx.toml \[sip\] has no tls_cert"):
        render_all(cfg_with(), [], [SipAccount("t1", "t1-password-1", transport="tls")], [])
    path = tmp_path / "vpbx.toml"
    write_config(new_config(tmp_path), path)
    result = _cli(path, "sip", "add", "t1", "--transport", "tls")
    assert result.exit_code == 1 and "has no tls_cert / tls_key" in result.stderr, result.stderr
    assert _cli(path, "sip", "list", "--json").stdout.strip() == "[]"


def test_sip_add_and_set_transport_and_srtp(tls_cfg_path: Path) -> None:
    result = _cli(tls_cfg_path, "sip", "add", "sec", "--transport", "tls", "--srtp", "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(_cli(tls_cfg_path, "sip", "show", "sec", "--json").stdout)
    assert (shown["transport"], shown["srtp"]) == ("tls", True) and "password" not in shown
    result = _cli(tls_cfg_path, "sip", "set", "sec", "--no-srtp", "--transport", "tcp", "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(_cli(tls_cfg_path, "sip", "show", "sec", "--json").stdout)
    assert (shown["transport"], shown["srtp"]) == ("tcp", False)
    result = _cli(tls_cfg_path, "sip", "set", "sec", "--transport", "ws")
    assert result.exit_code == 2, "an unknown transport is a usage error"
    result = _cli(tls_cfg_path, "trunk", "add", "carrier", "--server", "sip.example.net", "--login", "acct",
                  "--password", "carrier-pass-1", "--transport", "tls", "--srtp", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(_cli(tls_cfg_path, "trunk", "show", "carrier", "--json").stdout)["srtp"] is True
    result = _cli(tls_cfg_path, "config", "generate")
    assert result.exit_code == 0, result.stderr
    text = (tls_cfg_path.parent / "etc" / "pjsip_vpbx.conf").read_text()
    assert "media_encryption = sdes" in text and "cert_file = " in text


def test_an_account_stored_without_the_new_columns_reads_as_udp_without_srtp(tmp_path: Path) -> None:
    import sqlite3

    from vpbx.storage.store import Store

    Store.open(tmp_path / "v.db").close()
    conn = sqlite3.connect(tmp_path / "v.db")
    with conn:       # a row as code before m009 wrote it: the columns' defaults fill in
        conn.execute("INSERT INTO sip_accounts (login, password, domain, channels, created_at) VALUES "
                     "('old', 'old-password-1', 'vpbx.local', 2, '2026-01-01T00:00:00Z')")
    conn.close()
    store = Store.open(tmp_path / "v.db")
    try:
        account = store.sip_accounts.get("old")
    finally:
        store.close()
    assert (account.transport, account.srtp) == ("udp", False)
