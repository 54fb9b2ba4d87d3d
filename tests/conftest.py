"""Shared fixtures. `asterisk`: the real Asterisk 22 sandbox (scripts/asterisk-sandbox) with a vpbx config of its own.

    @pytest.mark.asterisk
    def test_x(asterisk, tmp_path):
        asterisk.vpbx("sip", "add", "alice", "--password", "secretpass1")   # the real CLI, this session's config
        asterisk.reload()                                                    # generate + AMI reload
        assert "alice" in asterisk.cli("pjsip show endpoints")

The fixture is session-scoped: one temporary vpbx dir (vpbx.toml + vpbx.db, fresh ARI/AMI secrets) whose generated
files go into the sandbox's ROOT/etc/asterisk. A running sandbox is reused (after `core reload` so this session's
secrets apply), otherwise it is started; it is left running afterwards (`scripts/asterisk-sandbox stop`).
If Asterisk cannot be started the test is skipped with the reason - or fails when CI=true (CI never skips).
The sandbox is one Asterisk per machine: two test sessions running at the same time overwrite each other's
generated config.

`vpbx serve` on the sandbox, for every module that needs it (request the fixtures by name):

    def test_y(asterisk, sipp, engine):      # engine: an Engine not started yet; `carrier`, `prompts` come with it
        engine.start()

`carrier` (module): a trunk at loopback that takes calls from 127.0.0.1 matching no account; `prompts` (module): the
user prompts welcome / menu / short; `engine` (each test): `vpbx serve` as a subprocess (Engine), stopped afterwards
with whatever calls it left hung up.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SANDBOX = REPO / "scripts" / "asterisk-sandbox"
ROOT = Path(os.environ.get("VPBX_ASTERISK_ROOT", "/var/cache/vpbx/rootfs"))
sys.path.insert(0, str(Path(__file__).resolve().parent))   # `from sipp import Sipp`
# A test that gives no --config / VPBX_CONFIG must not pick up the machine's /etc/vpbx/vpbx.toml (vpbx.config looks
# there first); subprocesses inherit this. tests/test_config_path.py checks the real search order explicitly.
NO_SYSTEM_CONFIG = "/nonexistent/vpbx-tests/etc/vpbx.toml"
os.environ["VPBX_SYSTEM_CONFIG"] = NO_SYSTEM_CONFIG


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_outside_ci(condition: bool, reason: str) -> pytest.MarkDecorator:
    """skipif for a test that needs something of the machine (root, a tool): skipped on a developer's machine that
    lacks it, never in CI (CI=true), where the test runs and fails on what is missing."""
    return pytest.mark.skipif(condition and not in_ci(), reason=f"{reason} (CI=true runs it regardless)")


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"real Asterisk is required in CI: {reason}", pytrace=False)
    pytest.skip(f"real Asterisk unavailable: {reason}")


def sandbox(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VPBX_ASTERISK_ROOT=str(ROOT))
    proc = subprocess.run([str(SANDBOX), *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"scripts/asterisk-sandbox {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class AsteriskSandbox:
    cfg: Any                 # vpbx.config.Config of this test session
    config_path: Path        # its vpbx.toml
    root: Path               # the chroot
    dir: Path                # the session's vpbx dir (vpbx.toml, vpbx.db)

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "asterisk"

    def cli(self, command: str, timeout: float = 30) -> str:
        """`asterisk -rx COMMAND` inside the sandbox; its output."""
        return sandbox("cli", command, timeout=timeout).stdout

    def records(self) -> tuple[list[Any], list[Any], list[Any]]:
        from vpbx.storage.store import Store

        store = Store.open(self.cfg.db)
        try:
            return store.numbers.search(), store.sip_accounts.all(), store.trunks.all()
        finally:
            store.close()

    def generate(self) -> list[Path]:
        from vpbx.asterisk import deploy

        return deploy.generate(self.cfg, *self.records())

    def reload(self) -> None:
        """Render the DB's records into the sandbox and reload Asterisk over AMI (what `vpbx reload` does)."""
        from vpbx.asterisk import deploy

        self.generate()
        deploy.reload(self.cfg)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the shared sandbox while a test runs an Asterisk of its own on the machine's SIP/AMI/ARI ports (another
        root, or the stock config); start it again afterwards - also when the test fails - with this session's
        generated files, and prove this session's AMI user works again."""
        sandbox("stop")
        try:
            yield
        finally:
            sandbox("start")
            self.reload()

    def vpbx(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the real CLI (`python -m vpbx.cli --config THIS ...`) as a subprocess."""
        proc = subprocess.run([sys.executable, "-m", "vpbx.cli", "--config", str(self.config_path), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
        if check and proc.returncode != 0:
            raise AssertionError(f"vpbx {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskSandbox]:
    if os.geteuid() != 0:
        _unavailable("the sandbox needs root (chroot, mount)")
    if not (ROOT / "usr" / "sbin" / "asterisk").exists():
        _unavailable(f"no Asterisk in {ROOT}; run scripts/asterisk-sandbox build")
    from vpbx.config import new_config, write_config
    from vpbx.domain.security import check_policy
    from vpbx.storage.store import Store

    base = tmp_path_factory.mktemp("vpbx-asterisk")
    cfg = new_config(base, asterisk_config_dir=ROOT / "etc" / "asterisk",
                     asterisk_sounds_dir=ROOT / "usr" / "share" / "asterisk" / "sounds")
    config_path = base / "vpbx.toml"
    # the whole suite sends REGISTERs and INVITEs from 127.0.0.1, some with wrong passwords on purpose: the session's
    # engines must never ban it (the product trusts no address by default; tests/test_security.py bans others)
    cfg = replace(cfg, path=config_path, security=check_policy(trusted=["127.0.0.1/32"]))
    write_config(cfg, config_path)
    Store.open(cfg.db).close()
    box = AsteriskSandbox(cfg=cfg, config_path=config_path, root=ROOT, dir=base)
    try:
        running = sandbox("status", check=False).returncode == 0
        box.generate()        # before start: Asterisk reads the AMI/ARI users at boot
        if running:
            box.cli("core reload")
        else:
            sandbox("start")
        box.reload()          # proves the AMI user of this session works
    except Exception as exc:
        _unavailable(str(exc))
    yield box


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Any]:
    """A tests/sipp.py Sipp factory working in tmp_path; kills what it started."""
    from sipp import Sipp

    s = Sipp(tmp_path / "sipp")
    yield s
    s.cleanup()


# ---- `vpbx serve` on the sandbox ----------------------------------------------------------------------------------
def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child that still runs; kill it when it has not exited 10 s later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Engine:
    """`vpbx --config CFG serve` as a subprocess; its stderr (JSON lines) goes to a file we can read."""

    def __init__(self, asterisk: Any, log_path: Path) -> None:
        self.asterisk = asterisk
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> Engine:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as fh:     # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vpbx.cli", "--config", str(self.asterisk.config_path), "serve",
                 "--log-level", "debug", "--log-format", "json"],
                stdout=fh, stderr=fh, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
        self.wait_log(lambda e: "ARI connected" in e.get("message", ""), timeout=20, since=self._offset)
        self.wait_log(lambda e: e.get("message", "").startswith("reconcile done"), timeout=20, since=self._offset)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        out = []
        with open(self.log_path, "rb") as fh:
            fh.seek(since)
            for line in fh.read().decode(errors="replace").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"raw": line})
        return out

    def wait_log(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20, since: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.entries(since):
                if pred(e):
                    return e
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        tail = "\n".join(json.dumps(e) for e in self.entries(since)[-40:])
        raise AssertionError(f"engine log never showed the expected entry; tail:\n{tail}")

    def playbacks(self, call_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e.get("ari_event") in ("PlaybackFinished", "PlaybackFailed")
                and (call_id is None or e.get("call_id") == call_id)]


def channels_left(asterisk: Any) -> list[str]:
    return [line for line in asterisk.cli("core show channels concise").splitlines() if "!" in line]


@pytest.fixture(scope="module")
def carrier(asterisk):
    """A trunk whose address is loopback: calls from 127.0.0.1 that match no account come in through it."""
    name = f"carrier{os.getpid()}"
    asterisk.vpbx("trunk", "add", name, "--server", "127.0.0.1", "--port", "5999", "--login", "in" + name,
                  "--password", "carrier-secret-1", "--no-register")
    yield name
    asterisk.vpbx("trunk", "remove", name, check=False)


@pytest.fixture(scope="module")
def prompts(asterisk):
    """User prompts uploaded with the real `vpbx prompt add` (core sounds as source audio)."""
    sounds = asterisk.root / "usr/share/asterisk/sounds/en_US_f_Allison"
    for name, src in (("welcome", "hello-world.wav"), ("menu", "please-try-again.wav"), ("short", "beep.wav")):
        asterisk.vpbx("prompt", "add", name, str(sounds / src))
    return ("welcome", "menu", "short")


@pytest.fixture
def engine(asterisk, carrier, prompts, tmp_path):
    eng = Engine(asterisk, tmp_path / "engine.log")
    yield eng
    eng.stop()
    # a stopped engine leaves live calls for the next one to adopt (by design); a test that failed half-way must not
    # hand its calls to the next test, so hang up whatever is still up
    if channels_left(asterisk):
        asterisk.cli("channel request hangup all")
        time.sleep(0.5)
