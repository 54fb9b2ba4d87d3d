#!/usr/bin/env python3
"""The call benchmark: vpbx's engine (`vpbx serve`) against Asterisk's own dialplan, on one sandbox Asterisk.

    bench/calls.sh [--quick] [--rounds 3] [--latency-calls 200] [--latency-rate 10] [--parked 500]
                   [--start-rate 5] [--step-seconds 10] [--max-setup-ms 1000] [--json FILE] [--keep] [--profile FILE]

A script, not a test: it prints figures and exits 0 whether or not they meet the targets (1 if it could not measure).
Needs root (the sandbox), sipp and a built sandbox (scripts/asterisk-sandbox build); starts the sandbox if it is not
running, else installs asterisk-conf/ into it and reloads.

Setup (all through the real CLI, in a throw-away vpbx dir with fresh ARI/AMI secrets; the sandbox's generated
*_vpbx.conf files are replaced by this run's): the prompt `vpbx-bench` (Asterisk's 0.43 s beep.wav, uploaded with
`vpbx prompt add`), a trunk identified by 127.0.0.2 (the carrier), +380445000101 routed `hangup --greeting
vpbx-bench` and +380445000102 routed to the IVR `benchmenu` (prompt vpbx-bench, 60 s to press a key), 1000 channels
each. The native side is asterisk-conf's [vpbx-bench] context (language, Answer, Playback(vpbx/vpbx-bench), Hangup),
reached only by requests from 127.0.0.3. `vpbx serve` runs as a child of this script (INFO log to a file).

sipp plays the carrier's caller (UDP, one socket, no RTP sent; Asterisk streams the prompt to it). Phases:
  1. call setup: --rounds rounds of --latency-calls greeting calls at --latency-rate cps per side, sides alternating;
     each call waits for the PBX's BYE (tests/sipp/uac_remote_bye.xml). INVITE -> 200 OK per call from sipp's
     -trace_shortmsg timestamps (microseconds, taken as sipp sends / reads each message). Then the same calls once
     answered by a minimal ARI app instead of the engine (the ARI floor: what any ARI application pays).
  2. parked: --parked calls into the IVR at 50 cps, each held 40 s (tests/sipp/uac_call.xml -d); once all are
     answered: the Stasis app's channels (ARI), Asterisk's channels, the open call records and the calls the engine
     played the menu to are counted; the engine's VmRSS (/proc/PID/status) is sampled every 0.2 s throughout.
  3. max sustained rate: --step-seconds of greeting calls at 5, 10, 20, 40 ... cps per side until a step has a
     failed call, then two bisection steps. A call fails when sipp says so or its 200 OK came after --max-setup-ms;
     a step counts only if sipp placed the calls at >= 90 % of the rate.
"""
from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("VPBX_ASTERISK_ROOT", "/var/cache/vpbx/rootfs"))
SANDBOX = REPO / "scripts" / "asterisk-sandbox"
SCENARIOS = REPO / "tests" / "sipp"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
sys.path.insert(0, str(REPO / "tests"))
from sipp import free_udp_port  # noqa: E402  (tests/sipp.py: the sipp helpers the tests use)

ASTERISK = "127.0.0.1:5060"
SOURCE = {"vpbx": "127.0.0.2", "native": "127.0.0.3"}     # the bench trunk / the vpbx-bench endpoint
GREETING_NUMBER = "+380445000101"
IVR_NUMBER = "+380445000102"
CALLER = "+380671112233"
PROMPT = "vpbx-bench"
PARK_RATE = 50
PARK_HOLD_MS = 40000          # < the endpoints' rtp_timeout (60 s): sipp sends no RTP


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- the PBX under test ----------------------------------------------------------------------------------------
def sandbox(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(SANDBOX), *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, VPBX_ASTERISK_ROOT=str(ROOT)))
    if check and proc.returncode != 0:
        raise SystemExit(f"scripts/asterisk-sandbox {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


class Pbx:
    """A throw-away vpbx install on the sandbox Asterisk, configured with the real CLI."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.config = workdir / "vpbx.toml"
        self.engine: subprocess.Popen[bytes] | None = None
        self.engine_log = workdir / "engine.log"
        self.client_options: dict[str, Any] = {}     # AriClient keyword arguments for the engine (--ari-rest ...)

    def vpbx(self, *args: str, config: bool = True) -> str:
        """The real CLI (`python -m vpbx.cli --config THIS ...`); exits with its output when it fails."""
        cmd = [sys.executable, "-m", "vpbx.cli", *(["--config", str(self.config)] if config else []), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
        if proc.returncode != 0:
            raise SystemExit(f"vpbx {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def cli(self, command: str) -> str:
        return sandbox("cli", command, timeout=30).stdout

    def set_up(self) -> None:
        sounds = ROOT / "usr/share/asterisk/sounds"
        self.vpbx("init", "--dir", str(self.dir), "--asterisk-config-dir", str(ROOT / "etc/asterisk"),
                  "--sounds-dir", str(sounds), config=False)
        self.vpbx("config", "generate")                      # this run's AMI/ARI users, before Asterisk reads them
        if sandbox("status", check=False).returncode != 0:
            sandbox("start", timeout=180)
        else:                                                # the repo's asterisk-conf (the vpbx-bench endpoint) too
            sandbox("install-conf", str(REPO / "asterisk-conf"))
            self.cli("core reload")
            time.sleep(1.0)
        self.vpbx("prompt", "add", PROMPT, str(sounds / "en_US_f_Allison" / "beep.wav"))
        self.vpbx("trunk", "add", "bench", "--server", SOURCE["vpbx"], "--port", "5999", "--login", "bench",
                  "--password", "bench-secret-1", "--no-register")
        self.vpbx("number", "add", GREETING_NUMBER, "--channels", "1000")
        self.vpbx("number", "route", GREETING_NUMBER, "hangup", "--greeting", PROMPT)
        self.vpbx("ivr", "add", "benchmenu", "--prompt", PROMPT, "--option", "1=hangup", "--timeout", "60",
                  "--retries", "1")
        self.vpbx("number", "add", IVR_NUMBER, "--channels", "1000")
        self.vpbx("number", "route", IVR_NUMBER, "ivr:benchmenu")
        self.vpbx("reload")
        if "vpbx-bench" not in self.cli("pjsip show endpoint vpbx-bench"):
            raise SystemExit("Asterisk has no vpbx-bench endpoint; restart the sandbox "
                             "(scripts/asterisk-sandbox restart)")

    def asterisk_pid(self) -> int:
        match = re.search(r"pid (\d+)", sandbox("status").stdout)
        if not match:
            raise SystemExit("cannot find the sandbox Asterisk's pid")
        return int(match.group(1))

    def start_engine(self, profile: Path | None = None) -> int:
        offset = self.engine_log.stat().st_size if self.engine_log.exists() else 0
        prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
        main = ["-m", "vpbx.cli"]
        if self.client_options:     # the engine's AriClient with other defaults (e.g. REST by HTTP, no event filter)
            main = ["-c", "import functools, runpy, sys; from vpbx.asterisk.ari.client import AriClient as C; "
                          f"C.__init__ = functools.partialmethod(C.__init__, **{self.client_options!r}); "
                          "sys.argv[0] = 'vpbx'; runpy.run_module('vpbx.cli', run_name='__main__')"]
            if prof:
                raise SystemExit("--profile cannot be combined with --ari-rest / --no-event-filter")
        with open(self.engine_log, "ab") as log:   # the engine keeps its own copy of the descriptor
            self.engine = subprocess.Popen([sys.executable, *prof, *main, "--config", str(self.config),
                                            "serve", "--log-format", "json"], stdout=log, stderr=log, cwd=REPO,
                                           env=dict(os.environ, PYTHONPATH=str(REPO)))
        deadline = time.monotonic() + 30
        while not any(str(e.get("message", "")).startswith("reconcile done") for e in self.engine_entries(offset)):
            if self.engine.poll() is not None or time.monotonic() > deadline:
                tail = self.engine_log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"vpbx serve did not start; log:\n{tail}")
            time.sleep(0.1)
        return self.engine.pid

    def stop_engine(self) -> None:
        if self.engine is not None and self.engine.poll() is None:
            self.engine.terminate()
            try:
                self.engine.wait(15)
            except subprocess.TimeoutExpired:
                self.engine.kill()
                self.engine.wait(5)

    def channels(self) -> int:
        match = re.search(r"(\d+) active channel", self.cli("core show channels count"))
        return int(match.group(1)) if match else -1

    def wait_idle(self, timeout: float = 120) -> None:
        """Until Asterisk has no channel and the engine has closed every call record (an overloaded engine works
        through its backlog first); after `timeout` hang up what is left and restart the engine."""
        deadline = time.monotonic() + timeout
        while self.channels() > 0 or self.open_calls() > 0:
            if time.monotonic() > deadline:
                say("  calls still up after the run; hanging them up and restarting the engine")
                self.cli("channel request hangup all")
                if self.engine is not None:
                    self.stop_engine()
                    self.start_engine()
                time.sleep(2)
                return
            time.sleep(0.5)
        time.sleep(0.5)

    def ari_app_channels(self) -> int:
        import tomllib

        ari = tomllib.loads(self.config.read_text())["ari"]
        req = urllib.request.Request(f"{ari['url'].rstrip('/')}/ari/applications/{ari.get('app', 'vpbx')}")
        token = base64.b64encode(f"{ari['user']}:{ari['password']}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return len(json.load(resp).get("channel_ids") or [])

    def open_calls(self, number: str | None = None) -> int:
        from vpbx.storage.store import Store

        with Store.open(self.dir / "vpbx.db") as store:
            return sum(1 for row in store.calls.unfinished() if number is None or row["number"] == number)

    def records(self, number: str) -> list[dict[str, Any]]:
        from vpbx.storage.store import Store

        with Store.open(self.dir / "vpbx.db") as store:
            return store.calls.recent(number=number, limit=100000)

    def engine_entries(self, offset: int = 0) -> list[dict[str, Any]]:
        out = []
        with open(self.engine_log, "rb") as fh:
            fh.seek(offset)
            for line in fh.read().decode(errors="replace").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


class RssSampler(threading.Thread):
    """VmRSS of the engine process (whichever `vpbx serve` the Pbx runs now) every `interval` seconds, in kB."""

    def __init__(self, pbx: Pbx, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pbx, self.interval = pbx, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()

    def _status(self, field: str) -> int:
        assert self.pbx.engine is not None
        status = Path(f"/proc/{self.pbx.engine.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
        return int(match.group(1)) if match else 0

    def read(self) -> int:
        return self._status("VmRSS")

    def hwm(self) -> int:
        return self._status("VmHWM")

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.read()))
            except (OSError, AssertionError):
                pass
            self._stop.wait(self.interval)

    def peak(self, since: float = 0.0) -> int:
        return max((kb for t, kb in self.samples if t >= since), default=0)

    def stop(self) -> None:
        self._stop.set()


# ---- sipp --------------------------------------------------------------------------------------------------------
@dataclass
class SippRun:
    side: str
    calls: int
    rate: float
    returncode: int = -1
    successful: int = 0
    failed: int = 0
    answered: int = 0
    setup_ms: list[float] = field(default_factory=list)
    finals: dict[str, int] = field(default_factory=dict)      # non-200 final INVITE responses
    placed_rate: float = 0.0                                   # INVITEs per second sipp actually sent

    @property
    def all_ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful == self.calls


class Sipp:
    """One sipp UAC run against Asterisk from the side's source address; parses -trace_shortmsg and -trace_stat."""

    def __init__(self, workdir: Path, name: str, side: str, service: str, scenario: str, calls: int, rate: float,
                 limit: int, hold_ms: int = 0, timeout_s: int = 300) -> None:
        self.side, self.calls, self.rate = side, calls, rate
        ip = SOURCE[side]
        self.short = workdir / f"{name}.short"
        self.stat = workdir / f"{name}.csv"
        self.out = open(workdir / f"{name}.out", "wb")  # noqa: SIM115 - closed by wait() once sipp has exited
        cmd = [SIPP, ASTERISK, "-sf", str(SCENARIOS / scenario), "-s", service, "-i", ip, "-p", str(free_udp_port(ip)),
               "-mi", ip, "-mp", str(free_udp_port(ip, pair=True)), "-t", "u1", "-nostdin", "-aa",
               "-m", str(calls), "-r", str(rate), "-rp", "1000", "-l", str(limit), "-d", str(hold_ms),
               "-key", "from_user", CALLER, "-key", "domain", "vpbx.local", "-max_recv_loops", "1000",
               "-trace_shortmsg", "-shortmessage_file", str(self.short),
               "-trace_stat", "-stf", str(self.stat), "-fd", "1",
               "-trace_err", "-error_file", str(workdir / f"{name}.err"),
               "-timeout", f"{timeout_s}s", "-timeout_error"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                     cwd=workdir, start_new_session=True)

    def answered_so_far(self) -> int:
        return len(self._parse()[1])

    def wait(self, timeout: float) -> SippRun:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.out.close()
        invites, answers, finals = self._parse()
        run = SippRun(self.side, self.calls, self.rate, returncode=self.proc.returncode, answered=len(answers),
                      finals=dict(finals))
        run.setup_ms = [(answers[c] - invites[c]) * 1000.0 for c in answers if c in invites]
        sent = sorted(invites.values())
        if len(sent) > 1 and sent[-1] > sent[0]:
            run.placed_rate = (len(sent) - 1) / (sent[-1] - sent[0])
        run.successful, run.failed = self._counts()
        return run

    def _parse(self) -> tuple[dict[str, float], dict[str, float], Counter[str]]:
        """call id -> time of the first INVITE sent / of its 200 OK read; other final INVITE responses by code."""
        invites: dict[str, float] = {}
        answers: dict[str, float] = {}
        finals: Counter[str] = Counter()
        try:
            text = self.short.read_text(errors="replace")
        except FileNotFoundError:
            return invites, answers, finals
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) < 7 or not parts[5].endswith(" INVITE"):
                continue
            stamp, direction, call_id, first = float(parts[2]), parts[3], parts[4], parts[6]
            if direction == "S" and first.startswith("INVITE "):
                invites.setdefault(call_id, stamp)
            elif direction == "R" and first.startswith("SIP/2.0 "):
                code = first.split()[1]
                if code == "200":
                    answers.setdefault(call_id, stamp)
                elif code[0] in "3456":
                    finals[code] += 1
        return invites, answers, finals

    def _counts(self) -> tuple[int, int]:
        try:
            rows = list(csv.DictReader(self.stat.read_text().splitlines(), delimiter=";"))
        except FileNotFoundError:
            return 0, self.calls
        if not rows:
            return 0, self.calls
        return int(rows[-1]["SuccessfulCall(C)"]), int(rows[-1]["FailedCall(C)"])


def run_calls(pbx: Pbx, workdir: Path, name: str, side: str, calls: int, rate: float) -> SippRun:
    """`calls` greeting calls at `rate` cps from `side`, each waiting for the PBX's BYE; returns once all is idle."""
    # the same number both ways: the trunk's inbound context hands it to the engine, [vpbx-bench] answers any number
    sipp = Sipp(workdir, name, side, GREETING_NUMBER, "uac_remote_bye.xml", calls, rate, limit=max(200, int(rate * 30)),
                timeout_s=int(calls / rate) + 120)
    run = sipp.wait(calls / rate + 180)
    pbx.wait_idle()
    return run


# ---- the floor: the least any ARI application has to do ------------------------------------------------------------
def ari_floor_app(config: Path) -> None:
    """A minimal ARI application with no logic, no database and no HTTP library: on StasisStart it answers and plays
    the prompt, on PlaybackFinished it hangs up (requests written by hand on one keep-alive connection). Its call
    setup time is what talking to Asterisk over ARI costs by itself; run by `calls.py --ari-floor-app CONFIG`."""
    import asyncio
    import tomllib

    import websockets

    ari = tomllib.loads(config.read_text())["ari"]
    auth = base64.b64encode(f"{ari['user']}:{ari['password']}".encode()).decode()
    host, _, port = ari["url"].split("://", 1)[1].rstrip("/").partition(":")

    async def main() -> None:
        reader, writer = await asyncio.open_connection(host, int(port or 80))
        lock = asyncio.Lock()

        async def rest(method: str, path: str) -> None:
            async with lock:
                writer.write(f"{method} /ari/{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
                             f"Content-Length: 0\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if length and int(length.group(1)):
                    await reader.readexactly(int(length.group(1)))

        async def greet(channel: str) -> None:
            await rest("POST", f"channels/{channel}/answer")
            await rest("POST", f"channels/{channel}/play?media=sound:vpbx/{PROMPT}")

        url = f"ws://{host}:{port}/ari/events?app={ari['app']}&subscribeAll=false"
        async with websockets.connect(url, additional_headers={"Authorization": f"Basic {auth}"}) as ws:
            print("floor app connected", flush=True)
            tasks: set[asyncio.Task[Any]] = set()   # strong references: the loop keeps only weak ones

            def spawn(coro: Any) -> None:
                task = asyncio.ensure_future(coro)
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            async for message in ws:
                event = json.loads(message)
                if event["type"] == "StasisStart":
                    spawn(greet(event["channel"]["id"]))
                elif event["type"] == "PlaybackFinished":
                    target = event["playback"]["target_uri"].removeprefix("channel:")
                    spawn(rest("DELETE", f"channels/{target}"))

    asyncio.run(main())


def run_floor(pbx: Pbx, work: Path, calls: int, rate: float) -> SippRun:
    """The same greeting calls answered by ari_floor_app instead of the engine (the engine is stopped meanwhile)."""
    pbx.stop_engine()
    with open(work / "floor-app.log", "wb") as out:   # the app keeps its own copy of the descriptor
        app = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--ari-floor-app", str(pbx.config)],
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while b"connected" not in (work / "floor-app.log").read_bytes():
            if app.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the ARI floor app did not start: {(work / 'floor-app.log').read_text()[-2000:]}")
            time.sleep(0.1)
        run = run_calls(pbx, work, "setup-floor", "vpbx", calls, rate)
    finally:
        app.terminate()
        app.wait(10)
        pbx.start_engine()
    return run


# ---- figures -----------------------------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 3), "p90_ms": round(pct(values, 90), 3),
            "p99_ms": round(pct(values, 99), 3), "max_ms": round(max(values), 3), "samples": len(values)}


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    version = sandbox("cli", "core show version", check=False).stdout.split()
    sipp_v = subprocess.run([SIPP, "-v"], capture_output=True, text=True).stdout.split()
    return (f"{os.cpu_count()} CPUs ({cpu or platform.machine()}), Linux {platform.release()}, "
            f"Asterisk {version[1] if len(version) > 1 else '?'}, Python {platform.python_version()}, "
            f"sipp {sipp_v[1] if len(sipp_v) > 1 else '?'}")


# ---- phases ------------------------------------------------------------------------------------------------------
def cpu_ms(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far, in ms (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def phase_setup(pbx: Pbx, work: Path, rounds: int, calls: int, rate: float, floor: bool) -> dict[str, Any]:
    say(f"phase 1: call setup, {rounds} round(s) x {calls} calls at {rate:g} cps per side")
    times: dict[str, list[float]] = {"native": [], "vpbx": []}
    failures: dict[str, int] = {"native": 0, "vpbx": 0}
    cpu: dict[str, dict[str, float]] = {side: {"engine": 0.0, "asterisk": 0.0} for side in times}
    asterisk_pid = pbx.asterisk_pid()
    for r in range(rounds):
        for side in (("native", "vpbx") if r % 2 == 0 else ("vpbx", "native")):
            assert pbx.engine is not None
            before = cpu_ms(pbx.engine.pid), cpu_ms(asterisk_pid)
            run = run_calls(pbx, work, f"setup-{side}-{r}", side, calls, rate)
            cpu[side]["engine"] += cpu_ms(pbx.engine.pid) - before[0]
            cpu[side]["asterisk"] += cpu_ms(asterisk_pid) - before[1]
            times[side] += run.setup_ms
            failures[side] += run.calls - run.successful
            say(f"  round {r + 1} {side:6}: {run.successful}/{run.calls} ok, median "
                f"{statistics.median(run.setup_ms) if run.setup_ms else float('nan'):.2f} ms")
    out: dict[str, Any] = {"calls_per_side": rounds * calls, "rate": rate, "failures": failures}
    for side in times:
        out[side] = summary(times[side])
    # CPU per call (/proc/PID/stat) over the sipp runs of each side, including the time the call was up
    out["cpu_ms_per_call"] = {side: {who: round(ms / max(1, rounds * calls), 2) for who, ms in cpu[side].items()}
                              for side in cpu}
    out["median_ratio"] = out["vpbx"]["median_ms"] / out["native"]["median_ms"]
    out["p99_added_ms"] = out["vpbx"]["p99_ms"] - out["native"]["p99_ms"]
    if floor:
        run = run_floor(pbx, work, calls, rate)
        say(f"  ARI floor app: {run.successful}/{run.calls} ok")
        if run.setup_ms:
            out["ari_floor"] = summary(run.setup_ms) | {"failures": run.calls - run.successful}
    return out


def phase_rate(pbx: Pbx, work: Path, start: float, step_s: float, max_rate: float, max_setup_ms: float
               ) -> dict[str, Any]:
    say(f"phase 3: max sustained rate, {step_s:g} s per step (a call fails if sipp says so or its 200 OK takes "
        f"over {max_setup_ms:g} ms)")
    state: dict[str, dict[str, Any]] = {side: {"ok": 0.0, "fail": None, "steps": []} for side in ("native", "vpbx")}

    def step(side: str, rate: float) -> None:
        calls = max(1, round(rate * step_s))
        run = run_calls(pbx, work, f"rate-{side}-{rate:g}", side, calls, rate)
        slow = sum(1 for ms in run.setup_ms if ms > max_setup_ms)
        failed = run.calls - run.successful + slow
        # a step counts only if no call failed and sipp really placed the calls at (about) the rate
        ok = run.all_ok and not slow and run.placed_rate >= 0.9 * rate
        state[side]["steps"].append({"rate": rate, "calls": calls, "successful": run.successful, "slow": slow,
                                     "placed_rate": round(run.placed_rate, 1), "finals": run.finals,
                                     "setup_p99_ms": round(pct(run.setup_ms, 99), 2) if run.setup_ms else None,
                                     "ok": ok})
        say(f"  {side:6} {rate:6.1f} cps: {run.successful}/{calls} completed, {slow} slow, placed "
            f"{run.placed_rate:.1f} cps, setup p99 {pct(run.setup_ms, 99):.1f} ms {run.finals or ''}"
            f" -> {'pass' if ok else f'FAIL ({failed} failed)'}")
        if ok:
            state[side]["ok"] = max(state[side]["ok"], rate)
        else:
            state[side]["fail"] = rate if state[side]["fail"] is None else min(state[side]["fail"], rate)

    rate = start
    while rate <= max_rate and any(s["fail"] is None for s in state.values()):
        for side in ("native", "vpbx"):
            if state[side]["fail"] is None:
                step(side, rate)
        rate *= 2
    for side in ("native", "vpbx"):                     # two bisection steps between the last pass and first failure
        for _ in range(2):
            lo, hi = state[side]["ok"], state[side]["fail"]
            if hi is None or hi - lo <= 5:
                break
            step(side, float(int((lo + hi) / 2 / 5) * 5))
    result: dict[str, Any] = {side: {"max_cps": state[side]["ok"], "first_failing_cps": state[side]["fail"],
                                     "steps": state[side]["steps"]} for side in state}
    result["ratio"] = (result["vpbx"]["max_cps"] / result["native"]["max_cps"]) if result["native"]["max_cps"] else None
    result["max_setup_ms"] = max_setup_ms
    return result


def phase_parked(pbx: Pbx, work: Path, rss: RssSampler, parked: int) -> dict[str, Any]:
    say(f"phase 2: {parked} calls parked in the IVR ({PARK_RATE} cps, each held {PARK_HOLD_MS / 1000:g} s)")
    pbx.wait_idle()
    offset = pbx.engine_log.stat().st_size
    idle_kb = rss.read()
    mark = time.monotonic()
    sipp = Sipp(work, "parked", "vpbx", IVR_NUMBER, "uac_call.xml", parked, PARK_RATE, limit=parked,
                hold_ms=PARK_HOLD_MS, timeout_s=parked // PARK_RATE + PARK_HOLD_MS // 1000 + 120)
    deadline = time.monotonic() + parked / PARK_RATE + 30
    while sipp.answered_so_far() < parked and time.monotonic() < deadline and sipp.proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.5)                                     # the menu prompt (0.43 s) has played to the last caller
    at_peak = {
        "answered": sipp.answered_so_far(),
        "ari_app_channels": pbx.ari_app_channels(),
        "asterisk_channels": pbx.channels(),
        "open_call_records": pbx.open_calls(IVR_NUMBER),
        "engine_rss_mb": round(rss.read() / 1024, 1),
        "asterisk_open_files": len(os.listdir(f"/proc/{pbx.asterisk_pid()}/fd")),
        "seconds_to_park": round(time.monotonic() - mark - 1.5, 1),
    }
    entries = pbx.engine_entries(offset)
    at_peak["in_ivr"] = len({e["call_id"] for e in entries if str(e.get("node", "")).startswith("ivr:")})
    at_peak["heard_menu"] = len({e["call_id"] for e in entries if e.get("ari_event") == "PlaybackFinished"
                                 and e.get("media") == f"sound:vpbx/{PROMPT}"})
    say(f"  with all parked: {json.dumps(at_peak)}")
    run = sipp.wait(PARK_HOLD_MS / 1000 + 120)
    pbx.wait_idle()
    records = pbx.records(IVR_NUMBER)
    ended = [r for r in records if r.get("ended_at")]
    errors = [e for e in pbx.engine_entries(offset) if e.get("level") in ("ERROR", "CRITICAL")]
    return {"calls": parked, "at_peak": at_peak, "successful": run.successful, "failed": run.failed,
            "finals": run.finals, "records": len(records), "records_ended": len(ended),
            "dispositions": dict(Counter(r.get("disposition") for r in ended)),
            "engine_errors": len(errors), "engine_rss_idle_mb": round(idle_kb / 1024, 1),
            "engine_rss_peak_mb": round(rss.peak(mark) / 1024, 1),
            "setup_median_ms": round(statistics.median(run.setup_ms), 2) if run.setup_ms else None,
            "setup_p99_ms": round(pct(run.setup_ms, 99), 2) if run.setup_ms else None}


# ---- report ------------------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def report(res: dict[str, Any]) -> str:
    s, r, p = res.get("setup"), res.get("rate"), res.get("parked")
    lines = [f"vpbx call benchmark, {res['when']}", f"machine: {res.get('machine', '?')}", ""]
    if s:
        lines += [f"call setup, INVITE -> 200 OK ({s['calls_per_side']} greeting calls per side at {s['rate']:g} cps; "
                  f"sipp -trace_shortmsg timestamps):",
                  f"  {'':10} {'median':>9} {'p90':>9} {'p99':>9} {'max':>9}  failed"]
        rows = [("native", s["native"], s["failures"]["native"]), ("vpbx", s["vpbx"], s["failures"]["vpbx"])]
        if "ari_floor" in s:
            rows.append(("ARI floor", s["ari_floor"], s["ari_floor"]["failures"]))
        for name, x, failed in rows:
            lines.append(f"  {name:10} {x['median_ms']:7.2f}ms {x['p90_ms']:7.2f}ms {x['p99_ms']:7.2f}ms "
                         f"{x['max_ms']:7.2f}ms  {failed}")
        lines.append(f"  vpbx/native median {s['median_ratio']:.2f}x (target <= 1.25x: "
                     f"{verdict(s['median_ratio'] <= 1.25)}); p99 added {s['p99_added_ms']:+.2f} ms (target <= 20 ms: "
                     f"{verdict(s['p99_added_ms'] <= 20)})")
        if "cpu_ms_per_call" in s:
            c = s["cpu_ms_per_call"]
            lines.append(f"  CPU per call (/proc/PID/stat): native side Asterisk {c['native']['asterisk']:.2f} ms; "
                         f"vpbx side Asterisk {c['vpbx']['asterisk']:.2f} ms + engine {c['vpbx']['engine']:.2f} ms")
        if "ari_floor" in s:
            lines.append(f"  ARI floor/native median {s['ari_floor']['median_ms'] / s['native']['median_ms']:.2f}x "
                         f"(a minimal ARI app: answer, play, hang up; no logic, no database, hand-written HTTP)")
        lines.append("")
    if p:
        a = p["at_peak"]
        lost = p["calls"] - min(a["answered"], a["ari_app_channels"], a["open_call_records"], a["heard_menu"],
                                p["successful"])
        lines += [f"{p['calls']} calls parked in the IVR at once (sipp sends no RTP):",
                  f"  all parked after {a['seconds_to_park']} s: answered {a['answered']}, in the Stasis app (ARI) "
                  f"{a['ari_app_channels']}, Asterisk channels {a['asterisk_channels']}, open call records "
                  f"{a['open_call_records']}, heard the menu {a['heard_menu']}",
                  f"  afterwards: {p['successful']} completed, {p['failed']} failed, {p['records_ended']} records "
                  f"closed {p['dispositions']}, engine errors {p['engine_errors']}; lost {lost} ({verdict(lost == 0)})",
                  f"  engine RSS idle {p['engine_rss_idle_mb']} MB, with {p['calls']} calls {a['engine_rss_mb']} MB, "
                  f"peak {p['engine_rss_peak_mb']} MB (target <= 150 MB: {verdict(p['engine_rss_peak_mb'] <= 150)})",
                  f"  setup while parking: median {p['setup_median_ms']} ms, p99 {p['setup_p99_ms']} ms; Asterisk "
                  f"open files {a['asterisk_open_files']}", ""]
    if r:
        lines.append(f"max sustained call rate, 0 failed calls (greeting calls, {res['args']['step_seconds']:g} s per "
                     f"step; a call answered after {r['max_setup_ms']:g} ms counts as failed):")
        for side in ("native", "vpbx"):
            steps = ", ".join(f"{x['rate']:g}{'' if x['ok'] else ' FAIL'}" for x in r[side]["steps"])
            lines.append(f"  {side:8} {r[side]['max_cps']:g} cps   (steps: {steps})")
        if r["ratio"] is not None:
            lines.append(f"  vpbx/native {r['ratio']:.2f}x (target >= 0.8x: {verdict(r['ratio'] >= 0.8)})")
        lines.append("")
    if "engine_rss_hwm_mb" in res:
        lines.append(f"engine peak RSS over the whole run (VmHWM): {res['engine_rss_hwm_mb']} MB")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run: 1 round x 50 calls, 5 s steps, 100 parked")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-calls", type=int, default=200)
    ap.add_argument("--latency-rate", type=float, default=10)
    ap.add_argument("--no-floor", action="store_true", help="skip the minimal-ARI-app reference in phase 1")
    ap.add_argument("--start-rate", type=float, default=5)
    ap.add_argument("--max-rate", type=float, default=1280)
    ap.add_argument("--step-seconds", type=float, default=10)
    ap.add_argument("--max-setup-ms", type=float, default=1000)
    ap.add_argument("--parked", type=int, default=500)
    ap.add_argument("--phases", default="setup,parked,rate", help="comma list of setup, parked, rate")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (sipp traces, engine log)")
    ap.add_argument("--profile", type=Path, help="run the engine under cProfile, write its stats here")
    ap.add_argument("--ari-rest", choices=("auto", "http"),
                    help="how the engine sends ARI requests (default: its own, auto = over the event WebSocket)")
    ap.add_argument("--no-event-filter", action="store_true", help="the engine takes every ARI event type")
    ap.add_argument("--ari-floor-app", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ari_floor_app:
        ari_floor_app(args.ari_floor_app)
        return 0
    if args.quick:
        args.rounds, args.latency_calls, args.step_seconds, args.parked = 1, 50, 5, 100
    if os.geteuid() != 0:
        say("bench/calls.sh needs root (the Asterisk sandbox runs in a chroot)")
        return 1
    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="vpbx-bench-"))
    pbx = Pbx(work)
    if args.ari_rest:
        pbx.client_options["rest_transport"] = args.ari_rest
    if args.no_event_filter:
        pbx.client_options["event_types"] = None
    phases = set(args.phases.split(","))
    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    rss = RssSampler(pbx)
    try:
        say(f"setting up in {work}")
        pbx.set_up()
        res["machine"] = machine()
        pbx.start_engine(args.profile)
        rss.start()
        say("warm-up: 20 calls per side")
        for side in ("native", "vpbx"):
            run_calls(pbx, work, f"warmup-{side}", side, 20, 10)
        if "setup" in phases:
            res["setup"] = phase_setup(pbx, work, args.rounds, args.latency_calls, args.latency_rate,
                                       floor=not args.no_floor)
        if "parked" in phases:
            res["parked"] = phase_parked(pbx, work, rss, args.parked)
        if "rate" in phases:
            res["rate"] = phase_rate(pbx, work, args.start_rate, args.step_seconds, args.max_rate, args.max_setup_ms)
        res["engine_rss_hwm_mb"] = round(rss.hwm() / 1024, 1)
    finally:
        rss.stop()
        pbx.stop_engine()
        if args.keep:
            say(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
