"""vpbx.asterisk.deploy without Asterisk: atomic generate, file modes, the masked diff, AMI errors that name the fix."""
from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from vpbx.asterisk import deploy
from vpbx.asterisk.render import FILES
from vpbx.config import AmiSettings, AriSettings, Config
from vpbx.domain.errors import AsteriskError, ValidationError
from vpbx.domain.records import Number, SipAccount, Trunk


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return Config(db=tmp_path / "vpbx.db", asterisk_config_dir=tmp_path / "etc",
                  ari=AriSettings(password="ari-secret-0123456789abcdef"),
                  ami=AmiSettings(port=_closed_port(), secret="ami-secret-0123456789abcdef"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NOBODY, NOGROUP = 65534, 65534
RECORDS = ([Number("+380441234567")], [SipAccount("alice", "alice-password-1")],
           [Trunk("carrier", "127.0.0.1", "acct", "carrier-pass")])


def test_generate_writes_every_file_with_modes(cfg):
    paths = deploy.generate(cfg, *RECORDS)
    assert [p.name for p in paths] == list(FILES)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths}
    assert modes == {"pjsip_vpbx.conf": 0o640, "extensions_vpbx.conf": 0o644, "ari_vpbx.conf": 0o640,
                     "manager_vpbx.conf": 0o640, "rtp_vpbx.conf": 0o644, "musiconhold_vpbx.conf": 0o644}
    assert not [p for p in cfg.asterisk_config_dir.iterdir() if p.name.startswith(".")], "temp files left behind"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group needs root")
def test_generate_keeps_asterisks_ownership(cfg):
    """On Debian Asterisk runs as its own user and /etc/asterisk is its group's: a generated file that holds secrets
    (0640) must stay readable to that group, also when root regenerates it."""
    etc = cfg.asterisk_config_dir
    etc.mkdir()
    os.chown(etc, 0, NOGROUP)                             # the config dir's group (Debian: asterisk)
    (etc / "pjsip_vpbx.conf").write_text("; old\n")
    os.chown(etc / "pjsip_vpbx.conf", NOBODY, NOGROUP)   # an existing file's owner is kept
    paths = deploy.generate(cfg, *RECORDS)
    owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in paths}
    assert owners["pjsip_vpbx.conf"] == (NOBODY, NOGROUP)
    assert owners["manager_vpbx.conf"] == (0, NOGROUP)   # a new file takes the directory's
    assert stat.S_IMODE((etc / "manager_vpbx.conf").stat().st_mode) == 0o640


def test_generate_out_dir(cfg, tmp_path):
    out = tmp_path / "elsewhere"
    paths = deploy.generate(cfg, *RECORDS, out_dir=out)
    assert all(p.parent == out for p in paths)
    assert not cfg.asterisk_config_dir.exists()


def test_invalid_record_writes_nothing(cfg):
    deploy.generate(cfg, *RECORDS)
    before = {p.name: p.read_text() for p in cfg.asterisk_config_dir.iterdir()}
    bad = [replace(RECORDS[1][0], login="bad\n[x]")]
    with pytest.raises(ValidationError):
        deploy.generate(cfg, RECORDS[0], bad, RECORDS[2])
    assert {p.name: p.read_text() for p in cfg.asterisk_config_dir.iterdir()} == before


def test_check_is_empty_when_in_sync_and_masks_secrets(cfg):
    assert "/dev/null" in deploy.check(cfg, *RECORDS)          # nothing on disk yet
    deploy.generate(cfg, *RECORDS)
    assert deploy.check(cfg, *RECORDS) == ""
    changed = [replace(RECORDS[2][0], password="new-carrier-pass", port=5070)]
    diff = deploy.check(cfg, RECORDS[0], RECORDS[1], changed)
    assert "+contact = sip:127.0.0.1:5070" in diff
    assert "carrier-pass" not in diff and "new-carrier-pass" not in diff
    only_secret = deploy.check(cfg, RECORDS[0], RECORDS[1], [replace(RECORDS[2][0], password="other-pass")])
    assert "a secret differs" in only_secret and "other-pass" not in only_secret


def test_reload_unreachable_names_host_port_and_fix(cfg):
    t0 = time.monotonic()
    with pytest.raises(AsteriskError) as err:
        deploy.reload(cfg)
    msg = str(err.value)
    assert f"127.0.0.1:{cfg.ami.port} is unreachable" in msg
    assert "scripts/asterisk-sandbox start" in msg and "database change is saved" in msg
    assert time.monotonic() - t0 < 3


def test_reload_silent_peer_times_out(cfg):
    """A TCP peer that accepts but never speaks AMI: AsteriskError after the timeout, not a hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(AsteriskError, match="unreachable"):
            deploy.reload(replace(cfg, ami=replace(cfg.ami, port=port)), timeout=0.5)
        assert time.monotonic() - t0 < 3
    finally:
        srv.close()


def _fake_ami(port_box: list[int], login_ok: bool, reload_ok: bool, seen: list[str]) -> threading.Thread:
    """A tiny AMI speaker: banner, Login, Reload actions."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port_box.append(srv.getsockname()[1])

    def serve() -> None:
        conn, _ = srv.accept()
        conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
        buf = b""
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                buf += data
                while b"\r\n\r\n" in buf:
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    headers = dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line)
                    action, aid = headers.get("Action", ""), headers.get("ActionID", "")
                    seen.append(f"{action}:{headers.get('Module', '')}")
                    if action == "Login":
                        resp = ("Success", "Authentication accepted") if login_ok else \
                            ("Error", "Authentication failed")
                    else:
                        resp = ("Success", "Module Reloaded") if reload_ok else ("Error", "No such module")
                    conn.sendall(f"Response: {resp[0]}\r\nActionID: {aid}\r\nMessage: {resp[1]}\r\n\r\n".encode())
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_reload_sends_reload_per_module(cfg):
    port: list[int] = []
    seen: list[str] = []
    t = _fake_ami(port, True, True, seen)
    deploy.reload(replace(cfg, ami=replace(cfg.ami, port=port[0])))
    t.join(3)
    assert seen[0] == "Login:"
    assert seen[1:] == [f"Reload:{m}" for m in deploy.RELOAD_MODULES]


def test_reload_login_refused(cfg):
    port: list[int] = []
    _fake_ami(port, False, True, [])
    with pytest.raises(AsteriskError, match=r"refused login as 'vpbx'.*manager reload"):
        deploy.reload(replace(cfg, ami=replace(cfg.ami, port=port[0])))


def test_reload_module_refused(cfg):
    port: list[int] = []
    _fake_ami(port, True, False, [])
    with pytest.raises(AsteriskError, match=r"refused to reload res_pjsip\.so"):
        deploy.reload(replace(cfg, ami=replace(cfg.ami, port=port[0])))


def test_reload_from_inside_an_event_loop(cfg):
    async def main() -> None:
        deploy.reload(cfg)

    with pytest.raises(AsteriskError, match="unreachable"):
        asyncio.run(main())


def _asterisk_root(tmp_path: Path, modules: list[str], noload: list[str] = (), moddir: str = "/usr/lib/ast/mods"):
    etc = tmp_path / "root" / "etc" / "asterisk"
    etc.mkdir(parents=True)
    (etc / "asterisk.conf").write_text(f"[directories](!)\nastmoddir => {moddir} ; the modules\n")
    (etc / "modules.conf").write_text("[modules]\nautoload = yes\n" + "".join(f"noload = {m}\n" for m in noload))
    mods = tmp_path / "root" / moddir.lstrip("/")
    mods.mkdir(parents=True)
    for m in modules:
        (mods / m).write_bytes(b"")
    return etc


def test_opus_is_offered_only_when_asterisk_has_codec_opus(tmp_path):
    with_opus = _asterisk_root(tmp_path / "a", ["codec_opus_open_source.so", "codec_alaw.so"])
    without = _asterisk_root(tmp_path / "b", ["codec_alaw.so"])
    refused = _asterisk_root(tmp_path / "c", ["codec_opus.so"], noload=["codec_opus.so"])
    assert deploy.asterisk_has_opus(with_opus) is True
    assert deploy.asterisk_has_opus(without) is False
    assert deploy.asterisk_has_opus(refused) is False
    assert deploy.asterisk_has_opus(tmp_path / "nowhere" / "etc" / "asterisk") is False
    account = SipAccount("alice", "alice-password-1")
    for etc, allow in ((with_opus, "allow = g722,opus,alaw,ulaw"), (without, "allow = g722,alaw,ulaw")):
        cfg = Config(asterisk_config_dir=etc, ari=AriSettings(password="ari-secret-0123456789abcdef"),
                     ami=AmiSettings(secret="ami-secret-0123456789abcdef"))
        deploy.generate(cfg, [], [account], [])
        assert allow in (etc / "pjsip_vpbx.conf").read_text().splitlines()
        assert deploy.check(cfg, [], [account], []) == ""
