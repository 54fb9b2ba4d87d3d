"""systemd: the units `vpbx service install` writes (rendered from the paths of this install) and sd_notify for
`vpbx serve`.

Rule: rendering is pure (`render_units`); `install` / `uninstall` are the use cases and touch the system (the unit
files, the service user, ownership, systemctl) only when the units go into a directory systemd reads
(SYSTEMD_UNIT_DIRS) and systemd runs; for any other directory they only write the files and say what to run.
`notify` never raises: without $NOTIFY_SOCKET it does nothing.

    vpbx.service          Type=notify; `vpbx serve` (READY=1 once ARI is connected and the Stasis app registered)
    vpbx-billing.service  oneshot; `vpbx billing run`
    vpbx-billing.timer    daily at 00:15, Persistent=true (a day missed while the machine was off runs at boot)

The e-mail outbox (voicemail, notices) is delivered by `vpbx serve` itself; the billing job retries notices too, so
there is no mail unit.

The units run with ProtectSystem=strict: the engine may write its database directory and, in Asterisk's config dir,
only vpbx's bans directory (`bans_dir`, e.g. /etc/asterisk/vpbx-bans, where the brute-force watcher keeps the pjsip
ACL). install makes that directory: owner the service user (it writes the file), group Asterisk's (the group of the
config dir's asterisk.conf, Debian: asterisk), mode 0750 - Asterisk reads it through its group, other users see
nothing; 0755 when that group is root's (Asterisk's user cannot be told then). uninstall leaves it: it holds the bans
in force, which Asterisk keeps enforcing.
"""
from __future__ import annotations

import errno
import grp
import logging
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vpbx.config import atomic_write, make_dirs, shown
from vpbx.domain.errors import ConfigError, ValidationError

log = logging.getLogger(__name__)

SERVICE = "vpbx.service"
BILLING_SERVICE = "vpbx-billing.service"
BILLING_TIMER = "vpbx-billing.timer"
UNITS = (SERVICE, BILLING_SERVICE, BILLING_TIMER)
ENABLED = (SERVICE, BILLING_TIMER)          # the billing service is started by its timer

DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
# the directories the system manager reads units from; only units written into one of these are systemd's business
SYSTEMD_UNIT_DIRS = (DEFAULT_UNIT_DIR, Path("/run/systemd/system"), Path("/usr/lib/systemd/system"),
                     Path("/lib/systemd/system"), Path("/usr/local/lib/systemd/system"))
SYSTEMD_RUNNING = Path("/run/systemd/system")   # sd_booted(): this directory exists only when systemd is PID 1
STATE_ROOT = Path("/var/lib")
BILLING_TIME = "*-*-* 00:15:00"
# never chown -R these: a database kept directly in one of them needs a directory of its own first
SHARED_DIRS = frozenset(Path(p) for p in ("/", "/root", "/home", "/etc", "/var", "/var/lib", "/usr", "/tmp", "/opt",
                                          "/srv", "/var/tmp", "/run", "/mnt", "/media"))


# ---- sd_notify ------------------------------------------------------------------------------------------------------
def notify(state: str, env: dict[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1", "STOPPING=1", "STATUS=...") to the service manager's $NOTIFY_SOCKET, an absolute
    path or an abstract socket written with a leading '@'. True when sent; False without a socket or when sending
    failed (logged, never raised: the engine runs the same outside systemd)."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET %r is neither a path nor an abstract socket; not notifying systemd", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8", "replace"), address)
    except OSError as exc:
        log.warning("could not notify systemd at %r (%s)", address, exc)
        return False
    return True


# ---- the units ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitPaths:
    """What the units point at, every path absolute."""

    command: tuple[str, ...]       # how to run vpbx: (".../bin/vpbx",) or (python, "-m", "vpbx")
    config: Path
    db: Path
    db_override: bool = False      # the database was given by --db / VPBX_DB: the units pass VPBX_DB too
    user: str = "vpbx"
    bans_dir: Path | None = None   # vpbx's directory in Asterisk's config dir (vpbx.asterisk.security.bans_dir)


USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def check_user(user: str) -> str:
    """A system user name useradd accepts everywhere (Debian's default rule, no trailing $)."""
    if not USER_NAME.fullmatch(user):
        raise ValidationError(f"user name {shown(user)} is not a valid system user name; use lower-case letters, "
                              "digits, '_' and '-' (at most 32, not starting with a digit or '-'), e.g. --user vpbx")
    return user


def _check(what: str, value: str) -> str:
    if not value.isprintable():
        raise ValidationError(f"{what} {shown(value)} contains a line break or another control character, which a "
                              "systemd unit cannot hold; move it to a plain path")
    return value


def _word(value: str, command: bool = True) -> str:
    """One word of a command line (variables `$` escaped) or of a list setting: specifiers (%) escaped, quoted when
    needed."""
    value = value.replace("%", "%%")
    if command:
        value = value.replace("$", "$$")
    if value and not any(ch.isspace() or ch in "\"'\\;" for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env(name: str, value: str) -> str:
    value = value.replace("%", "%%")
    text = f"{name}={value}"
    if not any(ch.isspace() or ch in "\"'\\" for ch in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _state_directory(db_dir: Path) -> str | None:
    """`vpbx` for /var/lib/vpbx: systemd then creates it and hands it (recursively) to the service user."""
    return db_dir.name if db_dir.parent == STATE_ROOT and db_dir.name else None


def _service_section(paths: UnitPaths, args: Sequence[str], bans: bool = False) -> list[str]:
    """`bans`: the unit runs the brute-force watcher (`vpbx serve`), which writes the bans directory too."""
    db_dir = paths.db.parent
    state = _state_directory(db_dir)
    bans_dir = paths.bans_dir if bans else None
    command = " ".join(_word(_check("executable", part)) for part in (*paths.command, *args))
    lines = [
        f"User={paths.user}",
        f"Group={paths.user}",
        f"Environment={_env('VPBX_CONFIG', _check('config', str(paths.config)))}",
    ]
    if paths.db_override:
        lines.append(f"Environment={_env('VPBX_DB', _check('database', str(paths.db)))}")
    lines += [
        f"ExecStart={command}",
        "UMask=0027",
        # hardening: the service writes only its database directory (call records, voicemail spool, documents)
        # and, for `vpbx serve`, the bans directory in Asterisk's config dir; it reads the config and talks to
        # Asterisk (ARI, AMI) and the mail server over the network
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"StateDirectory={state}" if state else
        f"ReadWritePaths={_word(_check('database', str(db_dir)), command=False)}",
    ]
    if bans_dir is not None:
        # "-": a missing directory (Asterisk removed, the directory deleted) must not keep the engine from starting;
        # the watcher then logs that the bans are not applied
        lines.append(f"ReadWritePaths={_word('-' + _check('Asterisk config dir', str(bans_dir)), command=False)}")
    lines += [
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "CapabilityBoundingSet=",
    ]
    homes = (Path("/home"), Path("/root"), Path("/run/user"))
    used = (paths.config, db_dir, Path(paths.command[0]), *([bans_dir] if bans_dir is not None else []))
    if not any(p.is_relative_to(h) for p in used for h in homes):
        lines.append("ProtectHome=yes")
    return lines


def render_units(paths: UnitPaths) -> dict[str, str]:
    """{unit file name: text} for the install described by `paths` (pure)."""
    header = "# written by `vpbx service install`; run it again after moving the config, the database or vpbx\n"
    service = "\n".join([
        "[Unit]",
        "Description=vpbx call engine (ARI application for Asterisk)",
        "Wants=network-online.target",
        "After=network-online.target asterisk.service",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        *_service_section(paths, ("serve", "--log-format", "text"), bans=True),
        "Restart=on-failure",
        "RestartSec=5s",
        # READY=1 comes once ARI answers; when Asterisk is down the start times out and is retried (Restart=)
        "TimeoutStartSec=90s",
        "TimeoutStopSec=30s",
        "SyslogIdentifier=vpbx",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])
    billing = "\n".join([
        "[Unit]",
        "Description=vpbx daily billing job (renewals, toll-free rating, trials, quarantine, waitlist, notices)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        *_service_section(paths, ("billing", "run")),
        "SyslogIdentifier=vpbx-billing",
        "",
    ])
    timer = "\n".join([
        "[Unit]",
        "Description=Run the vpbx billing job daily",
        "",
        "[Timer]",
        f"OnCalendar={BILLING_TIME}",
        "Persistent=true",
        f"Unit={BILLING_SERVICE}",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return {SERVICE: header + service, BILLING_SERVICE: header + billing, BILLING_TIMER: header + timer}


def vpbx_command() -> tuple[str, ...]:
    """How to run the vpbx that is running now: the `vpbx` script beside this Python (a venv's bin), else the one
    this process was started as, else the one on PATH, else `python -m vpbx`; absolute paths, symlinks kept."""
    beside = Path(sys.executable).with_name("vpbx")
    candidates: list[str | None] = [str(beside)]
    if Path(sys.argv[0]).name == "vpbx":
        candidates.append(sys.argv[0])
    candidates.append(shutil.which("vpbx"))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return (os.path.abspath(candidate),)
    return (os.path.abspath(sys.executable), "-m", "vpbx")


# ---- installing -----------------------------------------------------------------------------------------------------
Run = Callable[[Sequence[str]], None]


@dataclass
class Report:
    """What install/uninstall did, for the command to print."""

    unit_dir: Path
    written: list[Path] = field(default_factory=list)     # created or changed
    unchanged: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    done: list[str] = field(default_factory=list)         # system changes made (user created, ownership, systemctl)
    todo: list[str] = field(default_factory=list)         # commands left for the admin to run


def run_command(argv: Sequence[str]) -> None:
    """Run a system command; VpbxError naming it when it fails (its last line of stderr as the reason)."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"`{' '.join(argv)}` could not run ({exc}); run it by hand") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise ConfigError(f"`{' '.join(argv)}` failed ({shown(reason)}); fix that and run "
                          "`vpbx service install` again")


def managed_by_systemd(unit_dir: Path) -> bool:
    """Units in `unit_dir` are read by the system manager: it is one of systemd's unit directories."""
    return unit_dir.resolve() in {d.resolve() for d in SYSTEMD_UNIT_DIRS}


def systemd_running() -> bool:
    return SYSTEMD_RUNNING.is_dir()


def _write_units(units: dict[str, str], unit_dir: Path, report: Report) -> bool:
    """Write the units that differ; True when any changed."""
    try:
        make_dirs(unit_dir)
        for name, text in units.items():
            path = unit_dir / name
            try:
                current = path.read_text(encoding="utf-8")
            except (FileNotFoundError, UnicodeDecodeError):
                current = None
            if current == text:
                report.unchanged.append(path)
                continue
            atomic_write(path, text, mode=0o644)
            report.written.append(path)
    except OSError as exc:
        raise ConfigError(f"cannot write the units into {shown(unit_dir)} ({exc.strerror or exc}); run as root or "
                          "give another --unit-dir") from None
    return bool(report.written)


def _ensure_user(user: str, home: Path, run: Run, report: Report) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    run(["useradd", "--system", "--user-group", "--home-dir", str(home), "--no-create-home", "--shell", nologin,
         "--comment", "vpbx call engine", user])
    report.done.append(f"created system user {user}")


def _own(paths: UnitPaths, report: Report) -> None:
    """The config readable by the service user (root:USER 0640), its database directory owned by it."""
    entry = pwd.getpwnam(paths.user)
    uid, gid = entry.pw_uid, entry.pw_gid
    group = grp.getgrgid(gid).gr_name
    config = paths.config
    try:
        st = config.stat()
        if (st.st_gid, st.st_mode & 0o777) != (gid, 0o640) and st.st_uid != uid:
            os.chown(config, -1, gid)
            os.chmod(config, 0o640)
            report.done.append(f"config {shown(config)}: group {group}, mode 0640")
        db_dir = paths.db.parent.resolve()
        if _state_directory(db_dir) is None and db_dir in SHARED_DIRS:
            raise ValidationError(f"the database {shown(paths.db)} is directly in {shown(db_dir)}, which the "
                                      f"service user cannot own; move it into a directory of its own (e.g. "
                                      f"/var/lib/vpbx/vpbx.db) and run `vpbx service install` again")
        make_dirs(db_dir, 0o750)
        mode = db_dir.stat().st_mode & 0o7777
        if mode & 0o027:
            os.chmod(db_dir, mode & ~0o027)       # call records, passwords, voicemail: not for other users
        changed = 0
        for root, dirs, files in os.walk(db_dir):
            for name in [".", *dirs, *files]:
                path = os.path.join(root, name) if name != "." else root
                st = os.lstat(path)
                if (st.st_uid, st.st_gid) != (uid, gid):
                    os.lchown(path, uid, gid)
                    changed += 1
        if changed:
            report.done.append(f"{shown(db_dir)}: owned by {paths.user}:{group} ({changed} entries)")
    except OSError as exc:
        raise ConfigError(f"cannot hand {shown(exc.filename or config)} to user {paths.user} "
                          f"({exc.strerror or exc}); run `vpbx service install` as root") from None


def asterisk_group(config_dir: Path) -> int:
    """Asterisk's group: the group of the config dir's asterisk.conf (else of the dir) - the reference `vpbx asterisk
    check` reads Asterisk's user from too."""
    for ref in (config_dir / "asterisk.conf", config_dir):
        try:
            return ref.stat().st_gid
        except OSError:
            continue
    return 0


def bans_dir_mode(gid: int) -> int:
    """0750 for a real Asterisk group (it reads through the group, nobody else); 0755 when the group is root's."""
    return 0o750 if gid != 0 else 0o755


def _bans_dir(paths: UnitPaths, report: Report) -> None:
    """Make vpbx's bans directory in Asterisk's config dir: the service user's (it writes the ACL there), Asterisk's
    group (it reads it). Asterisk's config dir itself is never created: without it, the admin is told what to run."""
    directory = paths.bans_dir
    if directory is None:
        return
    config_dir = directory.parent
    if not config_dir.is_dir():
        report.todo.append(f"Asterisk's config dir {shown(config_dir)} does not exist: install Asterisk, run `vpbx "
                           f"asterisk install`, then `vpbx service install` again (it makes {shown(directory)}, "
                           f"where the engine writes the brute-force bans)")
        return
    entry = pwd.getpwnam(paths.user)
    gid = asterisk_group(config_dir)
    mode = bans_dir_mode(gid)
    try:
        try:
            os.mkdir(directory, 0o700)
            created = True
        except FileExistsError:
            created = False
        try:   # the directory itself, never where a symlink put there points
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            raise ConfigError(f"{shown(directory)} is not a directory (vpbx keeps the brute-force bans there); "
                              f"remove it and run `vpbx service install` again") from None
        try:
            st = os.fstat(fd)
            if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (entry.pw_uid, gid, mode):
                os.fchown(fd, entry.pw_uid, gid)
                os.fchmod(fd, mode)
                owned = f"{paths.user}:{_group_name(gid)}, mode {mode:04o}"
                report.done.append(f"created {shown(directory)} ({owned}; the brute-force bans)" if created else
                                   f"{shown(directory)}: owned by {owned}")
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(f"cannot hand {shown(directory)} to user {paths.user} ({exc.strerror or exc}); run "
                          f"`vpbx service install` as root") from None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def install(paths: UnitPaths, unit_dir: Path = DEFAULT_UNIT_DIR, enable: bool = True, run: Run | None = None,
            systemd: bool | None = None) -> Report:
    """Write the units (only those that changed). Into a systemd unit directory (as root): create the service user
    when missing, hand it the database directory, the config (group-readable) and the bans directory in Asterisk's
    config dir (`_bans_dir`), reload systemd and, with `enable`, enable and start vpbx.service and the billing timer;
    a changed vpbx.service is restarted if it runs (the calls stay up in Asterisk and the new engine adopts them).
    Anywhere else, or when systemd is not running, the systemctl commands are left in `todo`."""
    run = run or run_command
    units = render_units(paths)
    report = Report(unit_dir=unit_dir)
    real = managed_by_systemd(unit_dir)
    if real and os.geteuid() != 0:
        raise ConfigError(f"installing units into {shown(unit_dir)} needs root; run `sudo vpbx service install`, or "
                          "give --unit-dir DIR to only write the files")
    if not paths.config.is_file():
        raise ConfigError(f"config {shown(paths.config)} not found; create it first, e.g. `vpbx --config "
                          f"/etc/vpbx/vpbx.toml init --dir /var/lib/vpbx`")
    if real:
        _ensure_user(paths.user, paths.db.parent, run, report)
        _own(paths, report)
        _bans_dir(paths, report)
    existed = (unit_dir / SERVICE).exists()
    changed = _write_units(units, unit_dir, report)
    commands: list[list[str]] = [["systemctl", "daemon-reload"]] if changed or not real else []
    if existed and unit_dir / SERVICE in report.written:
        commands.append(["systemctl", "try-restart", SERVICE])    # a running engine picks up its new unit
    if enable:
        commands.append(["systemctl", "enable", "--now", *ENABLED])
    if real and (systemd_running() if systemd is None else systemd):
        for argv in commands:
            run(argv)
            report.done.append(" ".join(argv))
    else:
        if not real:
            report.todo.append(f"copy {' '.join(units)} into {DEFAULT_UNIT_DIR} (or run `vpbx service install` "
                               "without --unit-dir)")
        report.todo += [" ".join(argv) for argv in commands]
    if not enable:
        report.todo.append(f"systemctl enable --now {' '.join(ENABLED)}")
    return report


def uninstall(unit_dir: Path = DEFAULT_UNIT_DIR, run: Run | None = None, systemd: bool | None = None) -> Report:
    """Stop and disable the units, then remove their files. The service user, the config, the database and the bans
    directory stay (Asterisk keeps enforcing the bans in it; a later install, or `vpbx security unban`, picks them up
    from the database)."""
    run = run or run_command
    report = Report(unit_dir=unit_dir)
    real = managed_by_systemd(unit_dir)
    if real and os.geteuid() != 0:
        raise ConfigError(f"removing units from {shown(unit_dir)} needs root; run `sudo vpbx service uninstall`")
    present = [name for name in UNITS if (unit_dir / name).exists()]
    live = real and (systemd_running() if systemd is None else systemd)
    enabled_present = [name for name in ENABLED if name in present]
    if enabled_present:
        argv = ["systemctl", "disable", "--now", *enabled_present]
        if live:
            run(argv)
            report.done.append(" ".join(argv))
        elif real:
            report.todo.append(" ".join(argv))
    for name in present:
        path = unit_dir / name
        try:
            path.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot remove {shown(path)} ({exc.strerror or exc}); run as root") from None
        report.removed.append(path)
    if present and real:
        if live:
            run(["systemctl", "daemon-reload"])
            report.done.append("systemctl daemon-reload")
        else:
            report.todo.append("systemctl daemon-reload")
    return report
