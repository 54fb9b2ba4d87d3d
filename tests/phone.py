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
import re
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
    media {active, status, codec}, dtmf {digit}, sent {what}, error {message}."""

    def __init__(self, name: str, tone_hz: int, work_dir: Path | None = None, bind: str = "127.0.0.1",
                 port: int = 0, prefix: list[str] | None = None, transport: str = "udp",
                 codecs: list[str] | None = None, ca_file: Path | None = None) -> None:
        self.name = name
        self.dir = Path(work_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"phone-{name}-{os.getpid()}")
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [*(prefix or []), sys.executable, str(HERE), "--name", name, "--tone", str(tone_hz), "--dir",
                str(self.dir), "--bind", bind, "--port", str(port), "--transport", transport]
        if codecs:
            args += ["--codecs", ",".join(codecs)]
        if ca_file is not None:                 # transport tls: the server's certificate is checked against it
            args += ["--ca", str(ca_file)]
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

    def unclaimed(self) -> list[dict[str, Any]]:
        """Every event the phone reported so far that no wait() took (e.g. a second `incoming`: rung twice)."""
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return list(self.seen)

    def sip_messages(self, direction: str = "RX") -> list[str]:
        """The SIP messages the phone received (`RX`) or sent (`TX`), oldest first, each as its text. Complete once the
        phone has quit (PJSIP buffers its log file), like the recordings."""
        path = self.dir / "sip-trace.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return re.findall(rf"{direction} \d+ bytes (?:Request|Response) msg [^\n]*:\n(.*?)\n--end msg--", text, re.S)

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        return "\n".join((self.dir / "pjsip.log").read_text(errors="replace").splitlines()[-lines:])

    # commands
    def register(self, user: str, password: str, registrar: str, domain: str, timeout: float = 15,
                 expect: int = 200, srtp: str = "disabled", keepalive: int | None = None) -> dict[str, Any]:
        """`srtp`: disabled (plain RTP/AVP offers), optional or mandatory (SDES, RTP/SAVP); `keepalive`: seconds
        between the phone's own NAT keep-alives (0: none, so only the server's qualify keeps a NAT binding open;
        None: PJSIP's default, 15 s)."""
        assert srtp in ("disabled", "optional", "mandatory"), srtp
        self.send("register", user=user, password=password, registrar=registrar, domain=domain, srtp=srtp,
                  keepalive=keepalive)
        return self.wait("registered", timeout=timeout, code=expect)

    def call(self, uri: str) -> None:
        self.send("call", uri=uri)

    def answer(self) -> None:
        self.send("answer")

    def hangup(self, call: int | None = None) -> None:
        """Hang up every call, or only call `call` (its number in the phone's events)."""
        self.send("hangup", **({} if call is None else {"call": call}))

    def xfer(self, uri: str, call: int | None = None) -> None:
        """Blind transfer (REFER) of the confirmed call (or call `call`) to `uri`; NOTIFYs come as `xfer_status`."""
        self.send("xfer", uri=uri, **({} if call is None else {"call": call}))

    def xfer_replaces(self, call: int, to: int) -> None:
        """Attended transfer: REFER on call `call` with Replaces naming call `to` (the phone's other call)."""
        self.send("xfer_replaces", call=call, to=to)

    def dtmf(self, digits: str, method: str = "rfc4733") -> None:
        """Press keys in the confirmed call: `rfc4733` (RTP events), `info` (SIP INFO, application/dtmf-relay) or
        `inband` (the DTMF tone pairs in the audio; the phone's own tone pauses meanwhile). Emits `sent`."""
        assert method in ("rfc4733", "info", "inband"), method
        self.send("dtmf", digits=digits, method=method)

    def hold(self, call: int | None = None) -> None:
        """Put the confirmed call (or call `call`) on hold (re-INVITE a=sendonly). The phone keeps sending its tone,
        so a held party that hears music and not this tone proves the PBX replaced the call's audio."""
        self.send("hold", **({} if call is None else {"call": call}))

    def unhold(self) -> None:
        """Take the call off hold (re-INVITE a=sendrecv, PJSUA_CALL_UNHOLD); the tone flows again."""
        self.send("unhold")

    def segment(self, label: str) -> None:
        """From now on also record what the phone hears into its own file (`segment_recording(label)`), until the
        next segment starts or the call ends: a test checks one stretch of a call (e.g. the hold) apart."""
        self.send("segment", label=label)

    def segment_recording(self, label: str) -> Path:
        recs = sorted(self.dir.glob(f"call-*-{label}.wav"), key=lambda p: int(p.stem.split("-")[1]))
        assert recs, f"phone {self.name} recorded no segment {label}"
        return recs[-1]

    def codec(self, timeout: float = 10) -> str:
        """The codec of the call's active audio (e.g. `G722`, `PCMA`), from the phone's stream info."""
        return str(self.wait("media", timeout=timeout, active=True)["codec"])

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


def bands_share(path: Path, freqs: tuple[float, ...] | list[float], skip_s: float = 0.5, width: float = 25) -> float:
    """Share of the recording's energy (after `skip_s`) within +-`width` Hz of any of `freqs`: e.g. how much of what
    a held party heard is the music on hold's notes."""
    import numpy as np
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    samples = data[int(skip_s * rate):, 0]
    if len(samples) < rate // 4:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    hz = np.fft.rfftfreq(len(samples), 1 / rate)
    total = float(spectrum[hz > 50].sum()) or 1e-30
    mask = np.zeros(len(hz), dtype=bool)
    for f in freqs:
        mask |= (hz > f - width) & (hz < f + width)
    return float(spectrum[mask].sum()) / total


def rms(path: Path, skip_s: float = 0.5) -> float:
    """The recording's RMS level after `skip_s` (0.0 for silence; a 0.4 sine is about 0.28)."""
    return tone_levels(path, 1000, skip_s)[1]


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
    ap.add_argument("--transport", default="udp", choices=["udp", "tcp", "tls"])
    ap.add_argument("--codecs", default="")
    ap.add_argument("--ca", default="")
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
    cfg.logConfig.filename = str(work / "sip-trace.log")   # every SIP message sent and received (Phone.sip_messages)
    cfg.medConfig.clockRate = RATE
    cfg.medConfig.sndClockRate = RATE
    cfg.medConfig.ecTailLen = 0
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = opts.port
    tcfg.boundAddress = opts.bind
    tcfg.publicAddress = opts.bind
    ttype = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP,
             "tls": pj.PJSIP_TRANSPORT_TLS}[opts.transport]
    if opts.transport == "tls":
        tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        tcfg.tlsConfig.CaListFile = opts.ca
        tcfg.tlsConfig.verifyServer = bool(opts.ca)
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
            self.segment: Any = None
            self.media: Any = None          # the active audio media (None while not active)
            counter[0] += 1
            self.n = counter[0]

        def start_segment(self, label: str) -> None:
            if self.media is None:
                raise RuntimeError("no active audio to record")
            if self.segment is not None:
                self.media.stopTransmit(self.segment)
            self.segment = pj.AudioMediaRecorder()
            self.segment.createRecorder(str(work / f"call-{self.n}-{label}.wav"))
            keep.append(self.segment)
            self.media.startTransmit(self.segment)

        def onCallState(self, prm: Any) -> None:
            ci = self.getInfo()
            state = {pj.PJSIP_INV_STATE_EARLY: "early", pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
                     pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected"}.get(ci.state)
            if state:
                emit(state, code=ci.lastStatusCode, call=self.n, remote=ci.remoteUri)
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                calls.pop(self.n, None)
                self.recorder = None
                self.segment = None
                self.media = None

        def onCallMediaState(self, prm: Any) -> None:
            ci = self.getInfo()
            for mi in ci.media:
                if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                    continue
                active = mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                try:
                    codec = str(self.getStreamInfo(mi.index).codecName)
                except Exception:          # no stream (e.g. media not yet or no longer up)
                    codec = ""
                emit("media", active=active, status=int(mi.status), call=self.n, codec=codec)
                if active or mi.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD:
                    media = self.getAudioMedia(mi.index)
                    self.media = media
                    if active:
                        player.startTransmit(media)
                    if self.recorder is None:
                        self.recorder = pj.AudioMediaRecorder()
                        self.recorder.createRecorder(str(work / f"call-{self.n}.wav"))
                        keep.append(self.recorder)
                    media.startTransmit(self.recorder)
                    if self.segment is not None:
                        media.startTransmit(self.segment)

        def onDtmfDigit(self, prm: Any) -> None:
            emit("dtmf", digit=prm.digit, call=self.n)

        def onCallTransferStatus(self, prm: Any) -> None:     # the NOTIFYs about a REFER this phone sent
            emit("xfer_status", code=prm.statusCode, final=bool(prm.finalNotify), call=self.n)

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
    tones = pj.ToneGenerator()
    tones.createToneGenerator(RATE, 1)
    resume_tone: list[tuple[float, Any]] = []      # (when, call): inband digits sent, the phone's tone comes back

    def confirmed_calls() -> list[Any]:
        return [c for c in calls.values() if c.getInfo().state == pj.PJSIP_INV_STATE_CONFIRMED]

    def send_dtmf(call: Any, digits: str, method: str) -> None:
        if method == "rfc4733":
            call.dialDtmf(digits)
        elif method == "info":
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            prm.digits = digits
            prm.duration = 200
            call.sendDtmf(prm)
        else:                                      # inband: the tone pairs alone in the audio (no test tone over them)
            if call.media is None:
                raise RuntimeError("no active audio for inband DTMF")
            player.stopTransmit(call.media)
            vector = pj.ToneDigitVector()
            for digit in digits:
                tone = pj.ToneDigit()
                tone.digit = digit
                tone.on_msec, tone.off_msec, tone.volume = 200, 200, 0
                vector.append(tone)
            tones.playDigits(vector)
            tones.startTransmit(call.media)
            resume_tone.append((time.monotonic() + 0.4 * len(digits) + 0.3, call))
        emit("sent", what=f"dtmf {method} {digits}", call=call.n)

    stdin_fd = sys.stdin.fileno()
    pending: list[str] = []                       # commands read, not yet run
    partial = [b""]                                # the start of a command whose line has not ended yet
    emit("ready", address=f"{info.localName}")
    running = True
    while running:
        ep.libHandleEvents(10)
        for item in [r for r in resume_tone if r[0] <= time.monotonic()]:
            resume_tone.remove(item)
            call = item[1]
            if call.media is not None:
                tones.stopTransmit(call.media)
                player.startTransmit(call.media)
        if not pending:
            # read the pipe itself (not sys.stdin's buffer, which could hold a second command select() cannot see)
            readable, _, _ = select.select([stdin_fd], [], [], 0)
            if not readable:
                continue
            chunk = os.read(stdin_fd, 65536)
            if not chunk:
                break
            *lines, partial[0] = (partial[0] + chunk).split(b"\n")
            pending.extend(x.decode() for x in lines if x.strip())
            if not pending:
                continue
        line = pending.pop(0)
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
                if cmd.get("keepalive") is not None:
                    acfg.natConfig.udpKaIntervalSec = int(cmd["keepalive"])
                acfg.mediaConfig.srtpUse = {"disabled": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
                                            "mandatory": pj.PJMEDIA_SRTP_MANDATORY}[cmd.get("srtp", "disabled")]
                acfg.mediaConfig.srtpSecureSignaling = 0      # SDES keys: the test decides the transport
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
                emit("dialing", call=call.n, uri=cmd["uri"])
            elif op == "answer":
                prm = pj.CallOpParam()
                prm.statusCode = 200
                for call in list(calls.values()):
                    if call.getInfo().state in (pj.PJSIP_INV_STATE_INCOMING, pj.PJSIP_INV_STATE_EARLY):
                        call.answer(prm)
            elif op == "hangup" and cmd.get("call") is not None:
                calls[int(cmd["call"])].hangup(pj.CallOpParam(True))
            elif op == "hangup":
                ep.hangupAllCalls()
            elif op == "xfer":                     # blind transfer (REFER) of call n, or of the one confirmed call
                call = calls[int(cmd["call"])] if cmd.get("call") is not None else confirmed_calls()[0]
                call.xfer(cmd["uri"], pj.CallOpParam(True))
                emit("sent", what=f"xfer {cmd['uri']}", call=call.n)
            elif op == "xfer_replaces":            # attended transfer: REFER on call n with Replaces naming call m
                call, other = calls[int(cmd["call"])], calls[int(cmd["to"])]
                call.xferReplaces(other, pj.CallOpParam(True))
                emit("sent", what=f"xfer_replaces {other.n}", call=call.n)
            elif op == "dtmf":
                for call in confirmed_calls():
                    send_dtmf(call, cmd["digits"], cmd.get("method", "rfc4733"))
            elif op == "hold":
                held = [calls[int(cmd["call"])]] if cmd.get("call") is not None else confirmed_calls()
                for call in held:                   # the tone goes on (sendonly): the held side must not hear it
                    call.setHold(pj.CallOpParam(True))
                    emit("sent", what="hold", call=call.n)
            elif op == "unhold":
                for call in confirmed_calls():
                    prm = pj.CallOpParam(True)
                    prm.opt.flag = pj.PJSUA_CALL_UNHOLD
                    call.reinvite(prm)
                    emit("sent", what="unhold", call=call.n)
            elif op == "segment":
                for call in confirmed_calls():
                    call.start_segment(cmd["label"])
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
