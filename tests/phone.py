"""A real SIP phone for tests with media: PJSIP (PyPI `pjsua2-python`), null sound device, a process of its own.

Each phone sends its own sine tone into every call it is in and records what it hears (one WAV per call); a test then
checks the other party's tone is in the recording (`carries`). A call that "connects" with silence fails that check.

    with Phone("alice", tone_hz=700) as alice, Phone("bob", tone_hz=1100) as bob:
        alice.register("alice", password, "127.0.0.1:5060", domain="vpbx.local")
        bob.register(...)
        alice.call("sip:+380441234567@127.0.0.1:5060")
        bob.wait("incoming"); bob.answer()
        alice.wait("confirmed"); time.sleep(3); alice.hangup()
        assert carries(alice.recording(), 1100) and carries(bob.recording(), 700)

The phone process runs this file as a script (`python tests/phone.py --name N --tone 700 --dir D [--bind IP]`), so a
test can start it inside a network namespace (`prefix=["ip", "netns", "exec", NS]`); it reads one JSON command per
line on stdin and writes one JSON event per line on stdout. PJSIP runs with no worker threads: the script's one loop
polls stdin and PJSIP's events, so no callback ever runs on a foreign thread.
"""
from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
RATE = 8000


# ---- the test side ---------------------------------------------------------------------------------------------
class Phone:
    """Drives one phone process. Events: registered {code}, incoming {from}, early, confirmed, disconnected {code},
    media {active}, dtmf {digit}, error {message}."""

    def __init__(self, name: str, tone_hz: int, work_dir: Path | None = None, bind: str = "127.0.0.1",
                 port: int = 0, prefix: list[str] | None = None, transport: str = "udp",
                 codecs: list[str] | None = None) -> None:
        self.name = name
        self.dir = Path(work_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"phone-{name}-{os.getpid()}")
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [*(prefix or []), sys.executable, str(HERE), "--name", name, "--tone", str(tone_hz), "--dir",
                str(self.dir), "--bind", bind, "--port", str(port), "--transport", transport]
        if codecs:
            args += ["--codecs", ",".join(codecs)]
        self.log = (self.dir / "pjsip.log").open("w")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     bufsize=1)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.wait("ready", timeout=20)
        self.address = f"{ready['address']}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue
        self.events.put({"event": "exited"})

    def send(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()

    def wait(self, event: str, timeout: float = 15, **match: Any) -> dict[str, Any]:
        """The next event named `event` (with the given fields); AssertionError with everything seen on timeout."""
        for seen in self.seen:
            if seen["event"] == event and all(seen.get(k) == v for k, v in match.items()):
                self.seen.remove(seen)
                return seen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.events.get(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
            except queue.Empty:
                continue
            if got["event"] == event and all(got.get(k) == v for k, v in match.items()):
                return got
            if got["event"] == "exited":
                break
            self.seen.append(got)
        raise AssertionError(f"phone {self.name}: no {event} {match or ''} within {timeout} s; seen {self.seen}; "
                             f"log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        return "\n".join((self.dir / "pjsip.log").read_text(errors="replace").splitlines()[-lines:])

    # commands
    def register(self, user: str, password: str, registrar: str, domain: str, timeout: float = 15,
                 expect: int = 200) -> dict[str, Any]:
        self.send("register", user=user, password=password, registrar=registrar, domain=domain)
        return self.wait("registered", timeout=timeout, code=expect)

    def call(self, uri: str) -> None:
        self.send("call", uri=uri)

    def answer(self) -> None:
        self.send("answer")

    def hangup(self) -> None:
        self.send("hangup")

    def dtmf(self, digits: str) -> None:
        self.send("dtmf", digits=digits)

    def recording(self, index: int = -1) -> Path:
        """The WAV of the phone's n-th call (default: the last)."""
        recs = sorted(self.dir.glob("call-*.wav"), key=lambda p: int(p.stem.split("-")[1]))
        assert recs, f"phone {self.name} recorded no call"
        return recs[index]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()

    def __enter__(self) -> Phone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tone_levels(path: Path, hz: float, skip_s: float = 0.5) -> tuple[float, float]:
    """(share of the recording's energy within +-25 Hz of `hz`, RMS level) after the first `skip_s` seconds."""
    import numpy as np
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    samples = data[int(skip_s * rate):, 0]
    if len(samples) < rate // 4:
        return 0.0, 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    total = float(spectrum[freqs > 50].sum()) or 1e-30
    band = float(spectrum[(freqs > hz - 25) & (freqs < hz + 25)].sum())
    return band / total, float(np.sqrt(np.mean(samples ** 2)))


def carries(path: Path, hz: float, min_share: float = 0.3, min_rms: float = 0.005) -> bool:
    """The recording holds the tone `hz` (a real share of its energy, not noise) and is not silence."""
    share, rms = tone_levels(path, hz)
    return share >= min_share and rms >= min_rms


# ---- the phone process ------------------------------------------------------------------------------------------
def _agent(argv: list[str]) -> None:
    import argparse

    import numpy as np
    import pjsua2 as pj
    import soundfile as sf

    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--tone", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    ap.add_argument("--codecs", default="")
    opts = ap.parse_args(argv)
    work = Path(opts.dir)

    def emit(event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()

    tone_file = work / "tone.wav"
    t = np.arange(RATE * 2) / RATE
    sf.write(str(tone_file), 0.4 * np.sin(2 * np.pi * opts.tone * t), RATE, subtype="PCM_16")

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = f"vpbx-test-phone/{opts.name}"
    cfg.logConfig.level = 4
    cfg.logConfig.consoleLevel = 4          # to stderr: the test keeps it in pjsip.log
    cfg.medConfig.clockRate = RATE
    cfg.medConfig.sndClockRate = RATE
    cfg.medConfig.ecTailLen = 0
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = opts.port
    tcfg.boundAddress = opts.bind
    tcfg.publicAddress = opts.bind
    ttype = pj.PJSIP_TRANSPORT_UDP if opts.transport == "udp" else pj.PJSIP_TRANSPORT_TCP
    tid = ep.transportCreate(ttype, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    if opts.codecs:
        wanted = opts.codecs.split(",")
        for codec in ep.codecEnum2():
            keep = any(codec.codecId.lower().startswith(w.lower()) for w in wanted)
            ep.codecSetPriority(codec.codecId, 200 if keep else 0)
    info = ep.transportGetInfo(tid)
    player = pj.AudioMediaPlayer()
    player.createPlayer(str(tone_file))    # loops
    calls: dict[int, Any] = {}
    counter = [0]
    keep: list[Any] = []

    class Call(pj.Call):  # type: ignore[misc]
        def __init__(self, acc: Any, call_id: int = pj.PJSUA_INVALID_ID) -> None:
            super().__init__(acc, call_id)
            self.recorder: Any = None
            counter[0] += 1
            self.n = counter[0]

        def onCallState(self, prm: Any) -> None:
            ci = self.getInfo()
            state = {pj.PJSIP_INV_STATE_EARLY: "early", pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
                     pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected"}.get(ci.state)
            if state:
                emit(state, code=ci.lastStatusCode, call=self.n, remote=ci.remoteUri)
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                calls.pop(self.n, None)
                self.recorder = None

        def onCallMediaState(self, prm: Any) -> None:
            ci = self.getInfo()
            for mi in ci.media:
                if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                    continue
                active = mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                emit("media", active=active, status=int(mi.status), call=self.n)
                if active:
                    media = self.getAudioMedia(mi.index)
                    player.startTransmit(media)
                    if self.recorder is None:
                        self.recorder = pj.AudioMediaRecorder()
                        self.recorder.createRecorder(str(work / f"call-{self.n}.wav"))
                        keep.append(self.recorder)
                    media.startTransmit(self.recorder)

        def onDtmfDigit(self, prm: Any) -> None:
            emit("dtmf", digit=prm.digit, call=self.n)

    class Account(pj.Account):  # type: ignore[misc]
        def onRegState(self, prm: Any) -> None:
            emit("registered", code=prm.code, reason=prm.reason, expiration=prm.expiration)

        def onIncomingCall(self, prm: Any) -> None:
            call = Call(self, prm.callId)
            calls[call.n] = call
            emit("incoming", call=call.n, remote=call.getInfo().remoteUri)
            ringing = pj.CallOpParam()
            ringing.statusCode = 180
            call.answer(ringing)

    account: Any = None
    emit("ready", address=f"{info.localName}")
    running = True
    while running:
        ep.libHandleEvents(10)
        readable, _, _ = select.select([sys.stdin], [], [], 0)
        if not readable:
            continue
        line = sys.stdin.readline()
        if not line:
            break
        try:
            cmd = json.loads(line)
            op = cmd.pop("cmd")
            if op == "register":
                acfg = pj.AccountConfig()
                acfg.idUri = f"sip:{cmd['user']}@{cmd['domain']}"
                acfg.regConfig.registrarUri = f"sip:{cmd['registrar']};transport={opts.transport}"
                acfg.sipConfig.proxies.append(f"sip:{cmd['registrar']};transport={opts.transport};lr")
                acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", cmd["user"], 0, cmd["password"]))
                acfg.natConfig.contactRewriteUse = 0
                acfg.natConfig.viaRewriteUse = 0
                acfg.natConfig.sdpNatRewriteUse = 0
                if account is None:
                    account = Account()
                    account.create(acfg)
                else:
                    account.modify(acfg)
            elif op == "call":
                assert account is not None, "register first"
                call = Call(account)
                calls[call.n] = call
                call.makeCall(cmd["uri"], pj.CallOpParam(True))
            elif op == "answer":
                prm = pj.CallOpParam()
                prm.statusCode = 200
                for call in list(calls.values()):
                    if call.getInfo().state in (pj.PJSIP_INV_STATE_INCOMING, pj.PJSIP_INV_STATE_EARLY):
                        call.answer(prm)
            elif op == "hangup":
                ep.hangupAllCalls()
            elif op == "dtmf":
                for call in list(calls.values()):
                    if call.getInfo().state == pj.PJSIP_INV_STATE_CONFIRMED:
                        call.dialDtmf(cmd["digits"])
            elif op == "quit":
                running = False
        except Exception as exc:   # a bad command is reported, the phone keeps running
            emit("error", message=f"{type(exc).__name__}: {exc}")
    ep.hangupAllCalls()
    for _ in range(50):
        ep.libHandleEvents(10)
    keep.clear()
    calls.clear()
    ep.libDestroy()


if __name__ == "__main__":
    _agent(sys.argv[1:])
