"""vpbx on a system Asterisk (one the admin already runs, with its own config dir): `vpbx asterisk install` adds what
vpbx needs to that config, `vpbx asterisk check` reports what is missing or wrong, each with its fix.

Rule: the admin's files are never rewritten, only added to. vpbx's static objects (from the shipped asterisk-conf/,
read through vpbx.shipped) go into files vpbx owns, `pjsip_vpbx_base.conf` and `extensions_vpbx_base.conf`; the
admin's pjsip.conf, extensions.conf, ari.conf and manager.conf get a marked block of `#tryinclude` lines at their
end; the [general] sections of http.conf, manager.conf and ari.conf get the few settings vpbx needs (ARI/AMI on
loopback), added right under their header. An admin line is never deleted: one that conflicts is commented out as
`; vpbx: disabled (...): <the line>`. The whole change is planned in memory first (a planning error writes
nothing); each admin file that changes is backed up (`NAME.vpbx-backup-<UTC time>`) and written atomically with its
owner and mode kept; a failure while writing puts back what was already written. A second run changes nothing.

The brute-force bans (vpbx.asterisk.security) live in vpbx's own directory, vpbx-bans/, included by the generated
pjsip_vpbx.conf; install removes the bans file an older vpbx kept straight in the config dir (nothing includes it
once pjsip_vpbx.conf is regenerated), and check reports a pjsip_vpbx.conf still including it from there.
"""
from __future__ import annotations

import asyncio
import glob
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vpbx import shipped
from vpbx.asterisk.render import FILES, SECRET_FILES
from vpbx.asterisk.render.security import BANS_DIR, BANS_FILE, BANS_NAME, OLD_BANS_FILE
from vpbx.config import Config, atomic_write, owner_for, shown
from vpbx.domain import validation as validate
from vpbx.domain.errors import AsteriskError, ConfigError, ValidationError
from vpbx.domain.records import Number, SipAccount, Trunk

MIN_VERSION = 22
PJSIP_BASE = "pjsip_vpbx_base.conf"
EXTENSIONS_BASE = "extensions_vpbx_base.conf"
BASE_FILES = (PJSIP_BASE, EXTENSIONS_BASE)
VPBX_FILES = frozenset(BASE_FILES) | frozenset(FILES) | {BANS_NAME}
# the admin's file -> the vpbx files it must include, in order
INCLUDES: dict[str, tuple[str, ...]] = {
    "pjsip.conf": (PJSIP_BASE, "pjsip_vpbx.conf"),
    "extensions.conf": (EXTENSIONS_BASE, "extensions_vpbx.conf"),
    "ari.conf": ("ari_vpbx.conf",),
    "manager.conf": ("manager_vpbx.conf",),
    "rtp.conf": ("rtp_vpbx.conf",),
    "musiconhold.conf": ("musiconhold_vpbx.conf",),
}
# what makes a directory an Asterisk config dir (Asterisk cannot start without the first; Debian ships both)
MARKER_FILES = ("asterisk.conf", "modules.conf")
UDP_TRANSPORT = "transport-udp"      # the name the generated trunk endpoints use (vpbx.asterisk.render.pjsip)
EXTERNAL_ENDPOINT = "vpbx-external"  # the engine dials uri: destinations through it (vpbx.engine.actions)
VPBX_CONTEXTS = ("vpbx-unknown", "vpbx-inbound", "vpbx-outbound", "vpbx-hints")
BACKUP_INFIX = ".vpbx-backup-"
MARK = "; vpbx:"
INCLUDE_COMMENT = (f"{MARK} added by `vpbx asterisk install` (vpbx's objects; keep these lines, "
                   f"`vpbx asterisk check` verifies them)")
SETTINGS_COMMENT = f"{MARK} set by `vpbx asterisk install` (vpbx needs these; `vpbx asterisk check` verifies them)"
BASE_HEADER = ("; vpbx: written by `vpbx asterisk install` from vpbx's asterisk-conf/{src}; do not edit, it is "
               "overwritten.\n; Included from {src} by the `#tryinclude {name}` line vpbx added there.\n")
# Modules vpbx uses: SIP (accounts, trunks, registration, digest auth, identification), the dialplan's Stasis()
# and CHANNEL(), ARI (channels, bridges, playbacks, recordings, events), RTP with RFC 4733 DTMF, the prompts' codec.
REQUIRED_MODULES = (
    "res_pjsip", "chan_pjsip", "res_pjsip_session", "res_pjsip_authenticator_digest",
    "res_pjsip_outbound_authenticator_digest", "res_pjsip_endpoint_identifier_user",
    "res_pjsip_endpoint_identifier_ip", "res_pjsip_registrar", "res_pjsip_outbound_registration",
    "res_rtp_asterisk", "pbx_config", "app_stasis", "func_channel", "res_http_websocket",
    "res_stasis", "res_ari", "res_ari_channels", "res_ari_bridges", "res_ari_playbacks", "res_ari_recordings",
    "res_ari_events", "res_ari_asterisk", "res_ari_applications", "res_stasis_playback", "res_stasis_recording",
    "res_stasis_answer", "bridge_simple", "bridge_softmix", "codec_ulaw", "codec_alaw", "format_wav",
)
AMI_TIMEOUT = 5.0
_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_HEADER_RE = re.compile(r"^\s*\[([^\]]*)\]\s*(?:\(([^)]*)\))?")
_INCLUDE_RE = re.compile(r"^\s*#\s*(try)?include\s+[\"<]?([^\"<>]+?)[\">]?\s*$")
_OPTION_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*=>?\s*(.*?)\s*$")
_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})


# ---- reading Asterisk config text ------------------------------------------------------------------------------
def _strip(line: str) -> str:
    """The line without its comment (`;` not escaped as `\\;`), stripped."""
    return re.split(r"(?<!\\);", line, maxsplit=1)[0].strip()


def _code_lines(lines: Sequence[str]) -> list[tuple[int, str]]:
    """(index, text without comments) of every line that is not blank, a comment or inside a ;-- --; block."""
    out: list[tuple[int, str]] = []
    in_block = False
    for i, raw in enumerate(lines):
        line = raw
        if in_block:
            if "--;" not in line:
                continue
            line = line.split("--;", 1)[1]
            in_block = False
        if ";--" in line:
            before, after = line.split(";--", 1)
            if "--;" not in after:
                in_block = True
            line = before
        text = _strip(line)
        if text:
            out.append((i, text))
    return out


@dataclass
class Section:
    name: str
    template: bool                       # `[name](!)`: a template, not an object
    inherits: tuple[str, ...]
    start: int                           # index of the header line
    end: int                             # index after its last line
    options: list[tuple[int, str, str]] = field(default_factory=list)   # (line index, key, value)

    def get(self, key: str) -> str | None:
        found = [v for _, k, v in self.options if k == key]
        return found[-1] if found else None


def _sections(lines: Sequence[str]) -> list[Section]:
    sections: list[Section] = []
    for i, text in _code_lines(lines):
        header = _HEADER_RE.match(text)
        if header:
            if sections:
                sections[-1].end = i
            flags = [f.strip() for f in (header.group(2) or "").split(",") if f.strip()]
            sections.append(Section(header.group(1).strip(), "!" in flags,
                                    tuple(f for f in flags if f not in ("!", "+")), i, len(lines)))
            continue
        option = _OPTION_RE.match(text)
        if option and sections:
            sections[-1].options.append((i, option.group(1).lower(), option.group(2)))
    return sections


def _includes(lines: Sequence[str]) -> list[str]:
    """The file names the #include / #tryinclude lines of a file name (comments excluded)."""
    out = []
    for _, text in _code_lines(lines):
        m = _INCLUDE_RE.match(text)
        if m:
            out.append(m.group(2).strip())
    return out


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")     # any byte the admin wrote survives the round trip


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# ---- the config dir ----------------------------------------------------------------------------------------------
def _fix_dir() -> str:
    return "give --config-dir, or set [asterisk] config_dir in vpbx.toml, to Asterisk's config dir (/etc/asterisk)"


def config_dir_of(cfg: Config, config_dir: Path | str | None) -> Path:
    """The Asterisk config dir to work on, checked: a readable directory holding asterisk.conf or modules.conf."""
    path = Path(config_dir) if config_dir is not None else Path(cfg.asterisk_config_dir)
    where = f"Asterisk config dir {shown(path)}"
    try:
        if not path.exists():
            raise ConfigError(f"{where} does not exist; {_fix_dir()}")
        if not path.is_dir():
            raise ConfigError(f"{where} is not a directory; {_fix_dir()}")
        names = set(os.listdir(path))
    except PermissionError:
        raise ConfigError(f"{where} is not readable (permission denied); run as root or as Asterisk's user") from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read ({exc.strerror or exc}); {_fix_dir()}") from None
    if not any(name in names for name in MARKER_FILES):
        raise ConfigError(f"{where} is not an Asterisk config dir (it has no {' or '.join(MARKER_FILES)}); "
                          f"{_fix_dir()}")
    return path


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"{shown(path)} is a directory, not a config file; move it away") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {shown(path)} ({exc.strerror or exc}); run as root or as Asterisk's "
                          f"user") from None


def _admin_lines(config_dir: Path, name: str) -> list[str]:
    """The lines of the admin's `name` and of every file it includes, recursively (vpbx's own files left out)."""
    out: list[str] = []
    seen: set[Path] = set()

    def read(path: Path, depth: int) -> None:
        if depth > 8 or path in seen:
            return
        seen.add(path)
        data = _read(path)
        if data is None:
            return
        lines = _lines(_decode(data))
        out.extend(lines)
        for inc in _includes(lines):
            pattern = inc if inc.startswith("/") else str(config_dir / inc)
            for found in sorted(glob.glob(pattern)):
                if Path(found).name not in VPBX_FILES and Path(found).is_file():
                    read(Path(found), depth + 1)

    read(config_dir / name, 0)
    return out


# ---- the shipped base config ---------------------------------------------------------------------------------------
def _blocks(text: str) -> dict[str, list[str]]:
    """Sections of a shipped file by name: the comment lines right above the header (except above the first: they
    describe the file), the header, the options (a name used twice - an endpoint and its identify - keeps both)."""
    lines = _lines(text)
    starts = [i for i, line in enumerate(lines) if _HEADER_RE.match(line)]
    out: dict[str, list[str]] = {}
    for n, start in enumerate(starts):
        first = start
        while n > 0 and lines[first - 1].lstrip().startswith(";"):     # the first one's are the file's header
            first -= 1
        last = starts[n + 1] if n + 1 < len(starts) else len(lines)
        while last > start + 1 and (not lines[last - 1].strip() or lines[last - 1].lstrip().startswith(";")):
            last -= 1
        m = _HEADER_RE.match(lines[start])
        assert m is not None
        out.setdefault(m.group(1).strip(), []).extend(lines[first:last])
    return out


def _shipped(name: str) -> dict[str, list[str]]:
    path = shipped.asterisk_conf_dir() / name
    try:
        return _blocks(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"vpbx's base config {shown(path)} cannot be read ({exc.strerror or exc}); "
                          f"reinstall vpbx") from None


def _set(block: list[str], key: str, value: str) -> list[str]:
    out, done = [], False
    for line in block:
        m = _OPTION_RE.match(_strip(line))
        if m and m.group(1).lower() == key and not _HEADER_RE.match(line):
            out.append(f"{key} = {value}\n")
            done = True
        else:
            out.append(line)
    if not done:
        raise ConfigError(f"vpbx's base config has no {key} to set; reinstall vpbx")
    return out


def _only(block: list[str], keep: Callable[[str], bool]) -> list[str]:
    return [line for line in block if not (m := _OPTION_RE.match(_strip(line))) or _HEADER_RE.match(line)
            or keep(m.group(1).lower())]


@dataclass(frozen=True)
class Transport:
    name: str
    provided: bool          # True: vpbx defines it in pjsip_vpbx_base.conf; False: the admin's, reused
    bind: str


def _bind_port(bind: str) -> int | None:
    bind = bind.strip()
    if bind.startswith("["):
        _, _, rest = bind.partition("]")
        return int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 5060
    if bind.count(":") == 1:
        port = bind.rsplit(":", 1)[1]
        return int(port) if port.isdigit() else None
    return 5060


def _objects(sections: list[Section]) -> list[Section]:
    """Sections that are objects, each with the options of the templates it inherits merged in front."""
    templates = {s.name: s for s in sections if s.template}
    out = []
    for s in sections:
        if s.template:
            continue
        opts: list[tuple[int, str, str]] = []
        for parent in s.inherits:
            if parent in templates:
                opts += templates[parent].options
        out.append(Section(s.name, False, s.inherits, s.start, s.end, opts + s.options))
    return out


def choose_transport(pjsip_lines: Sequence[str], cfg: Config) -> Transport:
    """The UDP transport vpbx's endpoints use. The admin's transport named transport-udp (the name the generated
    trunks dial through) or, failing that, the admin's UDP transport on vpbx's SIP port is reused - two transports
    cannot share a port; otherwise vpbx provides transport-udp on [sip] bind:port (in the generated
    pjsip_vpbx.conf, vpbx.asterisk.render.transports)."""
    return _reused(pjsip_lines, cfg).get("udp") or Transport(UDP_TRANSPORT, True,
                                                              _hostport(cfg.sip_bind, cfg.sip_port))


def _reused(pjsip_lines: Sequence[str], cfg: Config) -> dict[str, Transport]:
    transports = [s for s in _objects(_sections(pjsip_lines)) if (s.get("type") or "").lower() == "transport"]
    found: dict[str, Transport] = {}
    for kind in ("udp", "tcp", "tls"):
        port = cfg.sip.tls_port if kind == "tls" else cfg.sip_port
        named = [s for s in transports if s.name == f"transport-{kind}"]
        on_port = [s for s in transports if (s.get("protocol") or "udp").lower() == kind
                   and _bind_port(s.get("bind") or "0.0.0.0") == port]
        for s in named + on_port:
            if not _NAME_RE.fullmatch(s.name):
                raise ConfigError(f"pjsip.conf: transport [{validate.plain(s.name)}] has a name vpbx cannot "
                                  f"reference; rename it (letters, digits, '_', '.', '-')")
            found[kind] = Transport(s.name, False, s.get("bind") or "0.0.0.0")
            break
    return found


def reused_transports(cfg: Config, config_dir: Path | str | None = None) -> dict[str, Transport]:
    """kind (udp/tcp/tls) -> the Asterisk config's own transport vpbx uses instead of rendering one: a transport named
    transport-KIND, or one of that protocol on vpbx's port for it ([sip] port; tls_port) - two transports cannot share
    a port. Read from pjsip.conf and the files it includes, vpbx's own files left out; a missing pjsip.conf has none."""
    target = Path(config_dir) if config_dir is not None else Path(cfg.asterisk_config_dir)
    return _reused(_admin_lines(target, "pjsip.conf"), cfg)


def _hostport(host: str, port: int) -> str:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None:
        with validate.about("vpbx config [sip] bind"):
            validate.host(host)
    validate.port(port)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render_pjsip_base(cfg: Config, admin_pjsip: Sequence[str]) -> tuple[str, Transport, bool]:
    """pjsip_vpbx_base.conf: vpbx's [global] (only when the admin has none: Asterisk allows one) and the
    outgoing-only endpoint vpbx-external on the UDP transport (the admin's, reused, or vpbx's transport-udp in the
    generated pjsip_vpbx.conf). -> (text, transport, whether vpbx's global is in it)."""
    blocks = _shipped("pjsip.conf")
    transport = choose_transport(admin_pjsip, cfg)
    admin_global = any((s.get("type") or "").lower() == "global" for s in _objects(_sections(admin_pjsip)))
    with validate.about("vpbx config [vpbx] domain"):
        realm = validate.host(cfg.domain)
    parts = [BASE_HEADER.format(src="pjsip.conf", name=PJSIP_BASE)]
    if not admin_global:
        parts += ["\n", *_set(_only(blocks["global"], lambda k: k != "user_agent"), "default_realm", realm)]
    parts += ["\n", *_set(blocks[EXTERNAL_ENDPOINT], "transport", transport.name)]
    return "".join(parts), transport, not admin_global


def render_extensions_base() -> str:
    """extensions_vpbx_base.conf: the context unknown peers land in ([vpbx-unknown]: "no service", hang up)."""
    blocks = _shipped("extensions.conf")
    return "".join([BASE_HEADER.format(src="extensions.conf", name=EXTENSIONS_BASE), "\n", *blocks["vpbx-unknown"]])


# ---- the [general] settings vpbx needs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    key: str
    value: str                       # what vpbx writes
    accepts: Callable[[str], bool]   # an admin value that is fine as it is
    why: str
    add: bool = True                 # False: Asterisk's default is fine, only a conflicting value is neutralised


def _truthy(value: str) -> bool:
    return value.strip().lower() in _TRUE


def _is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(bind: str) -> str:
    """The address of `host[:port]` / `[v6][:port]`."""
    bind = bind.strip()
    if bind.startswith("["):
        return bind[1:].split("]", 1)[0]
    return bind.rsplit(":", 1)[0] if bind.count(":") == 1 else bind


def _is_wildcard(host: str) -> bool:
    return host.strip().strip("[]") in ("0.0.0.0", "::")


def ari_address(cfg: Config) -> tuple[str, int]:
    """(host, port) of vpbx's ARI URL; it must be plain HTTP on loopback (the ARI password travels in clear)."""
    try:
        parts = urlsplit(cfg.ari.url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port or 8088
    except (ValueError, TypeError):
        scheme, host, port = "", None, 0
    if scheme != "http" or not host or not _is_loopback(host):
        raise ConfigError(f"vpbx config [ari] url {validate.shown(cfg.ari.url)} must be http:// on a loopback "
                          f"address (ARI's password travels in clear); e.g. http://127.0.0.1:8088")
    validate.port(port)
    return host, port


def ami_address(cfg: Config) -> tuple[str, int]:
    if not _is_loopback(cfg.ami.host):
        raise ConfigError(f"vpbx config [ami] host {validate.shown(cfg.ami.host)} must be a loopback address "
                          f"(vpbx's AMI user is permitted from 127.0.0.1 only); e.g. 127.0.0.1")
    return cfg.ami.host, validate.port(cfg.ami.port)


def required_settings(cfg: Config) -> dict[str, tuple[Setting, ...]]:
    """file -> the [general] settings vpbx needs in it."""
    ari_host, ari_port = ari_address(cfg)
    ami_host, ami_port = ami_address(cfg)
    for host in (ari_host, ami_host):
        if host != "localhost":
            ipaddress.ip_address(host)     # a literal address (checked above), safe in a config file
    return {
        "http.conf": (
            Setting("enabled", "yes", _truthy, "the HTTP server carries ARI"),
            Setting("bindaddr", ari_host, lambda v: v.strip() == ari_host,
                    f"ARI must listen on loopback only ({ari_host}, vpbx config [ari] url)"),
            Setting("bindport", str(ari_port), lambda v: v.strip() == str(ari_port),
                    f"vpbx config [ari] url says port {ari_port}"),
        ),
        "manager.conf": (
            Setting("enabled", "yes", _truthy, "`vpbx reload` and `vpbx asterisk check` use AMI"),
            Setting("bindaddr", ami_host, lambda v: v.strip() == ami_host or _is_wildcard(v),
                    f"vpbx logs in to AMI on {ami_host}"),
            Setting("port", str(ami_port), lambda v: v.strip() == str(ami_port),
                    f"vpbx config [ami] port says {ami_port}"),
        ),
        "ari.conf": (
            Setting("enabled", "yes", _truthy, "the call engine is an ARI application", add=False),
        ),
    }


def _general_edit(lines: list[str], settings: Sequence[Setting]) -> tuple[list[str], list[str]]:
    """Make the first [general] section hold `settings`: conflicting admin lines commented out (`; vpbx:`), missing
    settings added under the header. -> (new lines, what changed)."""
    general = next((s for s in _sections(lines) if s.name.lower() == "general" and not s.template), None)
    out = list(lines)
    changes: list[str] = []
    missing: list[Setting] = []
    for st in settings:
        found = [(i, v) for i, k, v in (general.options if general else []) if k == st.key]
        bad = [i for i, v in found if not st.accepts(v)]
        for i in bad:
            original = out[i].rstrip("\r\n")
            out[i] = f"{MARK} disabled ({st.key} = {st.value}: {st.why}): {original}\n"
            changes.append(f"`{original.strip()}` commented out in [general] ({st.why})")
        if len(bad) == len(found) and st.add:
            missing.append(st)
    if missing:
        added = [f"{st.key} = {st.value}\n" for st in missing]
        changes += [f"`{st.key} = {st.value}` in [general] ({st.why})" for st in missing]
        block = [f"{SETTINGS_COMMENT}\n", *added]
        if general is None:
            if out and not out[-1].endswith("\n"):
                out[-1] += "\n"
            out += ["\n" if out else "", "[general]\n", *block]
        else:
            out[general.start + 1:general.start + 1] = block
    return out, changes


def _include_edit(lines: list[str], names: Sequence[str]) -> tuple[list[str], list[str]]:
    present = {Path(inc).name for inc in _includes(lines)}
    missing = [n for n in names if n not in present]
    if not missing:
        return lines, []
    out = list(lines)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out += ["\n" if out else "", f"{INCLUDE_COMMENT}\n", *[f"#tryinclude {n}\n" for n in missing]]
    return out, [f"`#tryinclude {n}` at the end" for n in missing]


# ---- the plan ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileChange:
    name: str
    old: bytes | None             # None: a new file
    new: bytes | None             # None: the file is removed (a leftover of an older vpbx)
    changes: tuple[str, ...]
    owned: bool                   # a vpbx file (no backup: it is vpbx's to overwrite)
    mode: int


@dataclass(frozen=True)
class Plan:
    config_dir: Path
    files: tuple[FileChange, ...]          # only the files that change
    notes: tuple[str, ...]
    transport: Transport


def _clashes(config_dir: Path, cfg: Config) -> list[str]:
    """Names vpbx defines that the admin's files define too (Asterisk would merge or reject them)."""
    found = []
    pjsip = {s.name for s in _sections(_admin_lines(config_dir, "pjsip.conf"))}
    if EXTERNAL_ENDPOINT in pjsip:
        found.append(f"pjsip.conf already defines [{EXTERNAL_ENDPOINT}], the endpoint vpbx dials uri: destinations "
                     f"through; rename the admin's section")
    contexts = {s.name for s in _sections(_admin_lines(config_dir, "extensions.conf"))}
    for ctx in VPBX_CONTEXTS:
        if ctx in contexts:
            found.append(f"extensions.conf already defines the context [{ctx}], which vpbx owns; rename it")
    for name, user, key in (("manager.conf", cfg.ami.user, "[ami] user"), ("ari.conf", cfg.ari.user, "[ari] user")):
        if user in {s.name for s in _sections(_admin_lines(config_dir, name))}:
            found.append(f"{name} already has a section [{validate.plain(user)}], the user vpbx logs in as; rename "
                         f"it, or set another {key} in vpbx.toml")
    return found


def plan(cfg: Config, config_dir: Path, generated: dict[str, str] | None = None) -> Plan:
    """Everything install would change in config_dir (nothing is written). `generated`: the *_vpbx.conf files to
    write too (name -> text), None to leave them alone."""
    clashes = _clashes(config_dir, cfg)
    if clashes:
        raise ConfigError(clashes[0])
    files: list[FileChange] = []
    notes: list[str] = []

    def add(name: str, new_text: str, changes: Sequence[str], owned: bool, mode: int) -> None:
        old = _read(config_dir / name)
        new = _encode(new_text)
        if old != new:
            files.append(FileChange(name, old, new, tuple(changes) or ("rewritten",), owned,
                                    _mode_of(config_dir / name, mode)))

    base_text, transport, own_global = render_pjsip_base(cfg, _admin_lines(config_dir, "pjsip.conf"))
    if not transport.provided:
        notes.append(f"SIP: reusing the admin's transport [{transport.name}] ({transport.bind}); vpbx adds none")
        if transport.name != UDP_TRANSPORT:
            notes.append(f"SIP: trunks with --transport udp dial through a transport named {UDP_TRANSPORT}; rename "
                         f"[{transport.name}] to [{UDP_TRANSPORT}] before adding one")
        if _bind_port(transport.bind) != cfg.sip_port:
            notes.append(f"SIP: [{transport.name}] binds {transport.bind}, but vpbx config [sip] port is "
                         f"{cfg.sip_port}; make them agree")
    else:
        notes.append(f"SIP: vpbx provides [{UDP_TRANSPORT}] on {transport.bind} (udp) in pjsip_vpbx.conf (from "
                     f"vpbx.toml [sip])")
    if not own_global:
        notes.append("SIP: the admin's pjsip.conf has its own type=global; vpbx adds none (it recommends "
                     "endpoint_identifier_order = username,ip there, so phones are never taken for a carrier)")
    add(PJSIP_BASE, base_text, [f"vpbx's static PJSIP objects ({EXTERNAL_ENDPOINT}"
                                + (", global" if own_global else "") + ")"], True, 0o644)
    add(EXTENSIONS_BASE, render_extensions_base(), ["vpbx's static dialplan ([vpbx-unknown])"], True, 0o644)
    settings = required_settings(cfg)
    for name in dict.fromkeys([*INCLUDES, *settings]):     # every admin file vpbx adds an include or a setting to
        old = _read(config_dir / name)
        lines = _lines(_decode(old)) if old is not None else []
        changes: list[str] = []
        if name == "rtp.conf" and not any(s.name.lower() == "general" and not s.template for s in _sections(lines)):
            # rtp_vpbx.conf adds its port range to [general] ([general](+)), which must exist
            lines = ["[general]\n", *lines]
            changes.append("`[general]` at the top (rtp_vpbx.conf adds the RTP port range to it)")
        if name in settings:
            lines, done = _general_edit(lines, settings[name])
            changes += done
        if name in INCLUDES:
            lines, done = _include_edit(lines, INCLUDES[name])
            changes += done
        if changes:
            add(name, "".join(lines), changes, False, 0o640)
    for name, text in (generated or {}).items():
        add(name, text, ["generated from the database"], True, 0o640 if name in SECRET_FILES else 0o644)
    leftover = _read(config_dir / OLD_BANS_FILE)
    if leftover is not None:
        files.append(FileChange(OLD_BANS_FILE, leftover, None,
                                (f"removal (an older vpbx kept the brute-force bans here; they are in {BANS_FILE} "
                                 f"now, rewritten from the database by `vpbx serve`)",), True,
                                _mode_of(config_dir / OLD_BANS_FILE, 0o644)))
    return Plan(config_dir, tuple(files), tuple(notes), transport)


def _mode_of(path: Path, default: int) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return default


# ---- writing -----------------------------------------------------------------------------------------------------
def _writable(config_dir: Path, files: Iterable[FileChange]) -> None:
    if not os.access(config_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"Asterisk config dir {shown(config_dir)} is not writable; run as root (or as its owner)")
    for f in files:
        path = config_dir / f.name
        if path.exists() and not os.access(path, os.W_OK):
            raise ConfigError(f"{shown(path)} is not writable; run as root, or make it writable (and re-run)")


@dataclass(frozen=True)
class Installed:
    config_dir: Path
    changed: tuple[tuple[FileChange, Path | None], ...]      # (change, its backup)
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config_dir": str(self.config_dir),
            "changed": [{"file": f.name, "created": f.old is None, "backup": str(b) if b else None,
                         "changes": list(f.changes)} for f, b in self.changed],
            "notes": list(self.notes),
        }


def apply(p: Plan, now: datetime | None = None) -> Installed:
    """Write the plan: back up each admin file that changes, then write every file atomically. A failure puts back
    what was already written and removes the backups made (ConfigError naming the file)."""
    _writable(p.config_dir, p.files)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    done: list[tuple[FileChange, Path | None]] = []
    backups: list[Path] = []
    try:
        for f in p.files:
            path = p.config_dir / f.name
            owner = owner_for(path, p.config_dir)
            backup = None
            if f.old is not None and not f.owned:
                backup = path.with_name(f"{f.name}{BACKUP_INFIX}{stamp}")
                n = 1
                while backup.exists():
                    backup = path.with_name(f"{f.name}{BACKUP_INFIX}{stamp}.{n}")
                    n += 1
                atomic_write(backup, f.old, mode=f.mode, owner=owner)
                backups.append(backup)
            if f.new is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, f.new, mode=f.mode, owner=owner)
            done.append((f, backup))
    except OSError as exc:
        for f, _ in reversed(done):
            path = p.config_dir / f.name
            try:
                if f.old is None:
                    path.unlink(missing_ok=True)
                else:
                    atomic_write(path, f.old, mode=f.mode, owner=owner_for(path, p.config_dir))
            except OSError:
                pass
        for b in backups:
            b.unlink(missing_ok=True)
        failed = p.config_dir / (p.files[len(done)].name if len(done) < len(p.files) else "")
        raise ConfigError(f"cannot write {shown(failed)} ({exc.strerror or exc}); nothing was changed - make the "
                          f"config dir writable and run `vpbx asterisk install` again") from None
    return Installed(p.config_dir, tuple(done), p.notes)


def install(cfg: Config, records: tuple[Sequence[Number], Sequence[SipAccount], Sequence[Trunk]],
            config_dir: Path | str | None = None) -> Installed:
    """`vpbx asterisk install`: plan (base files, includes, [general] settings, the generated *_vpbx.conf so Asterisk
    boots with vpbx's AMI/ARI users), then apply."""
    target = config_dir_of(cfg, config_dir)
    from vpbx.asterisk.deploy import render_install

    generated = render_install(cfg, *records, config_dir=target)
    return apply(plan(cfg, target, generated))


# ---- check -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    what: str
    ok: bool
    detail: str = ""
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.what, "ok": self.ok, "detail": self.detail, "fix": self.fix}


INSTALL_FIX = "run `vpbx asterisk install`, then restart Asterisk"


def check_config(cfg: Config, config_dir: Path | str | None = None) -> list[Item]:
    """What the config dir lacks: install's pending changes (each one an item), name clashes, the generated files,
    HTTPS on a non-loopback address, vpbx files Asterisk's user cannot read."""
    try:
        target = config_dir_of(cfg, config_dir)
    except ConfigError as exc:
        return [Item("Asterisk config dir", False, str(exc), "point vpbx at Asterisk's config dir")]
    items = [Item("Asterisk config dir", True, str(target))]
    clashes = _clashes(target, cfg)
    items += [Item("names vpbx owns", False, c, "rename the admin's section") for c in clashes]
    if not clashes:
        try:
            pending = plan(cfg, target)
        except (ConfigError, ValidationError) as exc:
            items.append(Item("vpbx config", False, str(exc), "fix vpbx.toml"))
        else:
            for f in pending.files:
                for change in f.changes:
                    what = f"{f.name} (missing)" if f.old is None else f.name
                    items.append(Item(what, False, f"needs {change}", INSTALL_FIX))
            if not pending.files:
                items.append(Item("includes, base files and [general] settings", True,
                                  ", ".join(f"{k}: {', '.join(v)}" for k, v in INCLUDES.items())))
    for name in FILES:
        path = target / name
        if path.is_file():
            items.append(_readable_item(target, path))
        else:
            items.append(Item(f"{name} (generated)", False, f"{shown(path)} is missing",
                              "run `vpbx reload` (or `vpbx config generate`)"))
    items += _bans_items(target)
    items += _tls_items(cfg, target)
    http = next((s for s in _sections(_lines(_decode(_read(target / "http.conf") or b"")))
                 if s.name.lower() == "general"), None)
    if http is not None and _truthy(http.get("tlsenable") or "no") \
            and not _is_loopback(_host_of(http.get("tlsbindaddr") or "0.0.0.0")):
        items.append(Item("http.conf HTTPS bound to loopback only", False,
                          f"tlsenable = yes with tlsbindaddr {http.get('tlsbindaddr') or '(default: all)'}: ARI "
                          f"is reachable from the network over HTTPS",
                          "set tlsbindaddr = 127.0.0.1:8089 in http.conf [general] (or tlsenable = no)"))
    return items


def _bans_items(config_dir: Path) -> list[Item]:
    """The brute-force bans reach Asterisk: pjsip_vpbx.conf includes them from vpbx-bans/ (one generated by an older
    vpbx includes them from the config dir itself, where the engine's unit cannot write), and Asterisk's user can
    read that directory and the file in it."""
    what = f"brute-force bans ({BANS_FILE})"
    items: list[Item] = []
    try:
        generated = (config_dir / "pjsip_vpbx.conf").read_bytes()
    except OSError:
        generated = None          # missing or unreadable: reported above
    if generated is not None and BANS_FILE not in _includes(_lines(_decode(generated))):
        items.append(Item(what, False, f"pjsip_vpbx.conf does not include {BANS_FILE} (generated by an older "
                                       f"vpbx?): Asterisk does not enforce the bans `vpbx serve` makes",
                          "run `vpbx reload` (or `vpbx config generate`)"))
    directory = config_dir / BANS_DIR
    if not directory.exists() and not directory.is_symlink():
        items.append(Item(what, True, f"{shown(directory)} is not there yet: `vpbx service install` makes it (an "
                                      f"engine run by hand makes it at its first ban)"))
        return items
    if directory.is_symlink() or not directory.is_dir():
        items.append(Item(what, False, f"{shown(directory)} is not a directory", f"remove {shown(directory)} and "
                          f"run `vpbx service install` again (it makes the directory for the service user)"))
        return items
    for path, need in ((directory, 0o5), (directory / BANS_NAME, 0o4)):
        if path.exists() and not _readable_by_asterisk(config_dir, path, need):
            ref = _asterisk_ref(config_dir).stat()
            bits = "rx" if need == 0o5 else "r"
            items.append(Item(what, False, f"{shown(path)} is not readable by Asterisk's user (uid {ref.st_uid}, "
                                           f"gid {ref.st_gid})",
                              f"chgrp {ref.st_gid} {shown(path)} && chmod g+{bits} {shown(path)}"))
    if not items:
        items.append(Item(what, True, shown(directory / BANS_NAME)))
    return items


def _asterisk_ref(config_dir: Path) -> Path:
    """What tells Asterisk's user: the owner of the config dir's asterisk.conf (or of the dir)."""
    return next((p for p in (config_dir / "asterisk.conf", config_dir) if p.exists()), config_dir)


def _readable_by_asterisk(config_dir: Path, path: Path, need: int = 0o4) -> bool:
    """`need` (0o4: read; 0o5: read and search, a directory) granted to Asterisk's user by `path`'s mode."""
    want, st = _asterisk_ref(config_dir).stat(), path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if want.st_uid == 0:
        return True
    for shift, applies in ((6, st.st_uid == want.st_uid), (3, st.st_gid == want.st_gid), (0, True)):
        if applies:
            return (mode >> shift) & need == need
    return False


def _tls_items(cfg: Config, config_dir: Path) -> list[Item]:
    """[sip] tls_cert / tls_key (when given) are PEM files Asterisk's user can read (else its TLS transport fails)."""
    from vpbx.config import check_tls_files

    if not (cfg.sip.tls_cert and cfg.sip.tls_key):
        return []
    try:
        check_tls_files(cfg)
    except ConfigError as exc:
        return [Item("SIP TLS certificate and key", False, str(exc), "fix [sip] tls_cert / tls_key in vpbx.toml")]
    out = []
    for key in ("tls_cert", "tls_key"):
        item = _readable_item(config_dir, Path(getattr(cfg.sip, key)))
        out.append(replace(item, what=f"[sip] {key} readable by Asterisk"))
    return out


def _readable_item(config_dir: Path, path: Path) -> Item:
    """A vpbx file must be readable by Asterisk's user: the owner of the config dir's asterisk.conf (or the dir)."""
    want, st = _asterisk_ref(config_dir).stat(), path.stat()
    mode = stat.S_IMODE(st.st_mode)
    readable = (want.st_uid == 0 or st.st_uid == want.st_uid or (st.st_gid == want.st_gid and mode & 0o040)
                or mode & 0o004)
    if readable:
        return Item(f"{path.name} (generated)", True, str(path))
    return Item(f"{path.name} (generated)", False, f"{shown(path)} is not readable by Asterisk's user (uid "
                f"{want.st_uid}, gid {want.st_gid})", f"chgrp {want.st_gid} {shown(path)} && chmod g+r {shown(path)}")


# ---- AMI (a minimal blocking client: login, one action at a time) ------------------------------------------------
class Ami:
    """One AMI session: `Ami.login(cfg)`, `action(name, **fields)` -> the response and its events, `close()`."""

    def __init__(self, sock: socket.socket, where: str) -> None:
        self.sock = sock
        self.where = where
        self._buf = b""
        self._seq = 0

    @classmethod
    def login(cls, cfg: Config, timeout: float = AMI_TIMEOUT) -> Ami:
        host, port = ami_address(cfg)
        where = f"Asterisk AMI at {host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise AsteriskError(f"{where} is unreachable ({exc.strerror or exc}); start Asterisk, and check "
                                f"manager.conf (`vpbx asterisk install`)") from None
        ami = cls(sock, where)
        try:
            banner = ami._readline()
            if not banner.startswith("Asterisk Call Manager"):
                raise AsteriskError(f"{where} is not AMI (it said {validate.shown(banner)}); check [ami] port")
            resp = ami.action("Login", Username=cfg.ami.user, Secret=cfg.ami.secret, Events="off")[0]
        except BaseException:
            ami.close()
            raise
        if resp.get("Response") != "Success":
            ami.close()
            raise AsteriskError(f"{where} refused login as {validate.shown(cfg.ami.user)} "
                                f"({resp.get('Message', 'authentication failed')}); Asterisk has not read vpbx's "
                                f"manager_vpbx.conf: run `vpbx asterisk install` (or `vpbx reload`), then "
                                f"`asterisk -rx 'manager reload'`")
        return ami

    def _recv(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except OSError as exc:
            raise AsteriskError(f"{self.where}: connection failed ({exc.strerror or exc}); is Asterisk "
                                f"running?") from None
        if not chunk:
            raise AsteriskError(f"{self.where} closed the connection; see Asterisk's log")
        self._buf += chunk

    def _readline(self) -> str:
        while b"\r\n" not in self._buf:
            self._recv()
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def _message(self) -> dict[str, str]:
        while b"\r\n\r\n" not in self._buf:
            self._recv()
        raw, self._buf = self._buf.split(b"\r\n\r\n", 1)
        msg: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                msg.setdefault(key.strip(), value.strip())
        return msg

    def action(self, name: str, **fields: str) -> list[dict[str, str]]:
        """Send an action; its response, followed by the events of its event list (EventList: start ... Complete)."""
        self._seq += 1
        action_id = f"vpbx-check-{self._seq}"
        for value in (name, *fields.values()):
            if "\r" in value or "\n" in value:
                raise ValidationError(f"AMI field {validate.shown(value)} holds a line break")
        text = f"Action: {name}\r\nActionID: {action_id}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        try:
            self.sock.sendall((text + "\r\n").encode())
        except OSError as exc:
            raise AsteriskError(f"{self.where}: send failed ({exc.strerror or exc})") from None
        while True:
            msg = self._message()
            if msg.get("ActionID") == action_id and "Response" in msg:
                break
        out = [msg]
        if msg.get("EventList", "").lower() == "start":
            while True:
                ev = self._message()
                if ev.get("ActionID") != action_id:
                    continue
                out.append(ev)
                if ev.get("EventList", "").lower() == "complete":
                    break
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _version_major(text: str) -> int | None:
    m = re.search(r"(\d+)\.\d+", text)
    return int(m.group(1)) if m else None


def check_live(cfg: Config) -> list[Item]:
    """What the running Asterisk lacks. AMI unreachable or refusing vpbx's login: AsteriskError (exit 3)."""
    items: list[Item] = []
    ami = Ami.login(cfg)
    try:
        items.append(Item("AMI login", True, f"{ami.where} as {cfg.ami.user}"))
        core = ami.action("CoreSettings")[0]
        version = core.get("AsteriskVersion", "")
        major = _version_major(version)
        items.append(Item(f"Asterisk version >= {MIN_VERSION}", major is not None and major >= MIN_VERSION,
                          f"Asterisk {version or '(unknown)'}", f"upgrade Asterisk to {MIN_VERSION} or later"))
        missing = [m for m in REQUIRED_MODULES if ami.action("ModuleCheck", Module=m)[0].get("Response") != "Success"]
        items.append(Item("modules loaded", not missing,
                          f"not loaded: {', '.join(missing)}" if missing else f"{len(REQUIRED_MODULES)} modules",
                          "load them: remove their noload lines from modules.conf, then `asterisk -rx 'module load "
                          "NAME.so'` (or restart Asterisk)" if missing else ""))
        endpoint = ami.action("PJSIPShowEndpoint", Endpoint=EXTERNAL_ENDPOINT)
        details = {ev.get("Event"): ev for ev in endpoint[1:]}
        transport = details.get("TransportDetail", {}).get("ObjectName") or details.get(
            "EndpointDetail", {}).get("Transport", "")
        items.append(Item(f"PJSIP endpoint {EXTERNAL_ENDPOINT} (from {PJSIP_BASE})",
                          endpoint[0].get("Response") == "Success" and bool(transport),
                          f"transport {transport}" if transport else "not loaded",
                          f"{INSTALL_FIX} (`asterisk -rx 'module reload res_pjsip.so'` when only the endpoint is "
                          f"missing)"))
    finally:
        ami.close()
    items.append(_ari_item(cfg))
    items.append(_http_listen_item(cfg))
    return items


def _ari_item(cfg: Config) -> Item:
    from vpbx.asterisk.ari.client import AriClient
    from vpbx.asterisk.ari.errors import AriError

    async def info() -> dict[str, Any]:
        async with AriClient(cfg.ari.url, cfg.ari.user, cfg.ari.password, cfg.ari.app, timeout=AMI_TIMEOUT) as ari:
            return await ari.asterisk_info("system")

    what = f"ARI {cfg.ari.url} as {cfg.ari.user}"
    try:
        data = asyncio.run(info())
    except AriError as exc:
        if exc.status in (401, 403):
            fix = "run `vpbx reload` (it writes ari_vpbx.conf and reloads res_ari)"
        else:
            fix = f"{INSTALL_FIX} (http.conf: enabled = yes, bindaddr and bindport of [ari] url)"
        return Item(what, False, str(exc), fix)
    return Item(what, True, f"Asterisk {data.get('system', {}).get('version', '?')}")


def listening(port: int, proc: Path = Path("/proc/net")) -> list[str]:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6); [] when unknown."""
    found = []
    for name, family in (("tcp", 4), ("tcp6", 6)):
        try:
            rows = (proc / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 4 or cols[3] != "0A":           # 0A: LISTEN
                continue
            addr, _, hexport = cols[1].partition(":")
            if int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            if family == 4:
                found.append(str(ipaddress.IPv4Address(raw[::-1])))
            else:
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.append(str(ipaddress.IPv6Address(words)))
    return found


def _http_listen_item(cfg: Config) -> Item:
    _, port = ari_address(cfg)
    addrs = listening(port)
    wide = [a for a in addrs if not _is_loopback(a)]
    return Item(f"HTTP (ARI) port {port} bound to loopback only", not wide,
                f"listening on {', '.join(addrs) or '(no listener seen in /proc/net)'}",
                f"{INSTALL_FIX} (http.conf [general] bindaddr = 127.0.0.1)" if wide else "")


def check(cfg: Config, config_dir: Path | str | None = None) -> tuple[list[Item], AsteriskError | None]:
    """`vpbx asterisk check`: config items, then live items; the AsteriskError (if Asterisk is unreachable or refuses
    vpbx's login) is returned, not raised, so the config items can still be shown."""
    items = check_config(cfg, config_dir)
    try:
        items += check_live(cfg)
    except AsteriskError as exc:
        return items, exc
    except (ConfigError, ValidationError) as exc:
        items.append(Item("vpbx config", False, str(exc), "fix vpbx.toml"))
    return items, None
