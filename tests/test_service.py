"""`vpbx service install|uninstall` (systemd units) and sd_notify from `vpbx serve` (issue 10).

The units are written only into temporary directories here: never /etc/systemd/system, never /etc/vpbx.
`systemd-analyze verify` checks what they say (it needs ExecStart's binary to exist: the units point at this venv's
`vpbx`). The Asterisk test runs the real `vpbx serve` with a NOTIFY_SOCKET the test binds.

The unit's sandbox (ProtectSystem=strict + ReadWritePaths=/StateDirectory=) is rebuilt in a private mount namespace
(`unshare --mount`, root; CI always runs it) from the rendered unit, and the watcher's real write path runs in it.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import in_ci, skip_outside_ci

from clitools import ok
from vpbx.cli import main
from vpbx.services import systemd
from vpbx.services.systemd import UnitPaths

REPO = Path(__file__).resolve().parent.parent
VPBX = Path(sys.executable).with_name("vpbx")          # the venv's console script: what the units must run
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
UNITS = ("vpbx.service", "vpbx-billing.service", "vpbx-billing.timer")


def invoke(*args: str, env: dict[str, str | None] | None = None) -> object:
    return CliRunner().invoke(main, list(args), env={"VPBX_CONFIG": None, "VPBX_DB": None, **(env or {})})


@pytest.fixture
def asterisk_etc(tmp_path: Path) -> Path:
    """Asterisk's config dir (tmp/etc-asterisk): an asterisk.conf of Asterisk's group - nogroup stands in for
    Debian's `asterisk`."""
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    (etc / "asterisk.conf").write_text("[options]\n")
    if os.geteuid() == 0:
        os.chown(etc / "asterisk.conf", 0, grp.getgrnam("nogroup").gr_gid)
    return etc


@pytest.fixture
def install(tmp_path: Path, asterisk_etc: Path) -> Path:
    """A config under tmp/etc, its database under tmp/lib and its Asterisk in tmp/etc-asterisk (the production
    layout, moved into tmp)."""
    config = tmp_path / "etc" / "vpbx.toml"
    ok(invoke("init", "--config", str(config), "--dir", str(tmp_path / "lib"), "--asterisk-config-dir",
              str(asterisk_etc)))
    return config


def unit_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# ---- rendering ------------------------------------------------------------------------------------------------------
def test_the_units_run_this_vpbx_with_the_config_and_write_only_the_database_dir(tmp_path: Path) -> None:
    units = systemd.render_units(UnitPaths(command=(str(VPBX),), config=Path("/etc/vpbx/vpbx.toml"),
                                           db=Path("/var/lib/vpbx/vpbx.db")))
    assert sorted(units) == sorted(UNITS)
    service = units["vpbx.service"].splitlines()
    assert f"ExecStart={VPBX} serve --log-format text" in service
    assert "Environment=VPBX_CONFIG=/etc/vpbx/vpbx.toml" in service
    assert {"Type=notify", "Restart=on-failure", "User=vpbx", "Group=vpbx", "NoNewPrivileges=yes",
            "ProtectSystem=strict", "StateDirectory=vpbx", "ProtectHome=yes"} <= set(service)
    assert not any(line.startswith(("ReadWritePaths=", "Environment=VPBX_DB")) for line in service)
    billing = units["vpbx-billing.service"].splitlines()
    assert f"ExecStart={VPBX} billing run" in billing and "Type=oneshot" in billing
    assert "Environment=VPBX_CONFIG=/etc/vpbx/vpbx.toml" in billing
    timer = units["vpbx-billing.timer"].splitlines()
    assert {"OnCalendar=*-*-* 00:15:00", "Persistent=true", "Unit=vpbx-billing.service",
            "WantedBy=timers.target"} <= set(timer)


def test_other_layouts_name_their_paths_escaped_for_systemd() -> None:
    units = systemd.render_units(UnitPaths(command=("/opt/my venv/bin/python", "-m", "vpbx"),
                                           config=Path("/srv/pbx 100%/vpbx.toml"), db=Path("/home/pbx/data/x.db"),
                                           db_override=True, user="pbx"))
    service = units["vpbx.service"].splitlines()
    assert 'ExecStart="/opt/my venv/bin/python" -m vpbx serve --log-format text' in service
    assert 'Environment="VPBX_CONFIG=/srv/pbx 100%%/vpbx.toml"' in service
    assert "Environment=VPBX_DB=/home/pbx/data/x.db" in service
    assert "ReadWritePaths=/home/pbx/data" in service and "User=pbx" in service
    assert "ProtectHome=yes" not in service          # the database lives under /home


def test_the_engine_may_write_the_bans_dir_the_billing_job_may_not() -> None:
    paths = UnitPaths(command=(str(VPBX),), config=Path("/etc/vpbx/vpbx.toml"), db=Path("/var/lib/vpbx/vpbx.db"),
                      bans_dir=Path("/etc/asterisk/vpbx-bans"))
    units = systemd.render_units(paths)
    service = units["vpbx.service"].splitlines()
    # "-": a missing directory must not keep the engine (the calls) from starting
    assert [line for line in service if line.startswith(("ReadWritePaths=", "StateDirectory="))] == [
        "StateDirectory=vpbx", "ReadWritePaths=-/etc/asterisk/vpbx-bans"]
    assert "ProtectSystem=strict" in service and "ProtectHome=yes" in service
    billing = units["vpbx-billing.service"].splitlines()
    assert not any(line.startswith("ReadWritePaths=") for line in billing), "the billing job writes no bans"
    # quoted and escaped like every other path; under /home, ProtectHome would hide it
    odd = systemd.render_units(UnitPaths(command=(str(VPBX),), config=Path("/etc/vpbx/vpbx.toml"),
                                         db=Path("/srv/vpbx/vpbx.db"), bans_dir=Path("/home/pbx/ast 100%/vpbx-bans")))
    lines = odd["vpbx.service"].splitlines()
    assert 'ReadWritePaths="-/home/pbx/ast 100%%/vpbx-bans"' in lines and "ReadWritePaths=/srv/vpbx" in lines
    assert "ProtectHome=yes" not in lines
    assert rw_paths(odd["vpbx.service"]) == ["/srv/vpbx", "-/home/pbx/ast 100%/vpbx-bans"]


def rw_paths(unit: str) -> list[str]:
    """What the unit may write, as systemd reads it: ReadWritePaths= words (unquoted, `%%` -> `%`, a leading `-`
    kept) and StateDirectory= names under /var/lib."""
    out: list[str] = []
    for line in unit.splitlines():
        key, _, value = line.partition("=")
        words = [w.replace("%%", "%") for w in shlex.split(value)]
        if key == "ReadWritePaths":
            out += words
        elif key == "StateDirectory":
            out += [f"/var/lib/{w}" for w in words]
    return out


def verify(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *map(str, paths)], capture_output=True, text=True,
                          timeout=60, cwd=paths[0].parent)


def complaints(proc: subprocess.CompletedProcess[str], names: tuple[str, ...]) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if any(n in line for n in names)]


@skip_outside_ci(not Path(SYSTEMD_ANALYZE).exists(), "systemd-analyze is not installed")
@pytest.mark.parametrize("db, bans", [("/var/lib/vpbx/vpbx.db", "/etc/asterisk/vpbx-bans"),
                                      ("/srv/vpbx data/vpbx.db", "/srv/ast etc/vpbx-bans")])
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path, db: str, bans: str) -> None:
    assert VPBX.exists(), "the venv has no vpbx console script (pip install -e .)"
    units = systemd.render_units(UnitPaths(command=(str(VPBX),), config=tmp_path / "vpbx.toml", db=Path(db),
                                           bans_dir=Path(bans)))
    for name, text in units.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    proc = verify(*(tmp_path / name for name in UNITS))
    assert proc.returncode == 0 and complaints(proc, UNITS) == [], proc.stdout + proc.stderr
    # the same check sees a wrong unit: an unknown setting, a binary that does not exist
    bad = tmp_path / "bad.service"
    bad.write_text(units["vpbx.service"].replace("NoNewPrivileges=", "NoNewPrivilegez="), encoding="utf-8")
    assert complaints(verify(bad), ("bad.service",))
    missing = tmp_path / "missing.service"
    missing.write_text(units["vpbx.service"].replace(f"ExecStart={VPBX}", "ExecStart=/nonexistent/vpbx"),
                       encoding="utf-8")
    assert verify(missing).returncode != 0


# ---- vpbx service install / uninstall into a directory of our own -------------------------------------------------
def test_install_writes_the_three_units_for_this_install_and_is_idempotent(install: Path, tmp_path: Path) -> None:
    units = tmp_path / "units"
    first = ok(invoke("--config", str(install), "service", "install", "--unit-dir", str(units)))
    assert sorted(p.name for p in units.iterdir()) == sorted(UNITS)
    for name in UNITS:
        assert f"Wrote {units / name}" in first.stdout
    service = unit_lines(units / "vpbx.service")
    assert f"ExecStart={VPBX} serve --log-format text" in service
    assert f"Environment=VPBX_CONFIG={install}" in service
    assert f"ReadWritePaths={tmp_path / 'lib'}" in service
    assert f"ReadWritePaths=-{tmp_path / 'etc-asterisk' / 'vpbx-bans'}" in service, "the watcher writes the bans"
    assert not (tmp_path / "etc-asterisk" / "vpbx-bans").exists(), "not systemd's directory: files only"
    assert f"ExecStart={VPBX} billing run" in unit_lines(units / "vpbx-billing.service")
    assert f"Environment=VPBX_CONFIG={install}" in unit_lines(units / "vpbx-billing.service")
    # not systemd's directory: no user, no systemctl; the commands are printed instead
    assert "systemctl enable --now vpbx.service vpbx-billing.timer" in first.stdout
    assert "Done:" not in first.stdout
    before = {name: ((units / name).read_bytes(), (units / name).stat().st_mtime_ns) for name in UNITS}
    again = ok(invoke("--config", str(install), "service", "install", "--unit-dir", str(units)))
    for name in UNITS:
        assert f"Unchanged {units / name}" in again.stdout
    assert "Wrote" not in again.stdout and "daemon-reload" in again.stdout   # still to run by hand
    assert {name: ((units / name).read_bytes(), (units / name).stat().st_mtime_ns) for name in UNITS} == before
    assert sorted(p.name for p in units.iterdir()) == sorted(UNITS)         # no temp files left


def test_install_follows_the_config_the_cli_uses(install: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    units = tmp_path / "units"
    ok(invoke("service", "install", "--unit-dir", str(units), env={"VPBX_CONFIG": str(install)}))
    assert f"Environment=VPBX_CONFIG={install}" in unit_lines(units / "vpbx.service")
    # a relative --config is written absolute, and --db is passed on as VPBX_DB (absolute: relative to the config's
    # directory, as every command reads it)
    monkeypatch.chdir(tmp_path)
    ok(invoke("--config", "etc/vpbx.toml", "--db", "lib/other.db", "service", "install", "--unit-dir", "u2"))
    service = unit_lines(tmp_path / "u2" / "vpbx.service")
    assert f"Environment=VPBX_CONFIG={install}" in service
    assert f"Environment=VPBX_DB={tmp_path / 'etc' / 'lib' / 'other.db'}" in service


def test_dry_run_prints_the_units_and_writes_nothing(install: Path, tmp_path: Path) -> None:
    units = tmp_path / "units"
    result = ok(invoke("--config", str(install), "service", "install", "--unit-dir", str(units), "--dry-run"))
    assert f"# {units / 'vpbx.service'}" in result.stdout and f"Environment=VPBX_CONFIG={install}" in result.stdout
    assert not units.exists()


def test_uninstall_removes_the_units_from_a_directory_of_our_own(install: Path, tmp_path: Path) -> None:
    units = tmp_path / "units"
    ok(invoke("--config", str(install), "service", "install", "--unit-dir", str(units)))
    (units / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
    result = ok(invoke("service", "uninstall", "--unit-dir", str(units)))
    assert sorted(p.name for p in units.iterdir()) == ["other.service"]
    assert f"Removed {units / 'vpbx.service'}" in result.stdout
    assert ok(invoke("service", "uninstall", "--unit-dir", str(units))).stdout == ""


@pytest.mark.parametrize("user", ["", "root\n", "vp bx", "-vpbx", "VPBX", "vpbx\x00x", "a" * 33, "../etc"])
def test_a_bad_user_name_is_one_error_line_and_writes_nothing(install: Path, tmp_path: Path, user: str) -> None:
    result = invoke("--config", str(install), "service", "install", "--unit-dir", str(tmp_path / "units"),
                    "--user", user)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert not (tmp_path / "units").exists()


def test_errors_are_one_line(install: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)          # no ./vpbx.toml here, and the system one points nowhere (conftest)
    missing = invoke("service", "install", "--unit-dir", str(tmp_path / "units"))
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: no config file") \
        and missing.stderr.count("\n") == 1, missing.stderr
    (tmp_path / "afile").write_text("")
    blocked = invoke("--config", str(install), "service", "install", "--unit-dir", str(tmp_path / "afile" / "d"))
    assert blocked.exit_code == 1 and blocked.stderr.startswith("Error: cannot write the units into") \
        and blocked.stderr.count("\n") == 1, blocked.stderr
    gone = invoke("--config", str(tmp_path / "nope.toml"), "service", "install", "--unit-dir", str(tmp_path / "u"))
    assert gone.exit_code == 1 and gone.stderr.startswith("Error: config ") and gone.stderr.count("\n") == 1
    assert not (tmp_path / "u").exists()


# ---- what install does in a directory systemd reads (simulated: the directory and systemctl are fakes) -----------
@skip_outside_ci(os.geteuid() != 0, "hands files to another user: needs root")
def test_install_into_systemds_directory_hands_over_the_files_and_runs_systemctl(
        install: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    units = tmp_path / "systemd-system"
    monkeypatch.setattr(systemd, "SYSTEMD_UNIT_DIRS", (units,))
    ran: list[list[str]] = []
    user = pwd.getpwnam("nobody")
    db = tmp_path / "lib" / "vpbx.db"
    (tmp_path / "lib").chmod(0o755)
    paths = UnitPaths(command=(str(VPBX),), config=install, db=db, user="nobody")
    report = systemd.install(paths, units, run=lambda argv: ran.append(list(argv)), systemd=True)
    enable = ["systemctl", "enable", "--now", "vpbx.service", "vpbx-billing.timer"]
    assert ran == [["systemctl", "daemon-reload"], enable]
    assert db.stat().st_uid == user.pw_uid and (tmp_path / "lib").stat().st_uid == user.pw_uid
    assert (tmp_path / "lib").stat().st_mode & 0o777 == 0o750
    st = install.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, user.pw_gid, 0o640)
    assert len(report.written) == 3 and report.todo == []
    # again: nothing changed, so no reload and no restart; enabling is idempotent
    ran.clear()
    report = systemd.install(paths, units, run=lambda argv: ran.append(list(argv)), systemd=True)
    assert ran == [enable]
    assert report.written == [] and len(report.unchanged) == 3
    # a changed engine unit: reload, restart the running engine with it, enable
    (units / "vpbx.service").write_text("[Service]\nExecStart=/bin/false\n")
    ran.clear()
    report = systemd.install(paths, units, run=lambda argv: ran.append(list(argv)), systemd=True)
    assert ran == [["systemctl", "daemon-reload"], ["systemctl", "try-restart", "vpbx.service"], enable]
    assert report.written == [units / "vpbx.service"]
    # `vpbx init --force` keeps the group and mode the service needs
    ok(invoke("init", "--config", str(install), "--dir", str(tmp_path / "lib"), "--force"))
    st = install.stat()
    assert (st.st_gid, st.st_mode & 0o777) == (user.pw_gid, 0o640)
    # without systemd running, the same commands are left to the admin
    ran.clear()
    report = systemd.install(paths, units, run=lambda argv: ran.append(list(argv)), systemd=False)
    assert ran == [] and report.todo == ["systemctl enable --now vpbx.service vpbx-billing.timer"]
    ran.clear()
    systemd.uninstall(units, run=lambda argv: ran.append(list(argv)), systemd=True)
    assert ran == [["systemctl", "disable", "--now", "vpbx.service", "vpbx-billing.timer"],
                   ["systemctl", "daemon-reload"]]
    assert list(units.iterdir()) == []


@skip_outside_ci(os.geteuid() != 0, "hands files to another user: needs root")
def test_install_gives_the_bans_dir_to_the_service_user_and_asterisks_group(
        install: Path, tmp_path: Path, asterisk_etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vpbx.domain.errors import ConfigError

    units = tmp_path / "systemd-system"
    monkeypatch.setattr(systemd, "SYSTEMD_UNIT_DIRS", (units,))
    monkeypatch.setattr(systemd, "systemd_running", lambda: False)
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    bans = asterisk_etc / "vpbx-bans"
    paths = UnitPaths(command=(str(VPBX),), config=install, db=tmp_path / "lib" / "vpbx.db", user="nobody",
                      bans_dir=bans)

    def installed() -> systemd.Report:
        return systemd.install(paths, units, run=lambda argv: None, systemd=False)

    def owner() -> tuple[int, int, int]:
        st = os.lstat(bans)
        return st.st_uid, st.st_gid, st.st_mode & 0o7777

    report = installed()
    # the service user writes (rwx), Asterisk reads through its group (r-x), nobody else sees the bans
    assert owner() == (nobody, nogroup, 0o750)
    assert f"created {bans} (nobody:nogroup, mode 0750; the brute-force bans)" in report.done
    assert f"ReadWritePaths=-{bans}" in unit_lines(units / "vpbx.service")
    assert not [d for d in installed().done if "vpbx-bans" in d], "a second run changes nothing"
    os.chown(bans, 0, 0)
    os.chmod(bans, 0o777)
    assert f"{bans}: owned by nobody:nogroup, mode 0750" in installed().done and owner() == (nobody, nogroup, 0o750)
    # uninstall leaves it: it holds the bans Asterisk enforces
    (bans / "pjsip_bans_vpbx.conf").write_text("; bans\n")
    systemd.uninstall(units, run=lambda argv: None, systemd=False)
    assert (bans / "pjsip_bans_vpbx.conf").read_text() == "; bans\n" and owner() == (nobody, nogroup, 0o750)
    # Asterisk's config of root's group tells nothing about Asterisk's user: readable by all then
    os.chown(asterisk_etc / "asterisk.conf", 0, 0)
    installed()
    assert owner() == (nobody, 0, 0o755)
    # a symlink where the directory belongs is refused (one error line), never followed
    shutil.rmtree(bans)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bans.symlink_to(elsewhere)
    with pytest.raises(ConfigError, match=r"is not a directory .*remove it and run `vpbx service install` again"):
        installed()
    assert os.stat(elsewhere).st_uid == 0 and os.stat(elsewhere).st_mode & 0o777 == 0o755
    result = invoke("--config", str(install), "service", "install", "--unit-dir", str(units), "--user", "nobody")
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: {bans} is not a directory"), result.stderr
    assert result.stderr.count("\n") == 1
    # no Asterisk config dir yet: nothing is created, the admin is told what to run
    bans.unlink()
    gone = replace(paths, bans_dir=tmp_path / "no-asterisk" / "vpbx-bans")
    report = systemd.install(gone, units, run=lambda argv: None, systemd=False)
    assert not (tmp_path / "no-asterisk").exists()
    assert any("does not exist: install Asterisk, run `vpbx asterisk install`" in t for t in report.todo), report.todo


# ---- the unit's sandbox, rebuilt: the watcher's write must work under ProtectSystem=strict ------------------------
# Run by `unshare --mount --propagation private` (a mount namespace of its own: nothing here reaches the machine's
# mounts, and the namespace ends with its last process). It does what ProtectSystem=strict + ReadWritePaths= do -
# every mount read-only except the API file systems (/proc, /sys, /dev), then each writable path bind-mounted onto
# itself read-write ("-": skipped when missing) - and runs each writer in it. The writers run as root: a read-only
# mount stops even root, so what they can write is what the mounts allow (the service user's permission bits on the
# bans directory are test_install_gives_the_bans_dir_to_the_service_user_and_asterisks_group's).
PROTECT_SYSTEM = r"""
import json, os, re, subprocess, sys

spec = json.loads(sys.argv[1])
API = ("/proc", "/sys", "/dev")


def mount(*args):
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    return proc.returncode, proc.stderr.strip()


def unescape(path):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


points = [unescape(line.split()[4]) for line in open("/proc/self/mountinfo")]
failed = []
for point in dict.fromkeys(points):
    if not any(point == api or point.startswith(api + "/") for api in API):
        rc, err = mount("-o", "remount,bind,ro", point)
        if rc:
            failed.append(f"{point}: {err}")
writable = []
for word in spec["rw"]:
    optional, path = word.startswith("-"), word[1:] if word.startswith("-") else word
    if optional and not os.path.exists(path):
        continue
    for args in (("--bind", path, path), ("-o", "remount,bind,rw", path)):
        rc, err = mount(*args)
        if rc:
            sys.exit(f"mount {' '.join(args)} failed: {err}")
    writable.append(path)
results = {}
for name, code in spec["writers"].items():
    proc = subprocess.run([sys.executable, "-c", code, *spec["args"]], capture_output=True, text=True, timeout=60)
    results[name] = {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
print(json.dumps({"not_read_only": failed, "writable": writable, "results": results}))
"""
# the watcher's own write path (vpbx.asterisk.security.write_bans, what Watcher.apply_now runs) ...
NEW_WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from vpbx.asterisk.security import write_bans
from vpbx.config import load_config
from vpbx.domain.security import Ban
now = datetime.now(UTC)
print(write_bans(load_config(sys.argv[1]), [Ban("192.0.2.7", ("101",), 5, now, now + timedelta(hours=1))]))
"""
# ... and the same write at the old place, straight into Asterisk's config dir (what the watcher did before)
OLD_WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from vpbx.asterisk.render.security import OLD_BANS_FILE, render_bans
from vpbx.config import atomic_write, load_config, owner_for
from vpbx.domain.security import Ban
now = datetime.now(UTC)
etc = Path(load_config(sys.argv[1]).asterisk_config_dir)
path = etc / OLD_BANS_FILE
try:
    atomic_write(path, render_bans([Ban("192.0.2.7", ("101",), 5, now, now + timedelta(hours=1))]), mode=0o644,
                 owner=owner_for(path, etc))
except OSError as exc:
    sys.exit(f"errno {exc.errno}: {exc}")
print(path)
"""


def _mounts_under(root: Path) -> list[str]:
    """This namespace's mount points under root (other tests may mount elsewhere meanwhile)."""
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return sorted(p for p in points if p == str(root) or p.startswith(f"{root}/"))


def test_the_watcher_writes_its_bans_under_the_units_sandbox_and_could_not_at_the_old_place(
        install: Path, tmp_path: Path, asterisk_etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vpbx.asterisk.render.security import parse_bans

    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("rebuilding the unit's sandbox needs root (a mount namespace); CI runs as root",
                        pytrace=False)
        pytest.skip("rebuilding the unit's sandbox needs root (a mount namespace)")
    tools = {name: shutil.which(name) for name in ("unshare", "mount")}
    assert all(tools.values()), f"util-linux tools missing: {tools}"
    # the real `vpbx service install` into a (stand-in) systemd unit directory: it renders the unit and makes the
    # bans directory (for root here: the writers run as root)
    units = tmp_path / "systemd-system"
    monkeypatch.setattr(systemd, "SYSTEMD_UNIT_DIRS", (units,))
    monkeypatch.setattr(systemd, "systemd_running", lambda: False)
    ok(invoke("--config", str(install), "service", "install", "--unit-dir", str(units), "--user", "root"))
    writable = rw_paths((units / "vpbx.service").read_text(encoding="utf-8"))
    bans_dir = asterisk_etc / "vpbx-bans"
    assert writable == [str(tmp_path / "lib"), f"-{bans_dir}"]
    assert bans_dir.is_dir()
    new, old = bans_dir / "pjsip_bans_vpbx.conf", asterisk_etc / "pjsip_bans_vpbx.conf"
    script = tmp_path / "protect_system.py"
    script.write_text(PROTECT_SYSTEM, encoding="utf-8")
    spec = {"rw": writable, "writers": {"new": NEW_WRITER, "old": OLD_WRITER}, "args": [str(install)]}
    proc = subprocess.Popen([str(tools["unshare"]), "--mount", "--propagation", "private", "--", sys.executable,
                             str(script), json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1"))
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:          # a hung namespace: end every process in it (its own session)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert _mounts_under(tmp_path) == [], "the namespace's bind mounts stayed in it"
    assert proc.returncode == 0, (out, err)
    report = json.loads(out)
    assert report["writable"] == [str(tmp_path / "lib"), str(bans_dir)], report
    results = report["results"]
    assert results["new"]["rc"] == 0, (results["new"], report["not_read_only"])
    assert results["new"]["out"].strip() == str(new)
    assert parse_bans(new.read_text()) == ["192.0.2.7"], "the ACL is there for Asterisk"
    # the old place, under the very same sandbox: read-only, so the bans never reached Asterisk
    assert results["old"]["rc"] != 0 and "errno 30:" in results["old"]["err"], (results["old"],
                                                                               report["not_read_only"])
    assert not old.exists()


def test_a_missing_user_is_created_as_a_system_user(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    report = systemd.Report(unit_dir=tmp_path)
    systemd._ensure_user("vpbx-no-such-user-x", Path("/var/lib/vpbx"), lambda argv: ran.append(list(argv)), report)
    (argv,) = ran
    assert argv[0] == "useradd" and "--system" in argv and argv[-1] == "vpbx-no-such-user-x"
    assert argv[argv.index("--home-dir") + 1] == "/var/lib/vpbx" and "--no-create-home" in argv
    assert argv[argv.index("--shell") + 1].endswith("nologin")
    ran.clear()
    systemd._ensure_user("root", Path("/root"), lambda argv: ran.append(list(argv)), report)
    assert ran == []


def test_a_database_directly_in_a_shared_directory_is_refused(tmp_path: Path) -> None:
    from vpbx.domain.errors import ValidationError

    paths = UnitPaths(command=(str(VPBX),), config=tmp_path / "x.toml", db=Path("/var/vpbx.db"), user="nobody")
    (tmp_path / "x.toml").write_text("")
    with pytest.raises(ValidationError, match="directory of its own"):
        systemd._own(paths, systemd.Report(unit_dir=tmp_path))


def test_a_failing_system_command_is_an_error_naming_it() -> None:
    from vpbx.domain.errors import ConfigError

    with pytest.raises(ConfigError, match=r"`sh -c echo nope >&2; exit 3` failed \(nope\)"):
        systemd.run_command(["sh", "-c", "echo nope >&2; exit 3"])


# ---- sd_notify ------------------------------------------------------------------------------------------------------
class NotifySocket:
    """What systemd listens on: a unix datagram socket (a path, or abstract when `abstract`)."""

    def __init__(self, tmp_path: Path, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"vpbx-test-notify-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = str(tmp_path / "notify.sock")
            self.sock.bind(self.address)
        self.sock.settimeout(0.2)

    def messages(self, until: str | None = None, timeout: float = 0.5) -> list[str]:
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            if until is not None and any(until in m.splitlines() for m in got):
                break
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_sends_to_a_path_or_an_abstract_socket(tmp_path: Path, abstract: bool) -> None:
    listener = NotifySocket(tmp_path, abstract)
    try:
        assert systemd.notify("READY=1\nSTATUS=hello", {"NOTIFY_SOCKET": listener.address})
        assert listener.messages(until="READY=1") == ["READY=1\nSTATUS=hello"]
    finally:
        listener.close()


def test_notify_without_a_socket_does_nothing_and_never_raises(tmp_path: Path) -> None:
    assert systemd.notify("READY=1", {}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "relative/path"}) is False


# ---- the real engine under a fake service manager ------------------------------------------------------------------
def test_serve_says_stopping_on_sigterm_and_is_not_ready_while_ari_is_unreachable(tmp_path: Path) -> None:
    """No Asterisk needed: ARI on a closed port. READY=1 must not come; SIGTERM gives STOPPING=1 and exit 0."""
    config = tmp_path / "vpbx.toml"
    ok(invoke("init", "--config", str(config), "--dir", str(tmp_path)))
    text = config.read_text().replace('url = "http://127.0.0.1:8088"', 'url = "http://127.0.0.1:9"')
    config.write_text(text)
    listener = NotifySocket(tmp_path, abstract=True)
    proc = subprocess.Popen([str(VPBX), "--config", str(config), "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, NOTIFY_SOCKET=listener.address))
    try:
        early = listener.messages(timeout=2.0)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        late = listener.messages(until="STOPPING=1", timeout=2.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert not any("READY=1" in m.splitlines() for m in early + late), early + late
    assert any("STOPPING=1" in m.splitlines() for m in late), late


@pytest.mark.asterisk
def test_serve_notifies_ready_once_the_stasis_app_is_registered_and_stopping_on_sigterm(asterisk, tmp_path) -> None:
    listener = NotifySocket(tmp_path, abstract=True)
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(VPBX), "--config", str(asterisk.config_path), "serve"], stdout=fh, stderr=fh,
                                cwd=REPO, env=dict(os.environ, NOTIFY_SOCKET=listener.address))
    try:
        ready = listener.messages(until="READY=1", timeout=30)
        assert any("READY=1" in m.splitlines() for m in ready), (ready, log.read_text())
        assert proc.poll() is None
        apps = asterisk.cli("ari show apps")
        assert asterisk.cfg.ari.app in apps.split(), apps      # registered by the time READY=1 was sent
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
        stopping = listener.messages(until="STOPPING=1", timeout=5)
        assert any("STOPPING=1" in m.splitlines() for m in stopping), stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        listener.close()
