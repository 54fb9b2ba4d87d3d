"""Brute-force protection at the Asterisk edge: the watcher that turns Asterisk's security events into bans, and the
pjsip ACL that enforces them.

Rule: decisions are vpbx.domain.security's (a Tracker); this module carries events in and bans out:

    events   one AMI connection of its own (the vpbx AMI user reads `security`), so a slow or dead AMI never delays a
             call: ChallengeResponseFailed / InvalidPassword / InvalidAccountID of Service PJSIP, and ChallengeSent
             for a login that is no SIP account (each attempt on an unknown login is two challenged requests) ->
             Failure(address, login) -> Tracker.record. Events of trusted or banned addresses are ignored by the
             Tracker.
    state    bans are stored (store.bans) on a thread of their own (one connection, jobs in order), never on the
             loop. The database is the truth: the ACL file is always rendered from the bans in force there, so
             the watcher and `vpbx security unban` (another process) write the same thing.
    enforce  vpbx-bans/pjsip_bans_vpbx.conf (one `type = acl`, vpbx.asterisk.render.security) written atomically
             into vpbx's own directory in Asterisk's config dir (the only place there the engine's unit may write,
             vpbx.services.systemd), then AMI `Reload res_pjsip.so` (live calls stay up: a pjsip reload never
             touches channels).
             Bans decided while a reload runs are applied together by the next; an unchanged set is not applied again.
    time     every TICK_S the watcher closes the bans whose time is up and notices bans lifted by `vpbx security
             unban` (it forgets their failures); after a restart it takes the stored bans back, so bans survive
             `vpbx serve` restarts, and re-applies the file whenever its AMI login is (re)made.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from vpbx.asterisk.render.security import BANS_DIR, BANS_NAME, render_bans
from vpbx.config import Config, atomic_write, owner_for, shown
from vpbx.domain.errors import AsteriskError, ConfigError
from vpbx.domain.security import Ban, Failure, Tracker, remote_address
from vpbx.domain.timestamps import to_iso, utc_now
from vpbx.storage.store import Store

log = logging.getLogger(__name__)

# the AMI security events that mean "this address failed to authenticate as this login"
FAILURE_EVENTS = ("ChallengeResponseFailed", "InvalidPassword", "InvalidAccountID")
# ...and a challenge for a login that is no SIP account: Asterisk answers every request for an unknown user with a
# challenge (so scanners cannot tell users apart) and reports no failure when the answer to it is wrong; a phone of a
# real account gets challenged too, so only challenges for logins the database does not know count
CHALLENGE_EVENT = "ChallengeSent"
UNKNOWN_ACCOUNT = "<unknown>"      # the AccountID of a request Asterisk could not name a user for
RELOAD_MODULE = "res_pjsip.so"
APPLY_DELAY_S = 0.02           # gathers the bans of one burst into one reload; a reload in progress batches more
TICK_S = 1.0
AMI_TIMEOUT_S = 10.0
RETRY_MIN_S = 2.0
RETRY_MAX_S = 60.0

T = TypeVar("T")

_ami_log = logging.getLogger("vpbx.asterisk.security.ami")
_ami_log.addHandler(logging.NullHandler())
_ami_log.propagate = False


def bans_dir(cfg: Config) -> Path:
    """vpbx's directory in Asterisk's config dir: the bans file's, and the only one there the engine writes."""
    return Path(cfg.asterisk_config_dir) / BANS_DIR


def bans_path(cfg: Config) -> Path:
    return bans_dir(cfg) / BANS_NAME


def write_bans(cfg: Config, bans: list[Ban]) -> Path:
    """Write the ACL of `bans` into vpbx's bans directory (atomically; a file replaced keeps its owner, a new one gets
    the directory's). The directory is made when missing (a checkout, the sandbox); under the unit `vpbx service
    install` made it. ConfigError naming the file and the fix when it cannot be written."""
    path = bans_path(cfg)
    try:
        atomic_write(path, render_bans(bans), mode=0o644, owner=owner_for(path, path.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write the brute-force bans {shown(path)} ({exc.strerror or exc}); run `vpbx "
                          f"service install` as root (it gives {shown(path.parent)} to the service user), or run "
                          f"this as root") from None
    return path


def apply(cfg: Config, store: Store, now: datetime | None = None) -> list[Ban]:
    """Make the stored bans what Asterisk enforces: write the ACL file from them and reload res_pjsip over AMI
    (`vpbx security unban`). AsteriskError when AMI is unreachable (the database change is kept)."""
    from vpbx.asterisk import deploy

    bans = store.bans.active(now or utc_now())
    write_bans(cfg, bans)
    deploy.reload(cfg, modules=(RELOAD_MODULE,))
    return bans


class _NotLoggedIn(Exception):
    """AMI is not logged in (yet): the bans are applied once it is."""


class _Db:
    """One thread, one Store: jobs run in submission order (a ban is written before a later read sees the table)."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open_store = open_store
        self._local = threading.local()
        self._stores: list[Store] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vpbx-security-db")

    def _store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self._open_store()
            self._stores.append(store)
        return store

    def submit(self, fn: Callable[[Store], T]) -> Future[T]:
        return self._pool.submit(lambda: fn(self._store()))

    async def run(self, fn: Callable[[Store], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    def close(self) -> None:
        def close_all() -> None:
            for store in self._stores:
                store.close()

        with contextlib.suppress(RuntimeError):
            self._pool.submit(close_all)
        self._pool.shutdown(wait=True)


class Watcher:
    """`vpbx serve`'s brute-force watcher: `await Watcher(cfg).run()` until cancelled."""

    def __init__(self, cfg: Config, open_store: Callable[[], Store] | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.cfg = cfg
        self.clock = clock
        self.tracker = Tracker(cfg.security)
        self._db = _Db(open_store or (lambda: Store.open(cfg.db)))
        self._dirty = asyncio.Event()
        self._applied: frozenset[str] | None = None      # the addresses Asterisk enforces (None: not known)
        self._manager: Any = None
        self._known: frozenset[str] | None = None        # the SIP account logins (None: not read yet)
        self.failures_seen = 0

    # -- events in --
    def on_event(self, _manager: Any, event: Any) -> None:
        """An AMI security event (panoramisk Message, or any mapping with the AMI fields)."""
        if str(event.get("Service", "")).upper() != "PJSIP":
            return
        login = str(event.get("AccountID", ""))[:64]
        log.debug("security event %s: %r from %s", event.get("Event"), login, event.get("RemoteAddress"))
        login = "" if login == UNKNOWN_ACCOUNT else login
        if event.get("Event") == CHALLENGE_EVENT and (self._known is None or login in self._known):
            return
        addr = remote_address(str(event.get("RemoteAddress", "")))
        if addr is None:
            log.warning("security event %s without a usable RemoteAddress: %r", event.get("Event"),
                        event.get("RemoteAddress"))
            return
        self.failure(Failure(address=addr, login=login, at=self.clock()))

    def failure(self, failure: Failure) -> Ban | None:
        self.failures_seen += 1
        ban = self.tracker.record(failure)
        if ban is None:
            return None
        log.warning("banned %s until %s: %d failed login(s) (%s) for %s", ban.address, to_iso(ban.until),
                    ban.failures, ban.reason, ", ".join(ban.logins) or "-")
        # queued now, in order: any read submitted after this sees the ban
        self._db.submit(lambda s: s.bans.add(ban)).add_done_callback(_log_failed_write)
        self._dirty.set()
        return ban

    # -- the loop --
    async def run(self) -> None:
        from panoramisk import Manager

        loop = asyncio.get_running_loop()
        now = self.clock()
        active = await self._db.run(lambda s: (s.bans.expire(now), s.bans.active(now))[1])
        self.tracker.restore(active, now)
        self._known = await self._db.run(_logins)
        if active:
            log.info("security: %d ban(s) in force from the database", len(active))
        ami = self.cfg.ami
        self._manager = Manager(loop=loop, host=ami.host, port=int(ami.port), username=ami.user, secret=ami.secret,
                                events="on", ping_delay=10, ping_interval=10, reconnect_timeout=2, log=_ami_log,
                                on_login=self._on_login)
        for name in (*FAILURE_EVENTS, CHALLENGE_EVENT):
            self._manager.register_event(name, self.on_event)
        self._manager.connect()
        self._dirty.set()
        try:
            await asyncio.gather(self._applier(), self._ticker())
        finally:
            self._manager.close()
            await asyncio.to_thread(self._db.close)

    def _on_login(self, _manager: Any) -> None:
        log.info("security watcher: AMI logged in at %s:%s", self.cfg.ami.host, self.cfg.ami.port)
        self._applied = None          # Asterisk may have restarted: apply the file again
        self._dirty.set()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self.tick()
            except Exception:
                log.exception("security watcher: tick failed")

    async def tick(self) -> None:
        """Close expired bans; forget the failures of bans lifted elsewhere (`vpbx security unban`)."""
        now = self.clock()
        known = {b.address for b in self.tracker.bans()}     # before the read: later bans are not in it yet
        stored = await self._db.run(lambda s: (s.bans.expire(now), s.bans.active(now))[1])
        self._known = await self._db.run(_logins)
        self.tracker.expire(now)
        in_db = {b.address for b in stored}
        for addr in sorted(known - in_db):
            if self.tracker.lift(addr) is not None:
                log.info("security: ban of %s ended", addr)
        self.tracker.restore([b for b in stored if not self.tracker.banned(b.address, now)], now)
        if frozenset(in_db) != self._applied:
            self._dirty.set()

    async def _applier(self) -> None:
        delay, last_error = RETRY_MIN_S, ""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(APPLY_DELAY_S)
            self._dirty.clear()
            try:
                await self.apply_now()
            except _NotLoggedIn:
                continue                   # the AMI login (made again by panoramisk) sets _dirty
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                # said once per distinct problem (e.g. the config dir is not writable), then retried quietly
                (log.debug if error == last_error else log.warning)(
                    "security watcher: bans not applied to Asterisk (%s); retrying in %g s", error, delay)
                last_error = error
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                self._dirty.set()
            else:
                delay, last_error = RETRY_MIN_S, ""

    async def apply_now(self) -> None:
        now = self.clock()
        bans = await self._db.run(lambda s: s.bans.active(now))
        addrs = frozenset(b.address for b in bans)
        if addrs == self._applied:
            return
        manager = self._manager
        if manager is None or not manager.authenticated:
            raise _NotLoggedIn
        await asyncio.to_thread(write_bans, self.cfg, bans)
        answer: Any = await asyncio.wait_for(manager.send_action({"Action": "Reload", "Module": RELOAD_MODULE}),
                                             AMI_TIMEOUT_S)
        if isinstance(answer, list):
            answer = answer[0] if answer else None
        if answer is None or not answer.success:
            raise AsteriskError(f"Asterisk refused to reload {RELOAD_MODULE}: "
                                f"{answer.get('Message') if answer is not None else 'no answer'}")
        self._applied = addrs
        log.info("security: %d address(es) banned in Asterisk", len(addrs))


def _logins(store: Store) -> frozenset[str]:
    return frozenset(a.login for a in store.sip_accounts.all())


def _log_failed_write(fut: Future[Any]) -> None:
    exc = fut.exception()
    if exc is not None:
        log.error("security watcher: storing a ban failed: %s", exc)


async def watch(cfg: Config, restart_delay_s: float = 5.0) -> None:
    """Run the watcher until cancelled; a crash is logged and the watcher started again (calls are never affected)."""
    while True:
        try:
            await Watcher(cfg).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("security watcher stopped; starting it again in %g s", restart_delay_s)
        await asyncio.sleep(restart_delay_s)
