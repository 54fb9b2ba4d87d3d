"""Getting the rendered config into Asterisk: write it (atomically), diff it, reload it over AMI.

Rule: this is the I/O edge of vpbx.asterisk.render - rendering stays pure; here files are written with
vpbx.config.atomic_write (readers see the old file or the new one, never half) and Asterisk is told to re-read them.
A reload never drops live calls: only res_pjsip (accounts/trunks), pbx_config (dialplan), res_ari (ARI users) and
manager (AMI users) are reloaded, each with AMI `Action: Reload` - never `core restart`.
"""
from __future__ import annotations

import asyncio
import difflib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vpbx.asterisk.render import SECRET_FILES, render_all
from vpbx.config import Config, atomic_write, owner_for
from vpbx.domain.errors import AsteriskError
from vpbx.domain.records import Number, SipAccount, Trunk
from vpbx.services import prompts
from vpbx.storage.store import Store

log = logging.getLogger(__name__)

# What `vpbx reload` reloads, in order (AMI Reload `Module:` values).
RELOAD_MODULES = ("res_pjsip.so", "pbx_config.so", "res_ari.so", "manager")
AMI_TIMEOUT = 5.0

# panoramisk logs its reconnect attempts; our failures are reported by the exceptions below
_ami_log = logging.getLogger("vpbx.asterisk.deploy.ami")
_ami_log.addHandler(logging.NullHandler())
_ami_log.propagate = False


def generate(cfg: Config, numbers: Sequence[Number], accounts: Sequence[SipAccount], trunks: Sequence[Trunk],
             out_dir: Path | None = None) -> list[Path]:
    """Render every vpbx-owned file into out_dir (default: cfg.asterisk_config_dir). Files holding secrets get mode
    0640, the dialplan 0644. Everything is rendered before anything is written: a ValidationError writes nothing."""
    files = render_all(cfg, numbers, accounts, trunks)
    target = Path(out_dir) if out_dir is not None else Path(cfg.asterisk_config_dir)
    paths = []
    for name, text in files.items():
        path = target / name
        # the owner of the file it replaces (else the config dir's): Asterisk running as its own user must read it
        atomic_write(path, text, mode=0o640 if name in SECRET_FILES else 0o644, owner=owner_for(path, target))
        paths.append(path)
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths


def install_records(store: Store) -> tuple[list[Number], list[SipAccount], list[Trunk]]:
    """What the generated files are rendered from: every number, SIP account and trunk of the install."""
    return store.numbers.search(), store.sip_accounts.all(), store.trunks.all()


def generate_install(cfg: Config, store: Store, out_dir: Path | None = None) -> list[Path]:
    """`vpbx config generate`: render the install's records; into Asterisk's config dir (then the built-in prompts
    are installed into its sounds dir too) or into `out_dir`."""
    paths = generate(cfg, *install_records(store), out_dir=out_dir)
    if out_dir is None:
        paths += prompts.install_builtins(cfg.asterisk_sounds_dir)
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
    files = render_all(cfg, numbers, accounts, trunks)
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
