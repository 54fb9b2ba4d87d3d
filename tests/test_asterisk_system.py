"""`vpbx asterisk install|check` on a system Asterisk's config: Debian's stock /etc/asterisk (the sandbox keeps a copy
in ROOT/etc/asterisk.dist).

Unit tests edit a copy of that stock config (no Asterisk needed); the real-Asterisk test boots the sandbox's Asterisk
on such a copy after `vpbx asterisk install` and places a call through `vpbx serve`.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import in_ci

from vpbx.asterisk import system
from vpbx.cli import main
from vpbx.config import load_config, new_config, write_config

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("VPBX_ASTERISK_ROOT", "/var/cache/vpbx/rootfs"))
STOCK = ROOT / "etc" / "asterisk.dist"
SANDBOX = REPO / "scripts" / "asterisk-sandbox"
ADMIN_FILES = ("pjsip.conf", "extensions.conf", "ari.conf", "manager.conf", "http.conf")
INCLUDE_RE = re.compile(r"^#tryinclude (\S+)$", re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_stock(dest: Path) -> Path:
    """Debian's stock config as a sysadmin has it: without the files vpbx generated into the sandbox's copy."""
    if not STOCK.is_dir():
        if in_ci():
            pytest.fail(f"{STOCK} is required in CI (scripts/asterisk-sandbox build, then start once)", pytrace=False)
        pytest.skip(f"no stock Asterisk config at {STOCK}; run scripts/asterisk-sandbox build and start once")
    shutil.copytree(STOCK, dest, symlinks=True,
                    ignore=shutil.ignore_patterns("*_vpbx.conf", "*_vpbx_base.conf", "*.vpbx-backup-*"))
    return dest


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: relative path -> (bytes, mode)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode) for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def stock(tmp_path: Path) -> Path:
    return copy_stock(tmp_path / "etc-asterisk")


def make_config(base: Path, stock: Path, **kwargs: Any) -> Path:
    base.mkdir()
    path = base / "vpbx.toml"
    write_config(new_config(base, asterisk_config_dir=stock, **kwargs), path)
    return path


@pytest.fixture
def cfg_path(tmp_path: Path, stock: Path) -> Path:
    """A vpbx config whose Asterisk is the stock copy, with the default ports (AMI 5038, ARI 8088, SIP 5060)."""
    return make_config(tmp_path / "vpbx", stock)


@pytest.fixture
def closed_cfg_path(tmp_path: Path, stock: Path) -> Path:
    """Like cfg_path, but AMI and ARI on closed ports: no Asterisk answers (check without Asterisk)."""
    return make_config(tmp_path / "vpbx-closed", stock, ami_port=_free_port(),
                       ari_url=f"http://127.0.0.1:{_free_port()}")


def run(cfg_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(cfg_path), *args])


def error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return lines[0]


# ---- install ---------------------------------------------------------------------------------------------------
def test_install_adds_includes_keeps_every_admin_line_and_backs_up(cfg_path: Path, stock: Path) -> None:
    before = tree(stock)
    result = run(cfg_path, "asterisk", "install")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    after = tree(stock)
    for name, wanted in system.INCLUDES.items():
        text = (stock / name).read_text(errors="surrogateescape")
        assert INCLUDE_RE.findall(text)[-len(wanted):] == list(wanted), name
    for name in ADMIN_FILES:
        old_lines = Counter(before[name][0].decode(errors="surrogateescape").splitlines())
        new_lines = Counter(after[name][0].decode(errors="surrogateescape").splitlines())
        assert not old_lines - new_lines, f"{name} lost admin lines: {old_lines - new_lines}"
        added = new_lines - old_lines
        assert all(line == "" or line.startswith((system.MARK, "#tryinclude ")) or "=" in line for line in added)
        backups = [b for b in after if b.startswith(f"{name}{system.BACKUP_INFIX}")]
        assert len(backups) == 1, (name, backups)
        assert after[backups[0]][0] == before[name][0], "the backup is the admin's file as it was"
        assert after[backups[0]][1] == before[name][1], "the backup keeps the file's mode"
        assert after[name][1] == before[name][1], "the file keeps its mode"
        assert f"Changed {stock / name} (backup {backups[0]})" in result.stdout
    # http.conf [general]: ARI on loopback, on the port of the vpbx config's ARI url
    cfg = load_config(str(cfg_path))
    http = {k: v for _, k, v in system._sections((stock / "http.conf").read_text().splitlines())[0].options}
    assert (http["enabled"], http["bindaddr"], http["bindport"]) == ("yes", "127.0.0.1", cfg.ari.url.rsplit(":", 1)[1])
    manager = system._sections((stock / "manager.conf").read_text().splitlines())[0]
    assert (manager.get("enabled"), manager.get("bindaddr"), manager.get("port")) == \
           ("yes", "127.0.0.1", str(cfg.ami.port))
    # vpbx's own files: the static base objects and the generated ones
    base = (stock / system.PJSIP_BASE).read_text()
    assert "[vpbx-external]" in base and "transport = transport-udp" in base and "type = transport" not in base
    # vpbx's transports come from vpbx.toml [sip], rendered into the generated file (`vpbx reload` updates them)
    transports = system._objects(system._sections((stock / "pjsip_vpbx.conf").read_text().splitlines()))
    udp = next(s for s in transports if s.name == "transport-udp")
    assert (udp.get("type"), udp.get("protocol"), udp.get("bind")) == ("transport", "udp", "127.0.0.1:5060")
    assert "in pjsip_vpbx.conf" in result.stdout
    assert INCLUDE_RE.findall((stock / "rtp.conf").read_text())[-1:] == ["rtp_vpbx.conf"]
    assert "rtpstart = 10000" in (stock / "rtp_vpbx.conf").read_text()
    assert "type = global" in base and "endpoint_identifier_order = username,ip" in base
    assert "[vpbx-bench]" not in base, "the benchmark endpoint is the sandbox's only"
    assert "[vpbx-unknown]" in (stock / system.EXTENSIONS_BASE).read_text()
    for name in ("pjsip_vpbx.conf", "extensions_vpbx.conf", "ari_vpbx.conf", "manager_vpbx.conf"):
        assert (stock / name).is_file(), name
    assert oct((stock / "manager_vpbx.conf").stat().st_mode & 0o777) == oct(0o640)
    assert not [n for n in after if n.startswith(".") or n.endswith(".tmp")], "no temp file left"
    assert set(before) <= set(after)


def test_a_second_install_changes_nothing_byte_for_byte(cfg_path: Path, stock: Path) -> None:
    assert run(cfg_path, "asterisk", "install").exit_code == 0
    first = tree(stock)
    again = run(cfg_path, "asterisk", "install")
    assert again.exit_code == 0, again.stderr
    assert tree(stock) == first
    assert "Nothing to change" in again.stdout
    data = json.loads(run(cfg_path, "asterisk", "install", "--json").stdout)
    assert data["changed"] == [] and data["config_dir"] == str(stock)
    assert tree(stock) == first


def test_install_json_lists_every_change(cfg_path: Path, stock: Path) -> None:
    result = run(cfg_path, "asterisk", "install", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    changed = {c["file"]: c for c in data["changed"]}
    assert set(ADMIN_FILES) | {system.PJSIP_BASE, system.EXTENSIONS_BASE} <= set(changed)
    assert changed["pjsip.conf"]["changes"] == ["`#tryinclude pjsip_vpbx_base.conf` at the end",
                                                "`#tryinclude pjsip_vpbx.conf` at the end"]
    assert changed[system.PJSIP_BASE]["created"] and changed[system.PJSIP_BASE]["backup"] is None
    assert Path(changed["http.conf"]["backup"]).read_bytes() == (STOCK / "http.conf").read_bytes()


@pytest.mark.parametrize("case", ["missing", "a file", "not asterisk", "empty"])
def test_bad_config_dirs_give_one_error_and_change_nothing(cfg_path: Path, stock: Path, tmp_path: Path,
                                                           case: str) -> None:
    target = {"missing": tmp_path / "nope", "a file": stock / "pjsip.conf", "not asterisk": tmp_path / "vpbx",
              "empty": tmp_path / "empty"}[case]
    if case == "empty":
        target.mkdir()
    before = tree(tmp_path)
    result = run(cfg_path, "asterisk", "install", "--config-dir", str(target))
    assert result.exit_code == 1
    line = error_line(result)
    assert "Asterisk config dir" in line and str(target) in line
    assert tree(tmp_path) == before


def test_a_read_only_config_dir_gives_one_error_and_changes_nothing(cfg_path: Path, stock: Path) -> None:
    if os.geteuid() != 0:
        os.chmod(stock, 0o555)
    else:       # root writes anywhere; a read-only bind mount stops it
        if subprocess.run(["mount", "--bind", "-o", "ro", str(stock), str(stock)], capture_output=True).returncode:
            pytest.skip("cannot make a read-only bind mount here")
    try:
        before = tree(stock)
        result = run(cfg_path, "asterisk", "install")
        assert result.exit_code == 1
        assert "not writable" in error_line(result)
        assert tree(stock) == before
    finally:
        if os.geteuid() != 0:
            os.chmod(stock, 0o755)
        else:
            subprocess.run(["umount", str(stock)], check=True)


def test_a_name_vpbx_owns_in_the_admin_config_is_refused(cfg_path: Path, stock: Path) -> None:
    with open(stock / "extensions.conf", "a") as fh:
        fh.write("\n[vpbx-inbound]\nexten => 1,1,Hangup()\n")
    before = tree(stock)
    result = run(cfg_path, "asterisk", "install")
    assert result.exit_code == 1
    assert "[vpbx-inbound]" in error_line(result)
    assert tree(stock) == before


def test_conflicting_admin_settings_are_commented_out_with_a_marker(cfg_path: Path, stock: Path) -> None:
    http = (stock / "http.conf").read_text()
    (stock / "http.conf").write_text(http.replace("bindaddr=127.0.0.1", "bindaddr=0.0.0.0\nbindport=8080"))
    manager = (stock / "manager.conf").read_text()
    (stock / "manager.conf").write_text(manager.replace("port = 5038", "port = 5039"))
    ari = (stock / "ari.conf").read_text()
    (stock / "ari.conf").write_text(ari.replace("enabled = yes ", "enabled = no  ", 1))
    before = tree(stock)
    assert run(cfg_path, "asterisk", "install").exit_code == 0
    cfg = load_config(str(cfg_path))
    http_after = (stock / "http.conf").read_text()
    assert "; vpbx: disabled (bindaddr = 127.0.0.1: ARI must listen on loopback only" in http_after
    assert re.search(r"^; vpbx: disabled \(bindaddr .*\): bindaddr=0\.0\.0\.0$", http_after, re.M)
    assert re.search(r"^; vpbx: disabled \(bindport .*\): bindport=8080$", http_after, re.M)
    general = system._sections(http_after.splitlines())[0]
    assert (general.get("bindaddr"), general.get("bindport")) == ("127.0.0.1", cfg.ari.url.rsplit(":", 1)[1])
    manager_after = (stock / "manager.conf").read_text()
    assert re.search(r"^; vpbx: disabled \(port .*\): port = 5039$", manager_after, re.M)
    assert system._sections(manager_after.splitlines())[0].get("port") == str(cfg.ami.port)
    ari_after = (stock / "ari.conf").read_text()
    assert re.search(r"^; vpbx: disabled \(enabled = yes.*\): enabled = no ", ari_after, re.M)
    assert system._sections(ari_after.splitlines())[0].get("enabled") is None, "Asterisk's default (yes) applies"
    # only the conflicting lines were touched: every other admin line is still there
    for name in ("http.conf", "manager.conf", "ari.conf"):
        old = Counter(before[name][0].decode().splitlines())
        new = Counter((stock / name).read_text().splitlines())
        lost = old - new
        assert all(any(line.endswith(f"): {gone}") for line in new) for gone in lost), (name, lost)
    snapshot = tree(stock)
    assert run(cfg_path, "asterisk", "install").exit_code == 0
    assert tree(stock) == snapshot


def test_a_wildcard_ami_bind_is_kept(cfg_path: Path, stock: Path) -> None:
    manager = (stock / "manager.conf").read_text()
    (stock / "manager.conf").write_text(manager.replace("bindaddr = 127.0.0.1", "bindaddr = 0.0.0.0"))
    assert run(cfg_path, "asterisk", "install").exit_code == 0
    assert system._sections((stock / "manager.conf").read_text().splitlines())[0].get("bindaddr") == "0.0.0.0"


def _append(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


def test_the_admins_transport_on_the_sip_port_is_reused(cfg_path: Path, stock: Path) -> None:
    _append(stock / "pjsip.conf", "\n[udp-main](!)\ntype = transport\nprotocol = udp\n\n"
                                  "[my-udp](udp-main)\nbind = 0.0.0.0:5060\n")
    result = run(cfg_path, "asterisk", "install")
    assert result.exit_code == 0, result.stderr
    base = (stock / system.PJSIP_BASE).read_text()
    assert "type = transport" not in base
    assert "transport = my-udp" in base
    assert "reusing the admin's transport [my-udp]" in result.stdout
    generated = (stock / "pjsip_vpbx.conf").read_text()
    assert "protocol = udp" not in generated, "two UDP transports cannot share port 5060"
    assert "[transport-tcp]" in generated
    assert "rename [my-udp] to [transport-udp]" in result.stdout


def test_an_included_transport_udp_and_global_are_reused(cfg_path: Path, stock: Path) -> None:
    (stock / "pjsip.d").mkdir()
    (stock / "pjsip.d" / "transports.conf").write_text(
        "[global]\ntype=global\nuser_agent=admin\n\n[transport-udp]\ntype=transport\nprotocol=udp\n"
        "bind=192.0.2.10:5070\n")
    _append(stock / "pjsip.conf", '\n#include "pjsip.d/*.conf"\n')
    result = run(cfg_path, "asterisk", "install")
    assert result.exit_code == 0, result.stderr
    base = (stock / system.PJSIP_BASE).read_text()
    assert "type = transport" not in base and "type = global" not in base
    assert "transport = transport-udp" in base
    assert "binds 192.0.2.10:5070, but vpbx config [sip] port is 5060" in result.stdout
    assert "[transport-udp]" not in (stock / "pjsip_vpbx.conf").read_text(), "the admin's transport-udp is reused"
    assert "has its own type=global" in result.stdout


def test_without_an_admin_transport_vpbx_binds_the_configured_address(tmp_path: Path, stock: Path) -> None:
    assert run(make_config(tmp_path / "v2", stock, sip_port=5080), "asterisk", "install").exit_code == 0
    assert "bind = 127.0.0.1:5080" in (stock / "pjsip_vpbx.conf").read_text()
    assert "type = transport" not in (stock / system.PJSIP_BASE).read_text()


def test_a_bad_ari_url_is_refused_before_anything_is_written(tmp_path: Path, stock: Path) -> None:
    path = make_config(tmp_path / "v3", stock, ari_url="http://192.0.2.1:8088")
    before = tree(stock)
    result = run(path, "asterisk", "install")
    assert result.exit_code == 1
    assert "[ari] url" in error_line(result) and "loopback" in error_line(result)
    assert tree(stock) == before


@pytest.mark.parametrize(("field", "value"), [
    ("domain", "vpbx.local\n[evil]\ntype = endpoint"), ("domain", "a;b"), ("sip_bind", "127.0.0.1\n#include x"),
    ("sip_bind", "[::1]"), ("ari_url", "http://127.0.0.1:8088\n[x]"), ("ami_host", "127.0.0.1\nport=1"),
])
def test_hostile_config_values_are_refused_before_anything_is_written(tmp_path: Path, stock: Path, field: str,
                                                                       value: str) -> None:
    from dataclasses import replace

    base = tmp_path / "hostile"
    base.mkdir()
    cfg = new_config(base, asterisk_config_dir=stock)
    if field == "ari_url":
        cfg = replace(cfg, ari=replace(cfg.ari, url=value))
    elif field == "ami_host":
        cfg = replace(cfg, ami=replace(cfg.ami, host=value))
    elif field == "domain":
        cfg = replace(cfg, domain=value)
    else:
        cfg = replace(cfg, sip_bind=value)
    write_config(cfg, base / "vpbx.toml")
    before = tree(stock)
    result = run(base / "vpbx.toml", "asterisk", "install")
    assert result.exit_code == 1, result.stdout
    error_line(result)
    assert tree(stock) == before


# ---- check -----------------------------------------------------------------------------------------------------
def test_check_lists_every_missing_piece_with_its_fix(closed_cfg_path: Path, stock: Path) -> None:
    cfg_path = closed_cfg_path
    before = tree(stock)
    result = run(cfg_path, "asterisk", "check")
    assert tree(stock) == before, "check writes nothing"
    assert result.exit_code == 3, "no Asterisk listens on the config's AMI port"
    assert "AMI" in error_line(result) and "unreachable" in error_line(result)
    out = result.stdout
    for name, wanted in system.INCLUDES.items():
        for inc in wanted:
            assert re.search(rf"^FAIL  {re.escape(name)}: needs `#tryinclude {re.escape(inc)}` at the end$", out,
                             re.M), (name, inc, out)
    for base in system.BASE_FILES:
        assert f"FAIL  {base} (missing)" in out
    assert "FAIL  http.conf: needs `enabled = yes` in [general]" in out
    for name in ("pjsip_vpbx.conf", "extensions_vpbx.conf", "ari_vpbx.conf", "manager_vpbx.conf"):
        assert f"FAIL  {name} (generated): " in out
    fails = [i for i, line in enumerate(out.splitlines()) if line.startswith("FAIL")]
    lines = out.splitlines()
    assert all(lines[i + 1].startswith("      fix: ") for i in fails), out
    assert "fix: run `vpbx asterisk install`, then restart Asterisk" in out
    data = json.loads(run(cfg_path, "asterisk", "check", "--json").stdout)
    assert data["ok"] is False and "unreachable" in data["unreachable"]
    assert all(item["fix"] for item in data["items"] if not item["ok"])


def test_check_after_install_finds_the_config_complete(cfg_path: Path, stock: Path) -> None:
    assert run(cfg_path, "asterisk", "install").exit_code == 0
    items = system.check_config(load_config(str(cfg_path)))
    assert [i for i in items if not i.ok] == []
    (stock / "ari_vpbx.conf").unlink()
    bad = [i for i in system.check_config(load_config(str(cfg_path))) if not i.ok]
    assert [(i.what, i.fix) for i in bad] == [("ari_vpbx.conf (generated)",
                                               "run `vpbx reload` (or `vpbx config generate`)")]


def test_an_install_upgraded_from_the_old_bans_layout_ends_with_one_include(cfg_path: Path, stock: Path) -> None:
    """vpbx once kept the bans straight in the config dir (pjsip_bans_vpbx.conf, included from pjsip_vpbx.conf),
    where the engine's unit cannot write. After an upgrade, check says so; install regenerates pjsip_vpbx.conf with
    the include of vpbx-bans/pjsip_bans_vpbx.conf, removes the leftover file and keeps every admin line."""
    assert run(cfg_path, "asterisk", "install").exit_code == 0
    generated = (stock / "pjsip_vpbx.conf").read_text()
    assert INCLUDE_RE.findall(generated) == ["vpbx-bans/pjsip_bans_vpbx.conf"]
    # the old layout, as an older vpbx left it
    (stock / "pjsip_vpbx.conf").write_text(generated.replace("#tryinclude vpbx-bans/pjsip_bans_vpbx.conf",
                                                             "#tryinclude pjsip_bans_vpbx.conf"))
    (stock / "pjsip_bans_vpbx.conf").write_text("; Generated by vpbx\n\n[vpbx-bans]\ntype = acl\n"
                                                "deny = 192.0.2.7/32\n")
    admin = {name: (stock / name).read_bytes() for name in system.INCLUDES}
    bad = [i for i in system.check_config(load_config(str(cfg_path))) if not i.ok]
    assert [(i.what, i.fix) for i in bad] == [
        ("pjsip_bans_vpbx.conf", "run `vpbx asterisk install`, then restart Asterisk"),
        ("brute-force bans (vpbx-bans/pjsip_bans_vpbx.conf)", "run `vpbx reload` (or `vpbx config generate`)")]
    assert bad[0].detail.startswith("needs removal (an older vpbx kept the brute-force bans here")
    assert "does not include vpbx-bans/pjsip_bans_vpbx.conf" in bad[1].detail
    result = run(cfg_path, "asterisk", "install")
    assert result.exit_code == 0, result.stderr
    assert f"Changed {stock / 'pjsip_bans_vpbx.conf'}\n  - removal (" in result.stdout
    assert not (stock / "pjsip_bans_vpbx.conf").exists()
    includes = [inc for name in (*system.INCLUDES, "pjsip_vpbx.conf")
                for inc in INCLUDE_RE.findall((stock / name).read_text(errors="surrogateescape"))]
    assert [inc for inc in includes if "bans" in inc] == ["vpbx-bans/pjsip_bans_vpbx.conf"], includes
    assert {name: (stock / name).read_bytes() for name in system.INCLUDES} == admin, "admin files untouched"
    assert not [b for b in tree(stock) if "pjsip_bans_vpbx.conf" + system.BACKUP_INFIX in b], "vpbx's own: no backup"
    assert [i for i in system.check_config(load_config(str(cfg_path))) if not i.ok] == []
    snapshot = tree(stock)
    assert "Nothing to change" in run(cfg_path, "asterisk", "install").stdout and tree(stock) == snapshot


def test_check_reports_a_bans_dir_asterisk_cannot_read(cfg_path: Path, stock: Path) -> None:
    assert run(cfg_path, "asterisk", "install").exit_code == 0

    def bans_items() -> list[system.Item]:
        return [i for i in system.check_config(load_config(str(cfg_path))) if i.what.startswith("brute-force bans")]

    (item,) = bans_items()
    assert item.ok and "is not there yet: `vpbx service install` makes it" in item.detail
    bans = stock / "vpbx-bans"
    bans.write_text("")
    (item,) = bans_items()
    assert not item.ok and item.detail == f"{bans} is not a directory" and "run `vpbx service install`" in item.fix
    bans.unlink()
    bans.mkdir()
    (bans / "pjsip_bans_vpbx.conf").write_text("; no bans\n")
    (item,) = bans_items()
    assert item.ok and item.detail == str(bans / "pjsip_bans_vpbx.conf")
    if os.geteuid() != 0:
        return
    # Asterisk runs as its own user (Debian: asterisk; nobody:nogroup here): the directory must let its group in
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    os.chown(stock / "asterisk.conf", nobody, nogroup)
    os.chmod(bans, 0o700)
    (item,) = bans_items()
    assert not item.ok and item.detail == f"{bans} is not readable by Asterisk's user (uid {nobody}, gid {nogroup})"
    assert item.fix == f"chgrp {nogroup} {bans} && chmod g+rx {bans}"
    os.chown(bans, 0, nogroup)
    os.chmod(bans, 0o750)                 # what `vpbx service install` makes (owner: the service user)
    (item,) = bans_items()
    assert item.ok, item


def test_check_of_a_bad_config_dir_is_one_failed_item(cfg_path: Path, tmp_path: Path) -> None:
    items = system.check_config(load_config(str(cfg_path)), tmp_path / "nope")
    assert len(items) == 1 and not items[0].ok and "does not exist" in items[0].detail


class FakeAmi:
    """A loopback AMI server answering Login, CoreSettings, ModuleCheck and PJSIPShowEndpoint the way Asterisk 22 does
    (one client at a time; enough for `vpbx asterisk check`)."""

    def __init__(self, secret: str, version: str = "22.10.1",
                 loaded: frozenset[str] = frozenset(system.REQUIRED_MODULES), endpoint: bool = True) -> None:
        self.secret, self.version, self.loaded, self.endpoint = secret, version, loaded, endpoint
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.actions: list[dict[str, str]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"Asterisk Call Manager/10.0.0\r\n")
                buf = b""
                while True:
                    try:
                        chunk = conn.recv(4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    buf += chunk
                    while b"\r\n\r\n" in buf:
                        raw, buf = buf.split(b"\r\n\r\n", 1)
                        msg = dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line)
                        self.actions.append(msg)
                        conn.sendall(self._answer(msg).encode())

    def _answer(self, msg: dict[str, str]) -> str:
        aid = f"ActionID: {msg.get('ActionID', '')}\r\n"
        action = msg.get("Action")
        if action == "Login":
            ok = msg.get("Secret") == self.secret
            return (f"Response: {'Success' if ok else 'Error'}\r\n{aid}Message: "
                    f"{'Authentication accepted' if ok else 'Authentication failed'}\r\n\r\n")
        if action == "CoreSettings":
            return f"Response: Success\r\n{aid}AMIversion: 10.0.0\r\nAsteriskVersion: {self.version}\r\n\r\n"
        if action == "ModuleCheck":
            if msg.get("Module") in self.loaded:
                return f"Response: Success\r\n{aid}Version: \r\n\r\n"
            return f"Response: Error\r\n{aid}Message: Module not loaded\r\n\r\n"
        if action == "PJSIPShowEndpoint":
            if not self.endpoint:
                return f"Response: Error\r\n{aid}Message: Unable to retrieve endpoint vpbx-external\r\n\r\n"
            return (f"Response: Success\r\n{aid}EventList: start\r\nMessage: Following are Events\r\n\r\n"
                    f"Event: EndpointDetail\r\n{aid}ObjectName: vpbx-external\r\nTransport: transport-udp\r\n\r\n"
                    f"Event: TransportDetail\r\n{aid}ObjectName: transport-udp\r\n\r\n"
                    f"Event: EndpointDetailComplete\r\n{aid}EventList: Complete\r\nListItems: 2\r\n\r\n")
        return f"Response: Error\r\n{aid}Message: Invalid/unknown command\r\n\r\n"

    def close(self) -> None:
        self.server.close()


def _fake_config(tmp_path: Path, stock: Path, ami: FakeAmi) -> Path:
    path = make_config(tmp_path / "vpbx-fake", stock, ami_port=ami.port, ari_url=f"http://127.0.0.1:{_free_port()}")
    text = path.read_text()
    secret = load_config(str(path)).ami.secret
    path.write_text(text.replace(secret, ami.secret))
    return path


def test_check_reports_an_old_asterisk_missing_modules_and_an_unreachable_ari(tmp_path: Path, stock: Path) -> None:
    ami = FakeAmi("fake-ami-secret-0123456789", version="21.5.0", endpoint=False,
                  loaded=frozenset(system.REQUIRED_MODULES) - {"res_ari", "app_stasis"})
    try:
        path = _fake_config(tmp_path, stock, ami)
        assert run(path, "asterisk", "install").exit_code == 0
        result = run(path, "asterisk", "check")
    finally:
        ami.close()
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "problem(s)" in error_line(result)
    out = result.stdout
    assert "ok    AMI login" in out
    assert "FAIL  Asterisk version >= 22: Asterisk 21.5.0\n      fix: upgrade Asterisk to 22 or later" in out
    assert re.search(r"^FAIL  modules loaded: not loaded: app_stasis, res_ari$", out, re.M), out
    assert "FAIL  PJSIP endpoint vpbx-external (from pjsip_vpbx_base.conf): not loaded" in out
    assert re.search(r"^FAIL  ARI http://127\.0\.0\.1:\d+ as vpbx: .*unreachable", out, re.M), out
    assert {a["Action"] for a in ami.actions} >= {"Login", "CoreSettings", "ModuleCheck", "PJSIPShowEndpoint"}
    assert [a["Events"] for a in ami.actions if a["Action"] == "Login"] == ["off"]


def test_check_with_a_good_asterisk_passes_the_ami_checks(tmp_path: Path, stock: Path) -> None:
    ami = FakeAmi("fake-ami-secret-0123456789")
    try:
        path = _fake_config(tmp_path, stock, ami)
        assert run(path, "asterisk", "install").exit_code == 0
        items, unreachable = system.check(load_config(str(path)))
    finally:
        ami.close()
    assert unreachable is None
    failed = [i.what for i in items if not i.ok]
    assert len(failed) == 1 and failed[0].startswith("ARI "), failed    # no ARI behind this fake
    assert {i.what for i in items if i.ok} >= {"AMI login", "Asterisk version >= 22", "modules loaded",
                                               "PJSIP endpoint vpbx-external (from pjsip_vpbx_base.conf)"}


def test_check_exits_3_when_ami_refuses_the_login(tmp_path: Path, stock: Path) -> None:
    ami = FakeAmi("fake-ami-secret-0123456789")
    try:
        path = _fake_config(tmp_path, stock, ami)
        ami.secret = "another-secret-0123456789"
        result = run(path, "asterisk", "check")
    finally:
        ami.close()
    assert result.exit_code == 3
    line = error_line(result)
    assert "refused login as 'vpbx'" in line and "manager_vpbx.conf" in line
    assert "FAIL  pjsip.conf: needs `#tryinclude pjsip_vpbx.conf` at the end" in result.stdout, "config items first"


def test_listening_reads_proc_net(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text(
        "  sl  local_address rem_address   st\n"
        "   0: 0100007F:1F98 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"
        "   1: 00000000:13C6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"
        "   2: 0100007F:1F98 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0\n")
    (tmp_path / "tcp6").write_text(
        "  sl  local_address rem_address   st\n"
        "   0: 00000000000000000000000000000000:1F98 00000000000000000000000000000000:0000 0A 0\n")
    assert system.listening(8088, tmp_path) == ["127.0.0.1", "::"]
    assert system.listening(5062, tmp_path) == ["0.0.0.0"]


# ---- a real Asterisk on the stock config ----------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VPBX_CONFIG", "VPBX_DB")}
    return dict(env, PYTHONPATH=str(REPO), VPBX_ASTERISK_ROOT=str(ROOT))


def _vpbx(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "vpbx.cli", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=90, cwd=REPO, env=_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"vpbx {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _sandbox(*args: str, etc: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = _env() if etc is None else dict(_env(), VPBX_ASTERISK_ETC=str(etc))
    proc = subprocess.run([str(SANDBOX), *args], capture_output=True, text=True, timeout=120, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"asterisk-sandbox {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _log_entries(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"raw": line})
    return out


def _wait(pred: Any, what: str, timeout: float = 20, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pred()
        if found:
            return found
        time.sleep(0.2)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


@pytest.fixture
def serve_proc(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.mark.asterisk
@pytest.mark.timeout(300)
def test_stock_asterisk_after_install_serves_a_call(asterisk: Any, sipp: Any, serve_proc: list[Any],
                                                    tmp_path: Path) -> None:
    etc = copy_stock(tmp_path / "etc-asterisk")
    home = tmp_path / "vpbx"
    sounds = ROOT / "usr" / "share" / "asterisk" / "sounds"
    subprocess.run([sys.executable, "-m", "vpbx.cli", "init", "--dir", str(home), "--asterisk-config-dir", str(etc),
                    "--sounds-dir", str(sounds)], check=True, capture_output=True, cwd=REPO, env=_env())
    config = home / "vpbx.toml"
    prompt = f"sysgreet{os.getpid()}"
    number = f"+38044{5600000 + os.getpid() % 100000:07d}"
    caller = "+380671112233"
    _vpbx(config, "prompt", "add", prompt, str(sounds / "en_US_f_Allison" / "hello-world.wav"))
    _vpbx(config, "trunk", "add", "carrier", "--server", "127.0.0.1", "--port", "5999", "--login", "incoming",
          "--password", "carrier-secret-1", "--no-register")
    _vpbx(config, "number", "add", number)
    _vpbx(config, "number", "route", number, "hangup", "--greeting", prompt)
    installed = _vpbx(config, "asterisk", "install")
    assert f"Changed {etc / 'pjsip.conf'}" in installed.stdout
    etc_mount = ROOT / "etc" / "asterisk"
    try:
        with asterisk.paused():
            try:
                _sandbox("start", etc=etc)
                assert (etc_mount / system.PJSIP_BASE).is_file(), "the sandbox runs on the copy"
                _vpbx(config, "reload")
                checked = _vpbx(config, "asterisk", "check", check=False)
                assert checked.returncode == 0, checked.stdout + checked.stderr
                assert "FAIL" not in checked.stdout
                assert "ok    modules loaded" in checked.stdout
                assert "ok    ARI http://127.0.0.1:8088 as vpbx" in checked.stdout
                log = tmp_path / "serve.log"
                with open(log, "ab") as fh:
                    serve_proc.append(subprocess.Popen(
                        [sys.executable, "-m", "vpbx.cli", "--config", str(config), "serve", "--log-level", "debug",
                         "--log-format", "json"],
                        stdout=fh, stderr=fh, cwd=REPO, env=_env()))
                _wait(lambda: any(str(e.get("message") or e.get("msg") or "").startswith("reconcile done")
                              for e in _log_entries(log)),
                      "the engine to connect to ARI", log=log)
                call = sipp.uac(number, from_user=caller, scenario="uac_remote_bye.xml", timeout_s=30)
                res = call.wait(40)
                assert res.ok, res.describe()
                assert res.final_response("INVITE") == 200
                assert res.saw("BYE", "received"), "the engine did not hang up after the greeting"
                rows = _wait(lambda: [r for r in json.loads(_vpbx(config, "calls", "list", "--number", number,
                                                                  "--json").stdout) if r.get("ended_at")],
                             "the call record", timeout=15)
                assert rows[0]["caller"] == caller and rows[0]["answered_at"], rows
                played = [e.get("media") for e in _log_entries(log) if e.get("ari_event") == "PlaybackFinished"
                          and e.get("call_id") == rows[0]["call_id"]]
                assert played == [f"sound:vpbx/{prompt}"], played
            finally:
                for p in serve_proc:
                    if p.poll() is None:
                        p.terminate()
                        p.wait(10)
                _sandbox("stop", check=False)
                if subprocess.run(["mountpoint", "-q", str(etc_mount)]).returncode == 0:
                    subprocess.run(["umount", "-l", str(etc_mount)], check=False)
        assert subprocess.run(["mountpoint", "-q", str(etc_mount)]).returncode != 0
        assert not (etc_mount / system.PJSIP_BASE).exists(), "the shared sandbox is back on the repo's config"
    finally:
        _vpbx(config, "number", "route", number, "hangup", "--greeting", "", check=False)   # a used prompt stays
        _vpbx(config, "prompt", "remove", prompt, check=False)
