"""Getting the rendered config into Asterisk: write it (atomically), diff it, reload it over AMI.

Rule: this is the I/O edge of vpbx.asterisk.render - rendering stays pure; here files are written with
write_set (the generated files are replaced as a set: all staged under temp names, then renamed; Asterisk sees the
old set or the new one, never half) and Asterisk is told to re-read them.
A reload never drops live calls: only res_pjsip (accounts/trunks), pbx_config (dialplan), res_ari (ARI users) and
manager (AMI users) are reloaded, each with AMI `Action: Reload` - never `core restart`.
"""
from __future__ import annotations

import asyncio
import difflib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vpbx.asterisk.render import SECRET_FILES, render_all
from vpbx.asterisk.render.transports import transport_changes
from vpbx.config import Config, check_tls_files, owner_for, shown, stage_file
from vpbx.domain.errors import AsteriskError, ConfigError
from vpbx.domain.records import Number, SipAccount, Trunk
from vpbx.services import prompts
from vpbx.storage.store import Store

log = logging.getLogger(__name__)

# What `vpbx reload` reloads, in order (AMI Reload `Module:` values). res_musiconhold: a files-mode class whose
# directory was empty when Asterisk started is only loaded once the files are there (`vpbx config generate` puts them).
RELOAD_MODULES = ("res_pjsip.so", "pbx_config.so", "res_ari.so", "manager", "res_musiconhold.so",
                  "res_rtp_asterisk.so")
AMI_TIMEOUT = 5.0

# panoramisk logs its reconnect attempts; our failures are reported by the exceptions below
_ami_log = logging.getLogger("vpbx.asterisk.deploy.ami")
_ami_log.addHandler(logging.NullHandler())
_ami_log.propagate = False


def asterisk_has_opus(config_dir: Path) -> bool:
    """Asterisk can transcode opus: a codec_opus module is in its module dir (asterisk.conf `astmoddir`) and
    modules.conf does not `noload` it. Asterisk knows the opus format without the module (it is a core codec), so an
    `allow = opus` it cannot transcode would be negotiated and then no prompt could play: without the module vpbx
    leaves opus out. A config dir `<root>/etc/asterisk` is read as a chroot at <root> (the sandbox); any other as /."""
    config_dir = Path(config_dir)
    moddir = "/usr/lib/asterisk/modules"
    try:
        conf = (config_dir / "asterisk.conf").read_text(errors="replace")
    except OSError:
        conf = ""
    for line in conf.splitlines():
        key, sep, value = line.split(";", 1)[0].partition("=")
        if sep and key.strip() == "astmoddir":
            moddir = value.lstrip(">").strip()
    root = asterisk_root(config_dir)
    found = sorted((root / moddir.lstrip("/")).glob("codec_opus*.so"))
    if not found:
        return False
    try:
        modules = (config_dir / "modules.conf").read_text(errors="replace")
    except OSError:
        return True
    refused = {line.split(";", 1)[0].partition("=")[2].lstrip(">").strip() for line in modules.splitlines()
               if line.split("=", 1)[0].strip() == "noload"}
    return any(path.name not in refused for path in found)


def asterisk_root(config_dir: Path) -> Path:
    """The root Asterisk sees: a config dir `<root>/etc/asterisk` is read as a chroot at <root> (the sandbox)."""
    config_dir = Path(config_dir)
    return config_dir.parent.parent if config_dir.parts[-2:] == ("etc", "asterisk") else Path("/")


def asterisk_path(config_dir: Path, path: str) -> str:
    """A file of ours as the Asterisk of `config_dir` names it: the same path, or inside a chroot (the sandbox) the
    path below its root. ConfigError when Asterisk cannot see the file (outside the chroot)."""
    root = asterisk_root(config_dir)
    if root == Path("/"):
        return path
    try:
        return "/" + str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        raise ConfigError(f"{shown(path)} is outside {shown(root)}, the root Asterisk runs in (chroot); put the "
                          f"file below it") from None


def render_install(cfg: Config, numbers: Sequence[Number], accounts: Sequence[SipAccount],
                   trunks: Sequence[Trunk], config_dir: Path | None = None) -> dict[str, str]:
    """Every generated file, rendered for this Asterisk: opus only when it has codec_opus, the transports its own
    config already has reused (vpbx.asterisk.system.reused_transports), TLS files checked and named as it sees them."""
    from vpbx.asterisk import system

    target = Path(config_dir) if config_dir is not None else Path(cfg.asterisk_config_dir)
    check_tls_files(cfg)
    tls_files = (asterisk_path(target, cfg.sip.tls_cert), asterisk_path(target, cfg.sip.tls_key)) \
        if cfg.sip.tls_cert and cfg.sip.tls_key else None
    return render_all(cfg, numbers, accounts, trunks, opus=asterisk_has_opus(target),
                      reuse=set(system.reused_transports(cfg, target)), tls_files=tls_files)


RESTART_HINT = "systemctl restart asterisk, or scripts/asterisk-sandbox restart"


def generate(cfg: Config, numbers: Sequence[Number], accounts: Sequence[SipAccount], trunks: Sequence[Trunk],
             out_dir: Path | None = None) -> list[Path]:
    """Render every vpbx-owned file into out_dir (default: cfg.asterisk_config_dir). Files holding secrets get mode
    0640, the dialplan 0644. Everything is rendered before anything is written: a ValidationError writes nothing."""
    files = render_install(cfg, numbers, accounts, trunks)
    target = Path(out_dir) if out_dir is not None else Path(cfg.asterisk_config_dir)
    live = target.resolve() == Path(cfg.asterisk_config_dir).resolve()
    try:
        old_pjsip: str | None = (target / "pjsip_vpbx.conf").read_text(errors="replace") if live else None
    except OSError:
        old_pjsip = None
    paths = write_set(target, {name: (text, 0o640 if name in SECRET_FILES else 0o644) for name, text in files.items()})
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    changed = transport_changes(old_pjsip, files["pjsip_vpbx.conf"])
    if changed:
        # Asterisk keeps a transport that exists as it is on reload (re-binding would cut the calls on it)
        log.warning("SIP transports changed (%s): restart Asterisk to apply them (%s); a reload keeps the old ones",
                    ", ".join(changed), RESTART_HINT)
    return paths


def write_set(target: Path, files: dict[str, tuple[str, int]]) -> list[Path]:
    """Write a set of files that belong together (NAME -> (text, mode)) into `target` so that it is replaced as a set:
    first every file is written whole and fsynced under a temp name beside its final one (any failure - a full disk,
    a directory in the way, no permission - removes the temps and raises ConfigError: the old set stays, untouched);
    only then is each temp renamed over its file, which cannot fail for those reasons (same directory, checked
    target). Asterisk reads these files only when vpbx reloads it after this returns (or when it starts), so it sees
    the old set or the new one, never a mix. Each file keeps the owner of the file it replaces (else the directory's):
    Asterisk, running as its own user, must read it."""
    staged: list[tuple[Path, Path]] = []
    try:
        for name, (text, mode) in files.items():
            path = target / name
            staged.append((stage_file(path, text, mode=mode, owner=owner_for(path, target)), path))
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        where = shown(exc.filename) if exc.filename else shown(target)
        fix = "remove or rename that directory" if isinstance(exc, IsADirectoryError) else \
            "check the directory's owner, mode and free space, or give another --out"
        raise ConfigError(f"cannot write the Asterisk config {where} ({exc.strerror or exc}); {fix} - nothing was "
                          f"changed in {shown(target)}") from None
    for tmp, path in staged:
        os.replace(tmp, path)
    return [path for _, path in staged]


def install_records(store: Store) -> tuple[list[Number], list[SipAccount], list[Trunk]]:
    """What the generated files are rendered from: every number, SIP account and trunk of the install."""
    return store.numbers.search(), store.sip_accounts.all(), store.trunks.all()


def generate_install(cfg: Config, store: Store, out_dir: Path | None = None) -> list[Path]:
    """`vpbx config generate`: render the install's records; into Asterisk's config dir (then the built-in prompts
    are installed into its sounds dir too) or into `out_dir`."""
    paths = generate(cfg, *install_records(store), out_dir=out_dir)
    if out_dir is None:
        paths += prompts.install_builtins(cfg.asterisk_sounds_dir)
        paths += prompts.install_moh(cfg.asterisk_sounds_dir)
    return paths


def check_install(cfg: Config, store: Store) -> str:
    """`vpbx config check`: the diff between Asterisk's config dir and what the install's records render."""
    return check(cfg, *install_records(store))


def reload_install(cfg: Config, store: Store) -> None:
    """`vpbx reload`: generate everything, then reload Asterisk over AMI (live calls stay up)."""
    generate_install(cfg, store)
    reload(cfg)


def check(cfg: Config, numbers: Sequence[Number], accounts: Sequence[SipAccount], trunks: Sequence[Trunk]) -> str:
    """Unified diff between the files in cfg.asterisk_config_dir and what the records render; '' when equal.
    Lines holding secrets are shown as changed without their values."""
    files = render_install(cfg, numbers, accounts, trunks)
    chunks: list[str] = []
    for name, text in files.items():
        path = Path(cfg.asterisk_config_dir) / name
        try:
            current = path.read_text()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        old = [] if current is None else _mask(current).splitlines(keepends=True)
        new = _mask(text).splitlines(keepends=True)
        diff = "".join(difflib.unified_diff(old, new,
                                            fromfile=f"{path} (on disk)" if current is not None else "/dev/null",
                                            tofile=f"{path} (from the database)"))
        if not diff:   # only a secret changed
            diff = f"--- {path} (on disk)\n+++ {path} (from the database)\n@@ a secret differs @@\n"
        chunks.append(diff if diff.endswith("\n") else diff + "\n")
    return "".join(chunks)


_SECRET_KEYS = ("password", "secret", "password_digest")


def _mask(text: str) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        key, sep, _ = line.partition("=")
        if sep and key.strip() in _SECRET_KEYS:
            out.append(f"{key.rstrip()} = ***\n")
        else:
            out.append(line)
    return "".join(out)


# ---- AMI reload ----------------------------------------------------------------------------------------------------
def _unreachable(cfg: Config, why: str) -> AsteriskError:
    return AsteriskError(f"Asterisk AMI at {cfg.ami.host}:{cfg.ami.port} is unreachable ({why}); "
                         f"start Asterisk (scripts/asterisk-sandbox start) - the database change is saved")


async def areload(cfg: Config, modules: Sequence[str] = RELOAD_MODULES, timeout: float = AMI_TIMEOUT) -> None:
    """Log in to AMI and reload `modules` one by one. Raises AsteriskError naming host:port and the fix."""
    from panoramisk import Manager

    loop = asyncio.get_running_loop()
    manager = Manager(loop=loop, host=cfg.ami.host, port=int(cfg.ami.port), username=cfg.ami.user,
                      secret=cfg.ami.secret, events="off", ping_delay=3600, ping_interval=3600,
                      reconnect_timeout=3600, log=_ami_log)
    try:
        # panoramisk reconnects forever from its done-callbacks; take them off and drive the two steps ourselves
        connecting = manager.connect()
        connecting.remove_done_callback(manager.connection_made)
        done, _ = await asyncio.wait({connecting}, timeout=timeout)
        if not done:
            connecting.cancel()
            raise _unreachable(cfg, f"no answer within {timeout:g} s")
        exc = connecting.exception()
        if exc is not None:
            raise _unreachable(cfg, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        manager.connection_made(connecting)      # sends Login
        login = manager.authenticated_future
        if login is None:
            raise _unreachable(cfg, "no AMI session")
        login.remove_done_callback(manager.login)
        done, _ = await asyncio.wait({login}, timeout=timeout)
        if not done:
            login.cancel()
            raise _unreachable(cfg, f"no login answer within {timeout:g} s")
        resp: Any = login.result()
        if not resp.success:
            raise AsteriskError(f"Asterisk AMI at {cfg.ami.host}:{cfg.ami.port} refused login as {cfg.ami.user!r} "
                                f"({resp.get('Message', 'authentication failed')}); Asterisk has not read the current "
                                f"manager_vpbx.conf: run `scripts/asterisk-sandbox cli 'manager reload'` (or restart "
                                f"Asterisk) - the database change is saved")
        for module in modules:
            try:
                answer: Any = await asyncio.wait_for(manager.send_action({"Action": "Reload", "Module": module}),
                                                     timeout)
            except TimeoutError:
                raise AsteriskError(f"Asterisk AMI at {cfg.ami.host}:{cfg.ami.port}: reload of {module} got no answer "
                                    f"within {timeout:g} s; check `scripts/asterisk-sandbox cli 'core show uptime'`"
                                    ) from None
            if isinstance(answer, list):
                answer = answer[0] if answer else None
            if answer is None or not answer.success:
                msg = answer.get("Message", "no answer") if answer is not None else "no answer"
                raise AsteriskError(f"Asterisk refused to reload {module} ({msg}); see its log "
                                    f"(/var/cache/vpbx/asterisk.log) for the config error")
            log.info("reloaded %s", module)
    except ConnectionError as exc:
        raise _unreachable(cfg, f"connection lost: {exc}") from None
    finally:
        manager.close()


def reload(cfg: Config, modules: Sequence[str] = RELOAD_MODULES, timeout: float = AMI_TIMEOUT) -> None:
    """Reload what vpbx generated (accounts, trunks, dialplan, ARI/AMI users) without dropping live calls."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(areload(cfg, modules, timeout))
        return
    # called from inside an event loop (e.g. the engine): run on a private loop in a thread
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            asyncio.run(areload(cfg, modules, timeout))
        except BaseException as exc:  # re-raised in the caller's thread
            box["exc"] = exc

    t = threading.Thread(target=run, name="vpbx-ami-reload")
    t.start()
    t.join()
    if "exc" in box:
        raise box["exc"]
