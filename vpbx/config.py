"""vpbx configuration: a TOML file written by `vpbx init`, read by every command.

Rule: secrets are generated with `secrets` at init time (never a fixed default) and the file is written atomically with
mode 0600 (a replaced file keeps its group and a mode of 0640, so the service user can still read it). Reading never
writes. Which file: --config / VPBX_CONFIG, else the system-wide /etc/vpbx/vpbx.toml (VPBX_SYSTEM_CONFIG names another
one; the tests point it nowhere), else ./vpbx.toml; with none of them, the defaults (database ./vpbx.db).
"""
from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpbx.domain.errors import ConfigError, ValidationError
from vpbx.domain.rules import DEFAULT_CODECS, check_codecs
from vpbx.domain.security import Policy, check_policy
from vpbx.domain.validation import PROMPT_RE as PROMPT_NAME_RE

SYSTEM_CONFIG = Path("/etc/vpbx/vpbx.toml")
LOCAL_CONFIG = Path("vpbx.toml")


def default_paths() -> tuple[Path, ...]:
    """Where a config is looked for when neither --config nor VPBX_CONFIG names one, first match wins."""
    return (Path(os.environ.get("VPBX_SYSTEM_CONFIG") or SYSTEM_CONFIG), LOCAL_CONFIG)


@dataclass(frozen=True)
class AriSettings:
    url: str = "http://127.0.0.1:8088"
    user: str = "vpbx"
    password: str = ""
    app: str = "vpbx"
    # how the engine's REST requests travel (vpbx.asterisk.ari.client): "auto" = over the event WebSocket when Asterisk
    # takes it (22.4+), else HTTP; "http" = always HTTP (the rollback switch)
    rest_transport: str = "auto"


ARI_REST_TRANSPORTS = ("auto", "http")


def _ari(section: dict[str, Any], path: Path | None) -> AriSettings:
    """[ari]: url, user, password, app (types checked by _check_types) and rest_transport (auto | http)."""
    settings = AriSettings(**{k: section[k] for k in ("url", "user", "password", "app", "rest_transport")
                              if k in section})
    if settings.rest_transport not in ARI_REST_TRANSPORTS:
        raise ConfigError(f"config {path} [ari] rest_transport must be one of {', '.join(ARI_REST_TRANSPORTS)} "
                          f"(default auto); got {_short(settings.rest_transport)}")
    return settings


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    user: str = "vpbx"
    secret: str = ""


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 25
    security: str = "none"          # none | starttls | tls
    user: str = ""
    password: str = ""
    sender: str = "vpbx@localhost"


@dataclass(frozen=True)
class BillingSettings:
    currency: str = "RUB"           # one currency per install; tariffs must use it
    policy: str = "prorate"         # first period: prorate (to the month's end) | anniversary (full month)
    quarantine_days: int = 30       # a released number rests this long before it is available again
    max_trial_hours: int = 72
    # prepaid outbound calls (vpbx.billing.prepaid): the prompt a call refused for want of money hears (a built-in or
    # an uploaded prompt's name), and how many seconds before a cut the warning beep sounds
    no_credit_prompt: str = "no-credit"
    credit_warning_seconds: int = 10


BILLING_POLICIES = ("prorate", "anniversary")


@dataclass(frozen=True)
class RecordingSettings:
    """[recording]: where call recordings are kept (vpbx.services.recordings) and for how long."""

    dir: Path | None = None         # None ("" in the file): <db dir>/recordings; a relative dir is the config's dir's
    retention_days: int = 90        # a recording is deleted this many days after its call; 0: kept until removed


@dataclass(frozen=True)
class SipSettings:
    # audio codecs phones may use, preferred first (vpbx.domain.rules.CODECS); opus only where Asterisk has codec_opus
    codecs: tuple[str, ...] = DEFAULT_CODECS
    # The network side (vpbx.asterisk.render.transports; checked when rendered). The UDP/TCP listen address and port
    # are Config.sip_bind / sip_port, written as [sip] bind / port (older configs: [asterisk] sip_bind / sip_port).
    tls_port: int = 5061
    tls_cert: str = ""              # PEM certificate (chain) and key: the TLS transport exists only with both
    tls_key: str = ""
    external_address: str = ""      # public IP or name of a server behind NAT (external signalling/media address)
    local_net: tuple[str, ...] = ()  # CIDRs reached directly (no external address): the LAN(s) behind that NAT
    rtp_start: int = 10000
    rtp_end: int = 20000


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    db: Path = Path("vpbx.db")
    domain: str = "vpbx.local"
    language: str = "en"
    asterisk_config_dir: Path = Path("/etc/asterisk")
    asterisk_sounds_dir: Path = Path("/usr/share/asterisk/sounds")
    sip_bind: str = "127.0.0.1"     # [sip] bind: the UDP and TCP transports listen here (0.0.0.0: every address)
    sip_port: int = 5060            # [sip] port
    default_trunk: str | None = None
    ari: AriSettings = field(default_factory=AriSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)
    sip: SipSettings = field(default_factory=SipSettings)
    security: Policy = field(default_factory=Policy)   # [security]: brute-force bans (vpbx.domain.security)
    recording: RecordingSettings = field(default_factory=RecordingSettings)   # [recording]: call recordings
    prompt_max_seconds: int = 600   # [prompts] max_seconds: the longest prompt `vpbx prompt add` takes


def render_config(cfg: Config) -> str:
    """Config -> TOML text (pure). tomlkit writes every value, so any string (newlines, quotes, backslashes,
    non-ASCII) is escaped and reads back unchanged; raises ConfigError for a value UTF-8 cannot hold (an undecodable
    byte of a path, which Python keeps as a lone surrogate)."""
    import tomlkit

    def commented(item: Any, comment: str) -> Any:
        item.comment(comment)
        item.trivia.comment_ws = "  "
        return item

    def table(items: dict[str, Any], comment: str | None = None, last: bool = False) -> Any:
        t = tomlkit.table()
        if comment:
            commented(t, comment)
        for key, value in items.items():
            t.add(key, value)
        if not last:
            t.add(tomlkit.nl())
        return t

    doc = tomlkit.document()
    doc.add(tomlkit.comment("vpbx configuration (written by `vpbx init`; secrets were generated for this install)"))
    doc.add("vpbx", table({"db": str(cfg.db), "domain": cfg.domain, "language": cfg.language,
                           "default_trunk": cfg.default_trunk or ""}))
    doc.add("asterisk", table({"config_dir": str(cfg.asterisk_config_dir), "sounds_dir": str(cfg.asterisk_sounds_dir)}))
    doc.add("ari", table({"url": cfg.ari.url, "user": cfg.ari.user, "password": cfg.ari.password, "app": cfg.ari.app}))
    doc.add("ami", table({"host": cfg.ami.host, "port": cfg.ami.port, "user": cfg.ami.user, "secret": cfg.ami.secret}))
    security = commented(tomlkit.item(cfg.smtp.security), "none | starttls | tls")
    doc.add("smtp", table({"host": cfg.smtp.host, "port": cfg.smtp.port, "security": security, "user": cfg.smtp.user,
                           "password": cfg.smtp.password, "sender": cfg.smtp.sender},
                          comment="voicemail e-mail; fill in host to enable"))
    policy = commented(tomlkit.item(cfg.billing.policy),
                       "prorate (first period to the month's end) | anniversary (full months)")
    doc.add("billing", table({"currency": cfg.billing.currency, "policy": policy,
                              "quarantine_days": cfg.billing.quarantine_days,
                              "max_trial_hours": cfg.billing.max_trial_hours}))
    codecs = commented(tomlkit.item(list(cfg.sip.codecs)), "phones' codecs, preferred first; per account: vpbx sip set "
                                                            "--codecs")
    doc.add("security", _security_table(cfg.security, table, commented))
    doc.add("recording", table({
        "dir": commented(tomlkit.item(str(cfg.recording.dir or "")), "call recordings; \"\": <db dir>/recordings"),
        "retention_days": commented(tomlkit.item(cfg.recording.retention_days), "deleted by `vpbx billing run` this "
                                    "many days after the call; 0: kept until removed"),
    }))
    sip = cfg.sip
    doc.add("sip", table({
        "bind": commented(tomlkit.item(cfg.sip_bind), "UDP+TCP listen address; 0.0.0.0 for phones on the network"),
        "port": cfg.sip_port,
        "tls_port": sip.tls_port,
        "tls_cert": commented(tomlkit.item(sip.tls_cert), "PEM files; the TLS transport exists only with both"),
        "tls_key": sip.tls_key,
        "external_address": commented(tomlkit.item(sip.external_address), "public IP or name when behind NAT"),
        "local_net": commented(tomlkit.item(list(sip.local_net)), "your LAN(s), e.g. [\"192.168.0.0/16\"]"),
        "rtp_start": sip.rtp_start,
        "rtp_end": sip.rtp_end,
        "codecs": codecs,
    }, last=True))
    doc["vpbx"].trivia.indent = ""    # the header comment sits right above [vpbx], as it always did
    text = tomlkit.dumps(doc)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"config value contains {text[exc.start:exc.end]!r}, which is not text (an undecodable byte "
                          "in a path?); give paths and values that are valid UTF-8") from None
    return text


def new_config(directory: Path, asterisk_config_dir: Path | None = None, asterisk_sounds_dir: Path | None = None,
               sip_port: int = 5060, ari_url: str = "http://127.0.0.1:8088", ami_port: int = 5038,
               sip_bind: str = "127.0.0.1", sip: SipSettings | None = None) -> Config:
    """A fresh config with newly generated ARI/AMI secrets."""
    return Config(
        db=directory / "vpbx.db",
        asterisk_config_dir=asterisk_config_dir or Path("/etc/asterisk"),
        asterisk_sounds_dir=asterisk_sounds_dir or Path("/usr/share/asterisk/sounds"),
        sip_bind=sip_bind,
        sip_port=sip_port,
        sip=sip or SipSettings(),
        ari=AriSettings(url=ari_url, password=secrets.token_urlsafe(24)),
        ami=AmiSettings(port=ami_port, secret=secrets.token_urlsafe(24)),
    )


DIR_MODE = 0o755          # a directory vpbx creates for files others read (Asterisk's config and sounds, the config)
PRIVATE_DIR_MODE = 0o700  # one for files only vpbx reads (documents, recordings)


def make_dirs(directory: Path, mode: int = DIR_MODE) -> None:
    """Create `directory` and its missing parents, each with exactly `mode` whatever the umask (`umask 000` must not
    make them 0777); directories that exist are left as they are."""
    missing: list[Path] = []
    for d in (Path(directory), *Path(directory).parents):
        if d.is_dir():
            break
        missing.append(d)
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            if not d.is_dir():
                raise
            continue
        os.chmod(d, mode)


def atomic_write(path: Path, text: str | bytes, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    """Write via a temp file in the same directory + fsync + rename: readers see the old or the new file, never half.
    `owner` (uid, gid) is applied when running as root (see owner_for). Missing directories are made (DIR_MODE)."""
    tmp = stage_file(path, text, mode, owner)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stage_file(path: Path, text: str | bytes, mode: int = 0o644, owner: tuple[int, int] | None = None) -> Path:
    """The first half of atomic_write: the whole content written and fsynced under a temp name beside `path`
    (returned); renaming it over `path` is the caller's. Refuses (IsADirectoryError) when `path` is a directory, so
    that the rename cannot fail for that reason later."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a directory is in the way", str(path))
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(fh.fileno(), *owner)
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def owner_for(path: Path, directory: Path) -> tuple[int, int] | None:
    """Who a file written into someone else's directory (Asterisk's config or sounds dir) should belong to: its current
    owner, else the directory's - so that Asterisk, running as its own user (Debian: asterisk), can still read it."""
    for p in (path, directory):
        try:
            st = p.stat()
            return st.st_uid, st.st_gid
        except OSError:
            continue
    return None


def shown(path: Path | str) -> str:
    """A path as one printable line for a message (escaped when it holds a line break or another control)."""
    text = str(path)
    return text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")


def write_config(cfg: Config, path: Path, force: bool = False) -> None:
    """Render (refusing what TOML cannot hold) before touching the disk, then write atomically with mode 0600."""
    data = render_config(cfg).encode("utf-8")
    try:
        if path.exists() and not force:
            raise ConfigError(f"config {shown(path)} already exists; keep it, or run `vpbx init --force` to replace it")
        mode, group = 0o600, -1
        if force and path.exists():      # keep what `vpbx service install` set: root:vpbx 0640
            st = path.stat()
            mode, group = (0o640 if st.st_mode & 0o040 else 0o600), st.st_gid
        atomic_write(path, data, mode=mode)
        if group != -1 and path.stat().st_gid != group:
            os.chown(path, -1, group)
    except (OSError, ValueError) as exc:   # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot write config {shown(path)} ({reason}); choose another --dir or --config") from None


def find_config_path(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("VPBX_CONFIG")
    if env:
        return Path(env)
    for candidate in default_paths():
        if candidate.exists():
            return candidate
    return None


def load_config(explicit: str | None = None, db_override: str | None = None) -> Config:
    """Read the config; with no file at all, defaults (DB ./vpbx.db) so read-only commands work before init."""
    import tomllib

    path = find_config_path(explicit)
    data: dict[str, Any] = {}
    if path is not None:
        fix = "fix the file or re-create it with `vpbx init --force`"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config {path} not found; run `vpbx init` or point --config / VPBX_CONFIG at it"
                              ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"config {path} is not UTF-8 text; {fix}") from None
        except PermissionError:
            raise ConfigError(f"config {path} is not readable by this user; run as root or as the service user "
                              "(`sudo -u vpbx vpbx ...`), or point --config / VPBX_CONFIG at another file") from None
        except OSError as exc:
            raise ConfigError(f"config {path} cannot be read ({exc.strerror or exc}); point --config / VPBX_CONFIG "
                              "at a file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path} is not valid TOML ({exc}); {fix}") from None
    for key, value in data.items():
        if key in _TABLES and not isinstance(value, dict):
            raise ConfigError(f"config {path}: [{key}] must be a table (a [{key}] header with key = value lines); "
                              f"got {key} = {_short(value)}")
    v, a, ari, ami, smtp, bill, sip = (data.get(k, {}) for k in ("vpbx", "asterisk", "ari", "ami", "smtp", "billing",
                                                                  "sip"))
    for name, section in (("vpbx", v), ("asterisk", a), ("ari", ari), ("ami", ami), ("smtp", smtp)):
        _check_types(name, section, path)
    base = path.parent if path is not None else Path(".")
    db = Path(db_override or os.environ.get("VPBX_DB") or v.get("db") or "vpbx.db")
    if not db.is_absolute():
        db = base / db
    return Config(
        path=path,
        db=db,
        domain=v.get("domain", "vpbx.local"),
        language=v.get("language", "en"),
        default_trunk=v.get("default_trunk") or None,
        asterisk_config_dir=Path(a.get("config_dir", "/etc/asterisk")),
        asterisk_sounds_dir=Path(a.get("sounds_dir", "/usr/share/asterisk/sounds")),
        sip_bind=_setting(sip, a, "bind", "sip_bind", str, "127.0.0.1", path),
        sip_port=_setting(sip, a, "port", "sip_port", int, 5060, path),
        ari=_ari(ari, path),
        ami=AmiSettings(**{k: ami[k] for k in ("host", "port", "user", "secret") if k in ami}),
        smtp=SmtpSettings(**{k: smtp[k] for k in ("host", "port", "security", "user", "password", "sender")
                             if k in smtp}),
        billing=_billing(bill, path),
        sip=_sip(sip, path),
        security=_security(data.get("security", {}), path),
        recording=_recording(data.get("recording", {}), base, path),
        prompt_max_seconds=_prompts(data.get("prompts", {}), path),
    )


PROMPT_MAX_SECONDS = Config.prompt_max_seconds


def _prompts(section: dict[str, Any], path: Path | None) -> int:
    """[prompts] max_seconds: a whole number of seconds, 1..86400 (default 600: ten minutes)."""
    unknown = sorted(set(section) - {"max_seconds"})
    if unknown:
        raise ConfigError(f"config {path} [prompts]: unknown setting {unknown[0]!r}; the setting is max_seconds")
    value = section.get("max_seconds", PROMPT_MAX_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 86400:
        raise ConfigError(f"config {path} [prompts] max_seconds must be a whole number of seconds, 1..86400 (default "
                          f"{PROMPT_MAX_SECONDS}); got {_short(value)}")
    return value


# the sections of vpbx.toml, and the type of each plain setting (the others are checked by their own readers below)
_TABLES = ("vpbx", "asterisk", "ari", "ami", "smtp", "billing", "sip", "security", "recording", "prompts")
_TYPES: dict[str, dict[str, type]] = {
    "vpbx": {"db": str, "domain": str, "language": str, "default_trunk": str},
    "asterisk": {"config_dir": str, "sounds_dir": str, "sip_port": int, "sip_bind": str},
    "ari": {"url": str, "user": str, "password": str, "app": str, "rest_transport": str},
    "ami": {"host": str, "port": int, "user": str, "secret": str},
    "smtp": {"host": str, "port": int, "security": str, "user": str, "password": str, "sender": str},
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _check_types(name: str, section: dict[str, Any], path: Path | None) -> None:
    """Each known setting of [name] has its type (a string, a whole number; a port 1-65535); ConfigError naming the
    key and the fix. Unknown keys are left alone (older and newer configs)."""
    for key, kind in _TYPES[name].items():
        if key not in section:
            continue
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            want = "a whole number, e.g. 5038" if kind is int else 'a string in quotes, e.g. "..."'
            raise ConfigError(f"config {path} [{name}] {key} must be {want}; got {_short(value)}")
        if isinstance(value, int) and not 1 <= value <= 65535 and key.endswith("port"):
            raise ConfigError(f"config {path} [{name}] {key} must be a port 1-65535; got {_short(value)}")


def _setting(sip: dict[str, Any], old: dict[str, Any], key: str, old_key: str, kind: type, default: Any,
             path: Path | None) -> Any:
    """[sip] KEY, else (a config written before [sip] had it) [asterisk] OLD_KEY, else the default; of type `kind`."""
    where, value = (f"[sip] {key}", sip[key]) if key in sip else (f"[asterisk] {old_key}", old.get(old_key, default))
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"config {path} {where} must be {'a whole number' if kind is int else 'a string'}; got "
                          f"{value!r}")
    return value


def _sip(section: dict[str, Any], path: Path | None) -> SipSettings:
    codecs: tuple[str, ...] = DEFAULT_CODECS
    if "codecs" in section:
        try:
            if not isinstance(section["codecs"], list):
                raise ValidationError("codecs must be a list")
            codecs = check_codecs(tuple(section["codecs"]), "codecs")
        except ValidationError as exc:
            raise ConfigError(f"config {path} [sip]: {exc}; write e.g. codecs = {list(DEFAULT_CODECS)!r}"
                              .replace("'", '"')) from None
    local_net = section.get("local_net", [])
    if not isinstance(local_net, list) or not all(isinstance(n, str) for n in local_net):
        raise ConfigError(f'config {path} [sip] local_net must be a list of networks, e.g. ["192.168.0.0/16"]; got '
                          f"{local_net!r}")
    d = SipSettings()
    return SipSettings(
        codecs=codecs,
        tls_port=_setting(section, {}, "tls_port", "", int, d.tls_port, path),
        tls_cert=_setting(section, {}, "tls_cert", "", str, d.tls_cert, path),
        tls_key=_setting(section, {}, "tls_key", "", str, d.tls_key, path),
        external_address=_setting(section, {}, "external_address", "", str, d.external_address, path),
        local_net=tuple(local_net),
        rtp_start=_setting(section, {}, "rtp_start", "", int, d.rtp_start, path),
        rtp_end=_setting(section, {}, "rtp_end", "", int, d.rtp_end, path),
    )


def _billing(section: dict[str, Any], path: Path | None) -> BillingSettings:
    billing = BillingSettings(**{k: section[k] for k in ("currency", "policy", "quarantine_days", "max_trial_hours",
                                                         "no_credit_prompt", "credit_warning_seconds")
                                 if k in section})
    where = f"config {path} [billing]"
    if not (isinstance(billing.currency, str) and len(billing.currency) == 3 and billing.currency.isalpha()
            and billing.currency.isupper()):
        raise ConfigError(f"{where}: currency {billing.currency!r} is not an ISO 4217 code; "
                          'write e.g. currency = "RUB"')
    if billing.policy not in BILLING_POLICIES:
        raise ConfigError(f"{where}: policy {billing.policy!r} is unknown; use one of {', '.join(BILLING_POLICIES)}")
    for key in ("quarantine_days", "max_trial_hours"):
        value = getattr(billing, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: {key} must be a whole number >= 0; got {value!r}")
    warning = billing.credit_warning_seconds
    if isinstance(warning, bool) or not isinstance(warning, int) or not 1 <= warning <= 60:
        raise ConfigError(f"{where}: credit_warning_seconds must be a whole number 1..60; got {warning!r}")
    if not isinstance(billing.no_credit_prompt, str) or not PROMPT_NAME_RE.fullmatch(billing.no_credit_prompt):
        raise ConfigError(f"{where}: no_credit_prompt {billing.no_credit_prompt!r} is not a prompt name (letters, "
                          "digits, '-' and '_'; see `vpbx prompt list`)")
    return billing


def _recording(section: Any, base: Path, path: Path | None) -> RecordingSettings:
    where = f"config {path} [recording]"
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a table; write [recording] with dir and retention_days")
    unknown = sorted(set(section) - {"dir", "retention_days"})
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; the settings are dir, retention_days")
    text = section.get("dir", "")
    if not isinstance(text, str) or "\0" in text:
        raise ConfigError(f'{where}: dir must be a directory path (a string; "" for <db dir>/recordings); got {text!r}')
    days = section.get("retention_days", RecordingSettings.retention_days)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 36500:
        raise ConfigError(f"{where}: retention_days must be a whole number of days, 0..36500 (0: kept until "
                          f"removed); got {days!r}")
    directory = Path(text) if text else None
    if directory is not None and not directory.is_absolute():
        directory = base / directory
    return RecordingSettings(dir=directory, retention_days=days)


def _security_table(p: Policy, table: Any, commented: Any) -> Any:
    import tomlkit

    return table({
        "max_failures": commented(tomlkit.item(p.max_failures), "failed logins from one address within find_time "
                                                                "-> banned"),
        "find_time": commented(tomlkit.item(p.find_time), "seconds"),
        "ban_time": commented(tomlkit.item(p.ban_time), "seconds"),
        "trusted": commented(tomlkit.item(list(p.trusted)), "CIDRs never banned, e.g. [\"192.168.0.0/16\"]; none by "
                                                           "default, loopback included"),
        "attack_addresses": commented(tomlkit.item(p.attack_addresses), "a login failed from this many addresses "
                                                                        "within attack_window is under attack:"),
        "attack_max_failures": commented(tomlkit.item(p.attack_max_failures), "then each address failing it is "
                                                                              "banned after this many"),
        "attack_window": commented(tomlkit.item(p.attack_window), "seconds"),
    })


def _security(section: dict[str, Any], path: Path | None) -> Policy:
    from vpbx.domain.security import INT_SETTINGS

    unknown = sorted(set(section) - {*INT_SETTINGS, "trusted"})
    try:
        if unknown:
            raise ValidationError(f"unknown setting {unknown[0]!r}; the settings are {', '.join(INT_SETTINGS)}, "
                                  "trusted")
        return check_policy(**section)
    except ValidationError as exc:
        raise ConfigError(f"config {path} [security]: {exc}") from None


# ---- [sip]: the network side --------------------------------------------------------------------------------------
def check_sip(cfg: Config) -> None:
    """The [sip] values that reach Asterisk's transports and rtp.conf, checked whole (pure; ValidationError naming
    the key and the fix). Run by the renderer and by `vpbx init`."""
    from vpbx.domain import validation as validate

    sip = cfg.sip
    with validate.about("vpbx config [sip] bind"):
        validate.host(cfg.sip_bind)
    with validate.about("vpbx config [sip] port"):
        validate.port(cfg.sip_port)
    with validate.about("vpbx config [sip] tls_port"):
        validate.port(sip.tls_port)
    if sip.tls_port == cfg.sip_port:
        raise ValidationError(f"vpbx config [sip] tls_port {sip.tls_port} is the SIP port too (TCP and TLS cannot "
                              f"share it); use e.g. {cfg.sip_port + 1}")
    if sip.external_address:
        with validate.about("vpbx config [sip] external_address"):
            validate.host(sip.external_address)
    for net in sip.local_net:
        validate.cidr(net, "vpbx config [sip] local_net")
    if bool(sip.tls_cert) != bool(sip.tls_key):
        raise ValidationError("vpbx config [sip]: give both tls_cert and tls_key (PEM files), or neither (no TLS "
                              "transport for phones)")
    for key in ("tls_cert", "tls_key"):
        value = getattr(sip, key)
        if value:
            validate.config_text(key, value, "vpbx config [sip]")
            if not value.startswith("/"):
                raise ValidationError(f"vpbx config [sip] {key} {validate.shown(value)} must be an absolute path")
    for key in ("rtp_start", "rtp_end"):
        value = getattr(sip, key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 65535:
            raise ValidationError(f"vpbx config [sip] {key} {value!r} must be a port 1024-65535")
    if sip.rtp_end - sip.rtp_start < 2:
        raise ValidationError(f"vpbx config [sip] rtp_start {sip.rtp_start} must be below rtp_end {sip.rtp_end} "
                              f"(RTP needs a range; e.g. 10000-20000)")


def check_tls_files(cfg: Config) -> None:
    """tls_cert and tls_key (when given) are readable files holding a PEM certificate and a PEM private key;
    ConfigError naming the file and the fix."""
    wanted = (("tls_cert", cfg.sip.tls_cert, "CERTIFICATE"), ("tls_key", cfg.sip.tls_key, "PRIVATE KEY"))
    for key, value, pem in wanted:
        if not value:
            continue
        where = f"vpbx config [sip] {key} {shown(value)}"
        try:
            head = Path(value).read_bytes()[:65536]
        except IsADirectoryError:
            raise ConfigError(f"{where} is a directory; give the PEM file") from None
        except FileNotFoundError:
            raise ConfigError(f"{where} does not exist; give the PEM file (or leave tls_cert and tls_key empty)"
                              ) from None
        except PermissionError:
            raise ConfigError(f"{where} is not readable by this user; run as root, or make it readable") from None
        except OSError as exc:
            raise ConfigError(f"{where} cannot be read ({exc.strerror or exc})") from None
        if f"-----BEGIN {pem}".encode() not in head and not (pem == "PRIVATE KEY" and b" PRIVATE KEY-----" in head):
            raise ConfigError(f"{where} holds no PEM {pem.lower()} (-----BEGIN {pem}-----); give the right file")
