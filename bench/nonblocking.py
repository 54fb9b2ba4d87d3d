#!/usr/bin/env python3
"""DTMF while SQLite is locked: the engine acts on each key while a 20 000-row `vpbx number import` holds the lock.

    bench/nonblocking.py [--calls 10] [--rows 20000] [--rounds 1] [--json FILE] [--keep]

A script, not a test (tests/test_engine_nonblocking.py runs the same scenario and asserts the ordering, never a time):
it prints each key's latency and the median / max, and exits 0 whether or not they meet the 100 ms target (1 if it
could not measure). Needs root (the sandbox), sipp and a built sandbox (scripts/asterisk-sandbox build).

The scenario (`run_round`), on the sandbox Asterisk with the real CLI and `vpbx serve`:
  1. --calls callers (sipp) call a number routed to an IVR (60 s to press a key; key 1 leads to a second IVR) and wait
     there, the menu played.
  2. `vpbx number import` of --rows new numbers starts (one transaction: it holds SQLite's write lock for seconds).
  3. Once a probe connection finds the write lock held (BEGIN IMMEDIATE refused for 300 ms running), every caller is
     cued with a SIP NOTIFY in its dialog (sent to sipp from here; Asterisk plays no part in the cue: its
     res_pjsip_notify is not loaded); sipp plays the RFC 4733 key 1 to Asterisk at once.
  4. The engine's call log has one line per step once the step's actions are done (`acted_ms`: from Asterisk's
     timestamp on the ChannelDtmfReceived event to the end of the actions: the menu timer cancelled, the second
     menu's prompt started over ARI). A key counts as acted on before the import's commit when its line was in the log
     while the imported rows were still invisible to a fresh reader (checked after reading the log): an ordering, not a
     clock comparison.
  5. Nothing is lost: the import commits every row, and once the callers hang up every call record is closed at the
     second menu (the engine's writes queued behind the import's lock are all done).
Latency of a key = acted_ms (Asterisk's clock and the engine's are the same machine's).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("VPBX_ASTERISK_ROOT", "/var/cache/vpbx/rootfs"))
SANDBOX = REPO / "scripts" / "asterisk-sandbox"
sys.path.insert(0, str(REPO / "tests"))
from sipp import Sipp, dtmf_pcap  # noqa: E402  (tests/sipp.py: the sipp helpers the tests use)

IMPORT_FIRST = "+380443000000"     # the imported numbers: +380443000000 ... (Kyiv, valid, unused by the tests)
IVR_TIMEOUT_S = 60
LOCK_HELD_FOR_S = 0.3              # the probe's BEGIN IMMEDIATE refused this long: the import's transaction is on
PROBE_EVERY_S = 0.01
TARGET_MS = 100.0
NOTIFY_EVENT = "vpbx-bench"

# After the answer: wait for the cue (a NOTIFY in the call's dialog, sent by run_round), play key 1, stay a while.
# The cue's 200 OK goes where sipp sends everything of the call (Asterisk), which drops it as unmatched.
MEDIA = """<recv request="NOTIFY" timeout="120000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="1500"/>"""


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- the install under test ----------------------------------------------------------------------------------------
@dataclass
class Install:
    """A vpbx install on the sandbox: its config, database and engine log, and the real CLI."""

    config: Path
    db: Path
    engine_log: Path

    def vpbx(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "vpbx.cli", "--config", str(self.config), *args],
                              capture_output=True, text=True, cwd=REPO, timeout=600,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
        if check and proc.returncode != 0:
            raise RuntimeError(f"vpbx {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc


def set_up_ivr(install: Install, tag: str, prompt: str) -> tuple[str, str]:
    """A number routed to IVR `nb{tag}` (key 1: IVR `nb{tag}b`, both playing `prompt`, 60 s to press a key).
    Returns (number, node id of the second menu)."""
    number = f"+38044{5900000 + int(tag) % 100000:07d}"
    first, second = f"nb{tag}", f"nb{tag}b"
    install.vpbx("ivr", "add", second, "--prompt", prompt, "--option", "1=hangup", "--timeout", str(IVR_TIMEOUT_S),
                 "--retries", "1")
    install.vpbx("ivr", "add", first, "--prompt", prompt, "--option", f"1=ivr:{second}", "--timeout",
                 str(IVR_TIMEOUT_S), "--retries", "1")
    install.vpbx("number", "add", number, "--channels", "100")
    install.vpbx("number", "route", number, f"ivr:{first}")
    install.vpbx("reload")
    return number, f"ivr:{second}"


# ---- what the scenario reads ---------------------------------------------------------------------------------------
def import_range(rows: int) -> tuple[str, str]:
    first = int(IMPORT_FIRST[1:])
    return f"+{first}", f"+{first + rows - 1}"


def write_import_csv(path: Path, rows: int) -> Path:
    first = int(IMPORT_FIRST[1:])
    path.write_text("number\n" + "".join(f"+{first + i}\n" for i in range(rows)))
    return path


def imported(db: Path, rows: int) -> int:
    """How many of the imported numbers a fresh reader sees (0 until the import commits: WAL readers see commits)."""
    low, high = import_range(rows)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM numbers WHERE number BETWEEN ? AND ?", [low, high]).fetchone()[0])
    finally:
        conn.close()


def drop_imported(db: Path, rows: int) -> None:
    low, high = import_range(rows)
    conn = sqlite3.connect(str(db), timeout=60)
    try:
        with conn:
            conn.execute("DELETE FROM numbers WHERE number BETWEEN ? AND ?", [low, high])
    finally:
        conn.close()


def write_lock_held(db: Path) -> bool:
    """True if another connection holds the database's write lock now (BEGIN IMMEDIATE refused at once)."""
    conn = sqlite3.connect(str(db), timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    finally:
        conn.close()


def log_entries(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    out = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        for line in fh.read().decode(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def steps(install: Install, offset: int, number: str, event: str | None = None) -> list[dict[str, Any]]:
    """The engine's call log steps for calls to `number` (optionally: caused by `event`, e.g. Dtmf)."""
    return [e for e in log_entries(install.engine_log, offset) if e.get("number") == number and "phase" in e
            and (event is None or e.get("event") == event)]


def cue(callers: list[Any]) -> None:
    """Tell every caller (a SippProcess running MEDIA) to press its key now: a NOTIFY with the call's Call-ID to
    sipp's port (sipp matches a message to its call by Call-ID)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        for i, caller in enumerate(callers):
            sent = caller.messages()
            invite = next(m for m in sent if m.is_request and m.method == "INVITE" and m.direction == "sent")
            to_tag = next((m.header("To") for m in sent if m.status == 200 and m.method == "INVITE"), "")
            host = caller.cmd[caller.cmd.index("-i") + 1]
            message = (f"NOTIFY sip:caller@{host}:{caller.port} SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-vpbx-cue-{i};rport\r\n"
                       f"From: {to_tag}\r\nTo: {invite.header('From')}\r\nCall-ID: {invite.call_id}\r\n"
                       f"CSeq: {100 + i} NOTIFY\r\nEvent: {NOTIFY_EVENT}\r\nMax-Forwards: 70\r\n"
                       "Content-Length: 0\r\n\r\n")
            sock.sendto(message.encode(), (host, caller.port))


# ---- one round -----------------------------------------------------------------------------------------------------
@dataclass
class Key:
    call_id: str
    acted: bool = False                # the engine logged the step the key caused (its actions done)
    acted_ms: float | None = None
    before_commit: bool = False
    actions: list[str] = field(default_factory=list)


@dataclass
class Round:
    calls: int
    rows: int
    keys: list[Key]
    lock_seen_s: float             # from the import's start to the probe finding the write lock held
    import_s: float                # the import command's run time
    committed_rows: int
    records: list[dict[str, Any]]  # the calls' records once they ended

    @property
    def latencies(self) -> list[float]:
        return [k.acted_ms for k in self.keys if k.acted_ms is not None]

    def summary(self) -> dict[str, Any]:
        lat = self.latencies
        return {"calls": self.calls, "rows": self.rows, "keys_acted": sum(k.acted for k in self.keys),
                "keys_before_commit": sum(k.before_commit for k in self.keys),
                "median_ms": round(statistics.median(lat), 1) if lat else None,
                "max_ms": round(max(lat), 1) if lat else None, "import_s": round(self.import_s, 2),
                "lock_seen_after_s": round(self.lock_seen_s, 2)}


def run_round(install: Install, sipp: Sipp, number: str, calls: int, rows: int, workdir: Path,
              engine_alive: Callable[[], bool] = lambda: True) -> Round:
    """The scenario (module docstring), once. Raises RuntimeError when it cannot be measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    drop_imported(install.db, rows)
    csv_path = write_import_csv(workdir / "import.csv", rows)
    scenario = workdir / "uac_notify_dtmf.xml"
    template = (REPO / "tests" / "sipp" / "uac_call.xml").read_text()
    scenario.write_text(template.replace("<!--MEDIA-->", MEDIA.format(pcap=dtmf_pcap("1", 0, workdir))))
    offset = install.engine_log.stat().st_size
    callers = [sipp.uac(number, from_user="+380671112233", scenario=scenario, hold_ms=1000, timeout_s=240)
               for _ in range(calls)]
    # every caller is in the menu, its prompt played (waiting for a key)
    deadline = time.monotonic() + 60
    while len({e["call_id"] for e in steps(install, offset, number) if e["phase"] == "ivr_waiting"}) < calls:
        if time.monotonic() > deadline or not engine_alive():
            raise RuntimeError(f"not every call reached the menu: {steps(install, offset, number)[-20:]}")
        time.sleep(0.1)
    call_ids = sorted({e["call_id"] for e in steps(install, offset, number)})

    t0 = time.monotonic()
    importer = subprocess.Popen([sys.executable, "-m", "vpbx.cli", "--config", str(install.config), "number", "import",
                                 str(csv_path), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    held_since: float | None = None
    while True:
        now = time.monotonic()
        if write_lock_held(install.db):
            held_since = held_since or now
            if now - held_since >= LOCK_HELD_FOR_S:
                break
        else:
            held_since = None
        if importer.poll() is not None:
            raise RuntimeError(f"the import ended before its lock was seen (exit {importer.returncode}):\n"
                               f"{importer.stdout.read() if importer.stdout else ''}"
                               f"{importer.stderr.read() if importer.stderr else ''}")
        if now - t0 > 300:
            raise RuntimeError("the import never took the write lock")
        time.sleep(PROBE_EVERY_S)
    lock_seen = time.monotonic() - t0
    cue(callers)                                              # every caller presses 1 now

    keys = {c: Key(c) for c in call_ids}
    committed = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        acted = {e["call_id"]: e for e in steps(install, offset, number, "Dtmf") if e["call_id"] in keys}
        if not committed and imported(install.db, rows) == 0:
            # read the log first, then found the import uncommitted: these keys were acted on before the commit
            for call_id in acted:
                keys[call_id].before_commit = True
        else:
            committed = True
        for call_id, e in acted.items():
            keys[call_id].acted = True
            keys[call_id].acted_ms = e.get("acted_ms")
            keys[call_id].actions = e.get("actions", [])
        if len(acted) == len(keys):
            break
        time.sleep(0.02)
    importer.wait(600)
    import_s = time.monotonic() - t0
    if importer.returncode != 0:
        raise RuntimeError(f"the import failed:\n{importer.stdout.read() if importer.stdout else ''}"
                           f"{importer.stderr.read() if importer.stderr else ''}")
    committed_rows = imported(install.db, rows)
    for caller in callers:
        caller.wait(120)
    records = _records(install, call_ids)
    drop_imported(install.db, rows)
    return Round(calls, rows, list(keys.values()), lock_seen, import_s, committed_rows, records)


def _records(install: Install, call_ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
    """The calls' records once every one is closed (the engine's queued writes done)."""
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(f"file:{install.db}?mode=ro", uri=True, timeout=5)
        try:
            cur = conn.execute(f"SELECT * FROM calls WHERE call_id IN ({', '.join('?' * len(call_ids))})", call_ids)
            rows = [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur.fetchall()]
        finally:
            conn.close()
        if (len(rows) == len(call_ids) and all(r.get("ended_at") for r in rows)) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def report(rounds: list[Round]) -> str:
    lines = []
    for i, r in enumerate(rounds, 1):
        s = r.summary()
        lines.append(f"round {i}: {s['calls']} calls, import of {s['rows']} rows ({s['import_s']} s; write lock seen "
                     f"{s['lock_seen_after_s']} s after its start); keys acted on {s['keys_acted']}/{s['calls']}, "
                     f"before the import's commit {s['keys_before_commit']}/{s['calls']}")
        lines.append("  DTMF -> action (ms): " + ", ".join(f"{v:.1f}" for v in sorted(r.latencies)))
    every = [v for r in rounds for v in r.latencies]
    if every:
        verdict = "met" if max(every) <= TARGET_MS else "MISSED"
        lines.append(f"all rounds: median {statistics.median(every):.1f} ms, max {max(every):.1f} ms over "
                     f"{len(every)} keys (target: every key within {TARGET_MS:.0f} ms: {verdict})")
    return "\n".join(lines)


# ---- standalone ----------------------------------------------------------------------------------------------------
def sandbox(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(SANDBOX), *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, VPBX_ASTERISK_ROOT=str(ROOT)))
    if check and proc.returncode != 0:
        raise SystemExit(f"scripts/asterisk-sandbox {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    if os.geteuid() != 0 or not (ROOT / "usr/sbin/asterisk").exists():
        say("needs root and a built sandbox (scripts/asterisk-sandbox build)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="vpbx-nonblocking-"))
    install = Install(work / "vpbx.toml", work / "vpbx.db", work / "engine.log")
    sounds = ROOT / "usr/share/asterisk/sounds"
    engine: subprocess.Popen[bytes] | None = None
    try:
        init = subprocess.run([sys.executable, "-m", "vpbx.cli", "init", "--dir", str(work), "--asterisk-config-dir",
                               str(ROOT / "etc/asterisk"), "--sounds-dir", str(sounds)], capture_output=True,
                              text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
        if init.returncode != 0:
            raise SystemExit(f"vpbx init failed:\n{init.stdout}{init.stderr}")
        install.vpbx("config", "generate")                   # this run's AMI/ARI users, before Asterisk reads them
        if sandbox("status", check=False).returncode != 0:
            sandbox("start")
        else:
            sandbox("cli", "core reload")
            time.sleep(1.0)
        install.vpbx("prompt", "add", "nbmenu", str(sounds / "en_US_f_Allison" / "beep.wav"))
        install.vpbx("trunk", "add", "nbcarrier", "--server", "127.0.0.2", "--port", "5999", "--login", "nbcarrier",
                     "--password", "carrier-secret-1", "--no-register")
        number, _ = set_up_ivr(install, "1", "nbmenu")
        with open(install.engine_log, "ab") as log:
            engine = subprocess.Popen([sys.executable, "-m", "vpbx.cli", "--config", str(install.config), "serve",
                                       "--log-format", "json"],
                                      stdout=log, stderr=log, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
        deadline = time.monotonic() + 30
        while not any(str(e.get("message", "")).startswith("reconcile done") for e in log_entries(install.engine_log)):
            if engine.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("vpbx serve did not start:\n" + install.engine_log.read_text()[-3000:])
            time.sleep(0.1)
        sipp = Sipp(work / "sipp", local_ip="127.0.0.2")
        rounds = []
        try:
            for i in range(args.rounds):
                say(f"round {i + 1}: {args.calls} calls, importing {args.rows} numbers ...")
                rounds.append(run_round(install, sipp, number, args.calls, args.rows, work / f"round{i + 1}",
                                        engine_alive=lambda: engine is not None and engine.poll() is None))
        finally:
            sipp.cleanup()
        print(report(rounds))
        if args.json:
            args.json.write_text(json.dumps([{**r.summary(), "keys": [asdict(k) for k in r.keys]} for r in rounds],
                                            indent=2))
        return 0
    except RuntimeError as exc:
        say(f"could not measure: {exc}")
        return 1
    finally:
        if engine is not None and engine.poll() is None:
            engine.terminate()
            try:
                engine.wait(15)
            except subprocess.TimeoutExpired:
                engine.kill()
        if args.keep:
            say(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
