"""Call recordings: who asks for them, keeping the audio the engine fetched, listing, export, removal and retention.

Rules: a recording is one row (table `recordings`, one per call) and one WAV file, mode 0600, under the recordings dir
(`[recording] dir`, default `<db dir>/recordings`; sub-directories per month, mode 0700). The file is written first
(atomically: a temporary file renamed into place), then the row, in one transaction; so a crash leaves at most a file
no row names, which `purge` deletes once it is older than the retention period, never a row whose audio never came.
Deleting goes the other way: the file first, then the row; a crash in between leaves a row whose file is gone, which
the next `purge` (expired) or `remove` finishes. Nothing outlives its retention period for long (`purge` runs in the
daily `vpbx billing run`).

Whether a call is recorded is decided by `vpbx.domain.recording.recording_for` (number, SIP account, account);
`vpbx.services.flows.load_flow` puts the answer on the Flow. The engine records the bridge as
`recording_name(call_id)` and, when the call ends, hands the audio to `keep`.

    recording_name(call_id) -> str                      Asterisk's recording name of a call (deterministic, a file name)
    setting_changes(cfg, what, record, prompt) -> dict  --record/--no-record, --record-prompt NAME|none, checked
    keep(store, cfg, call_id, audio, fmt="wav") -> Recording   store the audio (idempotent per call, see there)
    list_recordings(store, number=None, since=None) -> [Recording]
    export(store, rec_id, file, force=False) -> Path    an atomic copy; an existing file only with force
    remove(store, rec_ids) -> [Recording]               all named ones, or none when one is unknown
    purge(store, cfg, now) -> int                       delete the recordings past their retention
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpbx.config import atomic_write
from vpbx.domain import validation as validate
from vpbx.domain.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from vpbx.domain.timestamps import from_iso, to_iso, to_utc
from vpbx.storage.recordings import Recording

if TYPE_CHECKING:
    from vpbx.config import Config
    from vpbx.storage.store import Store

__all__ = ["FORMATS", "Recording", "export", "keep", "list_recordings", "purge", "recording_name", "recordings_dir",
           "remove", "setting_changes", "wav_audio"]

log = logging.getLogger(__name__)

DIR_NAME = "recordings"
FORMATS = ("wav",)              # what `keep` takes: Asterisk's `wav` (PCM in a RIFF/WAVE file)
PROMPT_NONE = "none"            # --record-prompt none: no announcement
STRAY_TMP_AGE = timedelta(days=1)   # a temporary file this old is what a crash left: purge deletes it

# call ids the engine uses: Asterisk channel ids (`1700000000.42`, `host-1700000000.42` with a system name), and
# `<channel id>-x<8 hex>` for a party handed over by a transfer. One path segment, no `..`, starts alphanumeric.
_SAFE_CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
_NAME_PREFIX = "rec-"           # rec-<call id>
_HASHED_PREFIX = "rec_"         # rec_<sha256 of a call id that is not safe>: never equal to a rec-<call id>
_FILE = re.compile(r"rec[-_][A-Za-z0-9._-]+\.wav")
_TMP_FILE = re.compile(r"\.rec[-_][A-Za-z0-9._-]+\.wav\.[0-9a-f]+\.tmp")
_MONTH_DIR = re.compile(r"[0-9]{4}-[0-9]{2}")


# ---- names and settings ---------------------------------------------------------------------------------------------
def recording_name(call_id: str) -> str:
    """The name a call's recording has in Asterisk (and its file here): `rec-<call id>` for a call id that is a plain
    file name (letters, digits, '.', '_', '-'; no '..'), else `rec_<hash>`; the same call id always gives the same
    name, and two call ids never share one."""
    if not isinstance(call_id, str) or not call_id:
        raise ValidationError(f"call id {validate.shown(call_id)} is empty or not text; give the call's id")
    if _SAFE_CALL_ID.fullmatch(call_id) and ".." not in call_id:
        return f"{_NAME_PREFIX}{call_id}"
    return _HASHED_PREFIX + hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def recordings_dir(cfg: Config) -> Path:
    """`[recording] dir`, else `<db dir>/recordings`."""
    return cfg.recording.dir or Path(cfg.db).resolve().parent / DIR_NAME


def prompt_installed(cfg: Config, name: str) -> bool:
    """Prompt `name` is installed in some language (`vpbx prompt add`), or is a built-in prompt."""
    from vpbx.services import prompts

    return prompts.installed(cfg.asterisk_sounds_dir, name)


def setting_changes(cfg: Config, what: str, record: bool | None, prompt: str | None) -> dict[str, Any]:
    """`--record/--no-record` (None: keep) and `--record-prompt NAME|none` (None: keep) as the changes of a number,
    SIP account or account (`what` names it); a prompt must be installed already."""
    changes: dict[str, Any] = {}
    if record is not None:
        changes["record_calls"] = bool(record)
    if prompt is not None:
        if prompt == PROMPT_NONE:
            changes["record_prompt"] = None
        else:
            with validate.about(f"{what}: record prompt"):
                validate.prompt_name(prompt)
            if not prompt_installed(cfg, prompt):
                raise NotFoundError(f"{validate.plain(what)}: record prompt {prompt} is not installed; upload it with "
                                    f"`vpbx prompt add {prompt} FILE` (see `vpbx prompt list`), or give "
                                    f"--record-prompt none")
            changes["record_prompt"] = prompt
    return changes


# ---- WAV ------------------------------------------------------------------------------------------------------------
def wav_audio(audio: bytes, what: str) -> tuple[float, bytes]:
    """(duration in seconds, the audio) of a RIFF/WAVE file, from its header. A header whose sizes were never
    written (Asterisk stopped before it closed the file) is mended from the bytes there are: the part recorded
    is kept. ValidationError when `audio` is not a WAV file."""
    if not isinstance(audio, (bytes, bytearray)) or len(audio) < 12 or audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        raise ValidationError(f"{what}: the audio is not a WAV file (no RIFF/WAVE header); record with format wav")
    audio = bytes(audio)
    fmt: tuple[int, int, int, int] | None = None      # (format tag, channels, byte rate, block align)
    offset = 12
    while offset + 8 <= len(audio):
        chunk, size = audio[offset:offset + 4], struct.unpack_from("<I", audio, offset + 4)[0]
        start = offset + 8
        if chunk == b"fmt " and size >= 16 and start + 16 <= len(audio):
            tag, channels, _rate, byte_rate, align = struct.unpack_from("<HHIIH", audio, start)
            fmt = (tag, channels, byte_rate, align)
        elif chunk == b"data":
            if fmt is None or fmt[2] == 0 or fmt[3] == 0:
                raise ValidationError(f"{what}: the WAV file has no usable format chunk before its audio; "
                                      "record with format wav")
            there = len(audio) - start
            length = size if 0 < size <= there else there - there % fmt[3]     # sizes never written: what is there
            if length != size:
                audio = _mended(audio, offset, length)
            return length / fmt[2], audio
        offset = start + size + (size & 1)
    raise ValidationError(f"{what}: the WAV file has no audio (data) chunk; record with format wav")


def _mended(audio: bytes, data_offset: int, length: int) -> bytes:
    """`audio` with its data chunk `length` bytes long (anything after it dropped) and the RIFF size to match."""
    start = data_offset + 8
    body = audio[:data_offset + 4] + struct.pack("<I", length) + audio[start:start + length]
    return body[:4] + struct.pack("<I", len(body) - 8) + body[8:]


# ---- keeping --------------------------------------------------------------------------------------------------------
def keep(store: Store, cfg: Config, call_id: str, audio: bytes, fmt: str = "wav") -> Recording:
    """Keep the recording of call `call_id` (its call record must exist): the WAV file under the recordings dir
    (0600), and one row, in one transaction. Idempotent per call: handing over the same audio again changes nothing;
    other audio for a call that has a recording replaces it (same id; the latest fetch of a recording is the whole
    of it), and the old file is deleted once the row names the new one. Nothing is written when it fails."""
    name = recording_name(call_id)
    what = f"recording of call {validate.plain(call_id)}"
    if fmt not in FORMATS:
        raise ValidationError(f"{what}: format {validate.shown(fmt)} is not kept; record with format "
                              f"{' or '.join(FORMATS)}")
    duration, audio = wav_audio(audio, what)
    call = store.calls.get(call_id)
    if call is None:
        raise NotFoundError(f"{what}: there is no call record {validate.plain(call_id)}; the engine writes it when "
                            "the call arrives")
    digest = hashlib.sha256(audio).hexdigest()
    existing = store.recordings.for_call(call_id)
    if existing is not None and existing.sha256 == digest and Path(existing.path).is_file():
        return existing
    started_at = call.get("connected_at") or call.get("answered_at") or call["started_at"]
    days = cfg.recording.retention_days
    expires_at = to_iso(from_iso(started_at) + timedelta(days=days)) if days else None
    month_dir = recordings_dir(cfg) / started_at[:7]
    path = month_dir / f"{name}-{digest[:12]}.wav"
    try:
        _make_private_dirs(month_dir)
        atomic_write(path, audio, mode=0o600)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot write {path} ({exc.strerror or exc}); check [recording] dir in the config "
                          "and that the engine's user may write there") from None
    try:
        recording, old = store.recordings.put(
            call_id=call_id, name=name, number=call["number"], caller=call.get("caller") or "",
            started_at=started_at, duration=round(duration, 3), size=len(audio), sha256=digest, path=str(path),
            expires_at=expires_at)
    except BaseException:
        if existing is None or existing.path != str(path):
            path.unlink(missing_ok=True)
        raise
    if old is not None and old.path != recording.path:
        _unlink(Path(old.path))
    log.info("kept recording %d of call %s: %.1f s, %d bytes, %s", recording.id, call_id, duration, len(audio), path)
    return recording


def _make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents, each mode 0700 (whatever the umask); existing ones are left."""
    missing: list[Path] = []
    for d in (directory, *directory.parents):
        if d.exists():
            break
        missing.append(d)
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot delete recording file {path} ({exc.strerror or exc}); check its directory's "
                          "permissions, then run the command again") from None


# ---- reading, export, removal ---------------------------------------------------------------------------------------
def list_recordings(store: Store, number: str | None = None, since: str | None = None,
                    limit: int | None = None) -> list[Recording]:
    """Recordings, newest first: of calls to or from `number`, answered on or after day `since` (YYYY-MM-DD, UTC)."""
    if since is not None:
        try:
            date.fromisoformat(since)
        except ValueError:
            raise ValidationError(f"--since {validate.shown(since)} is not a date; use YYYY-MM-DD") from None
        if len(since) != 10:
            raise ValidationError(f"--since {validate.shown(since)} is not a date; use YYYY-MM-DD")
    if limit is not None and limit < 1:
        raise ValidationError(f"--limit {limit} must be 1 or more")
    return store.recordings.search(number=number, since=since, limit=limit)


def export(store: Store, rec_id: int, file: Path, force: bool = False) -> Path:
    """Copy recording `rec_id`'s WAV to `file` (atomic: a temporary file renamed into place, mode 0600); an existing
    `file` is replaced only with `force`. The audio is checked against its checksum first."""
    recording = store.recordings.get(rec_id)
    target = Path(file)
    if target.is_dir():
        raise ValidationError(f"{target} is a directory; give a file name, e.g. {target / Path(recording.path).name}")
    if not target.parent.is_dir():
        raise NotFoundError(f"directory {target.parent} does not exist; create it or give another FILE")
    if target.exists() and not force:
        raise ConflictError(f"{target} exists already; give --force to replace it, or another FILE")
    try:
        audio = Path(recording.path).read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"recording {rec_id}: its file {recording.path} is gone; remove the recording with "
                            f"`vpbx recording remove {rec_id}`") from None
    except OSError as exc:
        raise ConfigError(f"recording {rec_id}: cannot read {recording.path} ({exc.strerror or exc}); run as the "
                          "service user (`sudo -u vpbx vpbx ...`) or as root") from None
    if hashlib.sha256(audio).hexdigest() != recording.sha256:
        raise ConflictError(f"recording {rec_id}: its file {recording.path} was changed on disk (the checksum "
                            "differs); nothing exported")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(audio)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, target)
        else:
            _link_new(tmp, target)
    except FileExistsError:
        raise ConflictError(f"{target} exists already; give --force to replace it, or another FILE") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {target} ({exc.strerror or exc}); give a FILE in a directory you may write "
                          "to") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _link_new(tmp: Path, target: Path) -> None:
    """Put `tmp` in place as `target` only if `target` does not exist (FileExistsError if it does)."""
    try:
        os.link(tmp, target)                  # atomic, and never replaces
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        if target.exists():                   # a file system without hard links
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.replace(tmp, target)


def remove(store: Store, rec_ids: Sequence[int]) -> list[Recording]:
    """Remove the recordings `rec_ids` (files and rows): all of them, or none when one does not exist."""
    ids = list(dict.fromkeys(rec_ids))
    if not ids:
        raise ValidationError("no recording to remove; give one or more ids (see `vpbx recording list`)")
    with store.write():
        recordings = [store.recordings.get(i) for i in ids]          # NotFoundError before anything is deleted
        for recording in recordings:
            _unlink(Path(recording.path))
        store.recordings.delete(ids)
    return recordings


# ---- retention ------------------------------------------------------------------------------------------------------
def purge(store: Store, cfg: Config, now: datetime) -> int:
    """Delete every recording whose retention ended by `now` (file, then row); returns how many. Files under the
    recordings dir that no recording names (a crash between writing one and its row) are deleted too once they are
    older than the retention period (temporary files: after a day)."""
    expired = store.recordings.expired(to_iso(now))
    for recording in expired:
        _unlink(Path(recording.path))
    if expired:
        store.recordings.delete([r.id for r in expired])
        log.info("purged %d recording(s) past their retention", len(expired))
    _sweep_strays(store, cfg, now)
    return len(expired)


def _sweep_strays(store: Store, cfg: Config, now: datetime) -> None:
    root = recordings_dir(cfg)
    if not root.is_dir():
        return
    named = store.recordings.paths()
    days = cfg.recording.retention_days
    for month in sorted(root.iterdir()):
        if not _MONTH_DIR.fullmatch(month.name) or month.is_symlink() or not month.is_dir():
            continue
        for file in month.iterdir():
            if file.is_symlink() or not file.is_file() or str(file) in named:
                continue
            if _TMP_FILE.fullmatch(file.name):
                age = STRAY_TMP_AGE
            elif _FILE.fullmatch(file.name) and days:
                age = timedelta(days=days)
            else:
                continue
            if datetime.fromtimestamp(file.stat().st_mtime, UTC) <= to_utc(now) - age:
                log.warning("deleting %s: no recording names it (left by a crash) and it is past retention", file)
                _unlink(file)
