"""sipp as a phone, a caller and a carrier in tests: run scenarios from tests/sipp/ on loopback and read what was said.

    sipp = Sipp(tmp_path)                                   # Asterisk at 127.0.0.1:5060 by default
    r = sipp.register("alice", password, domain="vpbx.local").wait()
    assert r.ok and r.final_response("REGISTER") == 200

    carrier = sipp.uas("uas_registrar.xml", keys={"login": "l", "password": "p"})   # background, free port
    ...; res = carrier.stop()                               # graceful stop, then parse its message log
    assert res.requests("REGISTER")[0].header("From").startswith("<sip:l@")

    call = sipp.uac("+380441234567", login="alice", password=pw, hold_ms=3000, dtmf="1#", audio=True)
    assert call.wait().ok and call.wait().saw("BYE")

Every process writes its own -message_file / -error_file / -log_file in the work dir; results parse them into
SipMessage objects (direction, first line, headers, body). Ports are picked free (UDP signalling, RTP pair).
Rule: nothing here knows about vpbx; it is a thin, deterministic wrapper around the sipp binary.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCENARIOS = Path(__file__).parent / "sipp"
PCAP_DIR = Path("/usr/share/sip-tester")
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
_SEPARATOR = re.compile(r"^-{20,} \d{4}-\d\d-\d\d [\d:.]+$", re.M)
_counter = itertools.count(1)


_MEDIA_BASE = 20000 + (os.getpid() % 500) * 16   # above Asterisk's RTP range (10000-20000), below ephemeral ports
_media_next = itertools.count()


def _four_free(host: str, port: int) -> bool:
    """Whether UDP ports port..port+3 on `host` can all be bound right now (RTP, RTCP and sipp's video pair)."""
    socks = []
    try:
        for p in range(port, port + 4):
            t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(t)
            t.bind((host, p))
        return True
    except OSError:
        return False
    finally:
        for t in socks:
            t.close()


def next_media_port(host: str = "127.0.0.1") -> int:
    """An even RTP port with the next three free, handed out in sequence (never twice in one test process), so
    sipp processes started back to back cannot race for the same port as random free ports did."""
    for _ in range(2000):
        port = 20000 + (_MEDIA_BASE - 20000 + 4 * next(_media_next)) % 12000
        if _four_free(host, port):
            return port
    raise RuntimeError("no free RTP port range for sipp")


def free_udp_port(host: str = "127.0.0.1", pair: bool = False) -> int:
    """A UDP port (even, with port+1..port+3 free as well when pair=True, for RTP/RTCP and sipp's video port)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        port -= port % 2
        if port + 3 > 65535:
            continue
        if _four_free(host, port):
            return port
    raise RuntimeError("no free UDP port on loopback")


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class SipMessage:
    direction: str            # "sent" | "received"
    first_line: str
    headers: tuple[tuple[str, str], ...]
    body: str
    timestamp: str = ""

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        """Request method, or the CSeq method of a response."""
        if self.is_request:
            return self.first_line.split(" ", 1)[0]
        return (self.header("CSeq") or " ").split()[-1]

    @property
    def status(self) -> int | None:
        return int(self.first_line.split()[1]) if not self.is_request else None

    @property
    def request_uri(self) -> str | None:
        return self.first_line.split()[1] if self.is_request else None

    def header(self, name: str) -> str | None:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        compact = {"from": "f", "to": "t", "via": "v", "call-id": "i", "contact": "m", "content-length": "l",
                   "content-type": "c"}
        names = {name.lower(), compact.get(name.lower(), name.lower())}
        return [v for k, v in self.headers if k.lower() in names]

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    def __str__(self) -> str:
        return f"{self.direction}: {self.first_line}"


def parse_message_file(text: str) -> list[SipMessage]:
    """sipp's -trace_msg file -> messages in order."""
    out: list[SipMessage] = []
    starts = [m for m in _SEPARATOR.finditer(text)]
    for i, m in enumerate(starts):
        chunk = text[m.end(): starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        lines = chunk.lstrip("\n").split("\n")
        if not lines:
            continue
        info = lines[0]
        direction = "sent" if " sent" in info else "received" if "received" in info else "?"
        rest = lines[1:]
        while rest and not rest[0].strip():
            rest = rest[1:]
        if not rest:
            continue
        first = rest[0].strip()
        headers: list[tuple[str, str]] = []
        j = 1
        while j < len(rest) and rest[j].strip():
            name, _, value = rest[j].partition(":")
            headers.append((name.strip(), value.strip()))
            j += 1
        body = "\n".join(rest[j + 1:]).strip("\n")
        ts = m.group(0).split(" ", 1)[1]
        out.append(SipMessage(direction, first, tuple(headers), body, ts))
    return out


@dataclass
class SippResult:
    returncode: int
    messages: list[SipMessage]
    errors: str
    stdout: str
    stderr: str
    command: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """sipp's verdict: every call of the scenario ended as written (exit code 0)."""
        return self.returncode == 0

    def requests(self, method: str, direction: str | None = None) -> list[SipMessage]:
        return [m for m in self.messages if m.is_request and m.method == method
                and (direction is None or m.direction == direction)]

    def responses(self, code: int | None = None, method: str | None = None,
                  direction: str | None = None) -> list[SipMessage]:
        return [m for m in self.messages if not m.is_request and (code is None or m.status == code)
                and (method is None or m.method == method) and (direction is None or m.direction == direction)]

    def saw(self, what: str | int, direction: str | None = None) -> bool:
        """saw("CANCEL"), saw(486), saw("BYE", "received")."""
        if isinstance(what, int):
            return bool(self.responses(what, direction=direction))
        return bool(self.requests(what, direction))

    def final_response(self, method: str, direction: str = "received") -> int | None:
        codes = [m.status for m in self.responses(method=method, direction=direction) if m.status and m.status >= 200]
        return codes[-1] if codes else None

    def statuses(self, method: str | None = None) -> list[int]:
        return [m.status for m in self.responses(method=method) if m.status is not None]

    def describe(self) -> str:
        """For assertion messages: exit code, the ladder, sipp's errors."""
        ladder = "\n".join(f"  {m}" for m in self.messages) or "  (no SIP messages)"
        return (f"sipp exit {self.returncode}: {' '.join(self.command)}\n{ladder}\n"
                f"errors:\n{self.errors[-3000:]}\nstderr:\n{self.stderr[-2000:]}")


class SippProcess:
    """A running sipp. wait() for a UAC; stop() (graceful quit, like pressing q) or kill() for a UAS."""

    def __init__(self, cmd: list[str], name: str, workdir: Path, port: int, media_port: int) -> None:
        self.cmd = cmd
        self.name = name
        self.port = port
        self.media_port = media_port
        self.message_file = workdir / f"{name}.msg"
        self.error_file = workdir / f"{name}.err"
        self.stdout_file = workdir / f"{name}.out"
        self._out = open(self.stdout_file, "wb")  # noqa: SIM115 - sipp writes to it until _collect() closes it
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
                                     cwd=workdir, start_new_session=True)
        self._result: SippResult | None = None

    @property
    def uri_hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def messages(self) -> list[SipMessage]:
        """What was exchanged so far (the file is flushed per message)."""
        try:
            return parse_message_file(self.message_file.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def wait_for(self, predicate, timeout: float = 15.0, interval: float = 0.1) -> list[SipMessage]:
        """Poll the message log until predicate(messages) is true; returns the messages. TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            if predicate(msgs):
                return msgs
            if time.monotonic() > deadline:
                raise TimeoutError(f"sipp {self.name}: condition not met within {timeout} s; saw:\n"
                                   + "\n".join(f"  {m}" for m in msgs))
            if self.proc.poll() is not None and not predicate(self.messages()):
                raise RuntimeError(f"sipp {self.name} exited ({self.proc.returncode}) before the condition was met:\n"
                                   + self._collect().describe())
            time.sleep(interval)

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 60.0) -> SippResult:
        if self._result is None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise TimeoutError(f"sipp {self.name} still running after {timeout} s:\n"
                                   f"{self._collect().describe()}") from None
        return self._collect()

    def stop(self, timeout: float = 10.0) -> SippResult:
        """Graceful quit (SIGUSR1 = 'q': no new calls, let current ones finish), then kill."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGUSR1)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()
        return self._collect()

    def kill(self) -> SippResult:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        return self._collect()

    def _collect(self) -> SippResult:
        if self._result is not None:
            return self._result
        rc = self.proc.poll()
        self._out.flush()
        text = self.stdout_file.read_text(errors="replace") if self.stdout_file.exists() else ""
        errors = self.error_file.read_text(errors="replace") if self.error_file.exists() else ""
        result = SippResult(rc if rc is not None else -999, self.messages(), errors, text, "", self.cmd)
        if rc is not None:
            self._out.close()
            self._result = result
        return result

    def __enter__(self) -> SippProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def dtmf_pcap(digit: str, index: int, out_dir: Path) -> Path:
    """Debian's RFC 2833 pcap for `digit`, as the `index`-th key of a call: RTP sequence numbers and timestamps rebased.

    The shipped pcaps start at unrelated sequence numbers and timestamps; a receiver drops a key whose packets look
    older than the previous key's (RFC 3550 / RFC 4733), so without this only the first key of a call would count.
    """
    import struct

    name = {"*": "star", "#": "pound"}.get(digit, digit)
    src = PCAP_DIR / f"dtmf_2833_{name}.pcap"
    if not src.exists():
        raise ValueError(f"no RFC 2833 pcap for DTMF {digit!r} ({src})")
    data = bytearray(src.read_bytes())
    off = 24                                            # pcap global header
    first: tuple[int, int] | None = None
    while off < len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        pkt = off + 16
        ihl = (data[pkt + 14] & 0x0F) * 4               # Ethernet (14) + IPv4 header
        rtp = pkt + 14 + ihl + 8                        # + UDP header
        seq, ts = struct.unpack_from("!HI", data, rtp + 2)
        first = first or (seq, ts)
        # each key of a call gets later sequence numbers and timestamps than the one before
        struct.pack_into("!HI", data, rtp + 2, (10000 + 100 * index + seq - first[0]) & 0xFFFF,
                         (100000 + 16000 * index + ts - first[1]) & 0xFFFFFFFF)
        struct.pack_into("!H", data, pkt + 14 + ihl + 6, 0)   # UDP checksum: none
        off = pkt + incl
    out = out_dir / f"dtmf_{name}_{index}.pcap"
    out.write_bytes(bytes(data))
    return out


def _media_section(dtmf: str, audio: bool, gap_ms: int, out_dir: Path) -> str:
    parts = []
    if audio:
        parts.append(f'<nop><action><exec play_pcap_audio="{PCAP_DIR / "g711a.pcap"}"/></action></nop>')
        parts.append(f'<pause milliseconds="{gap_ms}"/>')
    for i, d in enumerate(dtmf):
        pcap = dtmf_pcap(d, i, out_dir)
        parts.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        parts.append(f'<pause milliseconds="{gap_ms}"/>')
    return "\n  ".join(parts)


class Sipp:
    """Factory for sipp processes against one SIP server (Asterisk at remote, default 127.0.0.1:5060)."""

    def __init__(self, workdir: Path, remote: str = "127.0.0.1:5060", local_ip: str = "127.0.0.1") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.remote = remote
        self.local_ip = local_ip
        self.processes: list[SippProcess] = []

    def _scenario(self, scenario: str | Path, media: str = "") -> Path:
        path = Path(scenario)
        if not path.is_absolute() and not path.exists():
            path = SCENARIOS / path
        text = path.read_text()
        if "<!--MEDIA-->" in text:
            out = self.workdir / f"{path.stem}.{next(_counter)}.xml"
            out.write_text(text.replace("<!--MEDIA-->", media))
            return out
        return path

    def _run(self, name: str, scenario: Path, *, remote: str | None, port: int | None, keys: Mapping[str, str],
             extra: Sequence[str], service: str | None = None, auth: tuple[str, str] | None = None,
             hold_ms: int | None = None, calls: int | None = None, ooc: str | Path | None = None,
             rtp_echo: bool = False, transport: str = "udp") -> SippProcess:
        port = port or free_udp_port(self.local_ip)
        media_port = next_media_port(self.local_ip)
        name = f"{name}-{next(_counter)}"
        cmd = [SIPP]
        if remote:
            cmd.append(remote)
        cmd += ["-sf", str(scenario), "-i", self.local_ip, "-p", str(port), "-mi", self.local_ip,
                "-mp", str(media_port), "-t", {"udp": "u1", "tcp": "t1"}[transport], "-nostdin",
                "-trace_msg", "-message_file", str(self.workdir / f"{name}.msg"),
                "-trace_err", "-error_file", str(self.workdir / f"{name}.err"), "-max_recv_loops", "1000",
                "-timeout_error", "-aa"]
        if service is not None:
            cmd += ["-s", service]
        if auth is not None:
            cmd += ["-au", auth[0], "-ap", auth[1]]
        if hold_ms is not None:
            cmd += ["-d", str(hold_ms)]
        if calls is not None:
            cmd += ["-m", str(calls)]
        if ooc is not None:
            cmd += ["-oocsf", str(self._scenario(ooc))]
        if rtp_echo:
            cmd.append("-rtp_echo")
        for k, v in keys.items():
            cmd += ["-key", k, str(v)]
        cmd += list(extra)
        proc = SippProcess(cmd, name, self.workdir, port, media_port)
        self.processes.append(proc)
        return proc

    # ---- UAC -------------------------------------------------------------------------------------------------------
    def uac(self, number: str, *, login: str | None = None, password: str | None = None, from_user: str | None = None,
            domain: str = "vpbx.local", hold_ms: int = 1000, dtmf: str = "", audio: bool = False, gap_ms: int = 400,
            scenario: str | Path = "uac_call.xml", remote: str | None = None, port: int | None = None,
            timeout_s: int = 60, keys: Mapping[str, str] | None = None, extra: Sequence[str] = ()) -> SippProcess:
        """Call `number` (as SIP account `login` with digest auth, or as `from_user` from a trunk's address), hold
        hold_ms after the answer (plus the g711a audio / DTMF pcaps), then BYE. One call; background process."""
        k = {"from_user": from_user or login or "sipp", "domain": domain, **(keys or {})}
        media = _media_section(dtmf, audio, gap_ms, self.workdir)
        return self._run("uac", self._scenario(scenario, media), remote=remote or self.remote, port=port, keys=k,
                         extra=[*extra, "-timeout", f"{timeout_s}s"], service=number,
                         auth=(login, password) if login and password is not None else None, hold_ms=hold_ms, calls=1)

    def register(self, login: str, password: str, *, domain: str = "vpbx.local", expires: int = 300,
                 hold_ms: int = 0, remote: str | None = None, port: int | None = None,
                 ooc: str | Path | None = None, rtp_echo: bool = False,
                 extra: Sequence[str] = ()) -> SippProcess:
        """REGISTER login@domain with digest auth; stay for hold_ms (answering calls with the `ooc` scenario, e.g.
        "uas_answer.xml", meanwhile). Exit code 0 on 200 OK, 1 when the credentials are refused."""
        return self._run("register", self._scenario("register.xml"), remote=remote or self.remote, port=port,
                         keys={"domain": domain, "expires": str(expires)}, extra=[*extra, "-timeout", "120s"],
                         service=login, auth=(login, password), hold_ms=hold_ms, calls=1, ooc=ooc, rtp_echo=rtp_echo)

    # ---- UAS -------------------------------------------------------------------------------------------------------
    def uas(self, scenario: str | Path = "uas_answer.xml", *, port: int | None = None,
            keys: Mapping[str, str] | None = None, rtp_echo: bool = True, transport: str = "udp",
            extra: Sequence[str] = ()) -> SippProcess:
        """A UAS on a free loopback port (proc.port): uas_answer.xml, uas_busy.xml, uas_silent.xml,
        uas_registrar.xml (keys login/password). Runs until stop()/kill(); each dialog (OPTIONS pings included)
        is one sipp "call". transport "udp" or "tcp" (the port is then a TCP listener)."""
        if transport == "tcp" and port is None:
            port = free_tcp_port(self.local_ip)
        return self._run("uas", self._scenario(scenario), remote=None, port=port, keys=dict(keys or {}), extra=extra,
                         rtp_echo=rtp_echo, transport=transport)

    def cleanup(self) -> None:
        for p in self.processes:
            p.kill()


def ladder(messages: Iterable[SipMessage]) -> str:
    return "\n".join(str(m) for m in messages)
