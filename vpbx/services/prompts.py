"""Prompts: audio files converted to what Asterisk and the provider demand, installed into Asterisk's sounds dir.

Rule: whatever comes in (any file soundfile can read: WAV of any rate/width/channels, FLAC, OGG, MP3) is decoded,
downmixed to mono (mean of the channels), resampled to 8000 Hz with soxr (HQ) and written as WAV PCM 16-bit mono;
decoding goes block by block (bounded memory) and a prompt lasts at most MAX_SECONDS (config: [prompts]
max_seconds); the result is fully built in memory before anything is written, and installed with an atomic rename,
so a file that cannot be decoded gets a ValidationError and leaves the sounds dir untouched. Prompts live in
`<sounds_dir>/<language>/vpbx/<name>.wav` and are played as `sound:vpbx/<name>` (Asterisk picks the language dir
from the channel's language).
"""
from __future__ import annotations

import io
import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import soxr

from vpbx import shipped
from vpbx.config import PROMPT_MAX_SECONDS, atomic_write
from vpbx.domain import rules
from vpbx.domain import validation as validate
from vpbx.domain.errors import ConfigError, ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)

RATE = 8000
SUBDIR = "vpbx"
# Built-in prompts in the repository's prompts/<language>/ (made by prompts/build.py; in the wheel: vpbx.prompts).
BUILTIN_PROMPTS = {
    "vm-intro": "voicemail intro: leave a message after the tone",
    "invalid-option": "invalid option",
    "number-unavailable": "the number is not in service",
    "goodbye": "goodbye",
    "all-busy": "all circuits are busy",
    "no-credit": "an outbound call refused for want of money: sorry, the call cannot be completed",
}
BUILTIN_LANGUAGES = ("en", "ru")
# Music on hold: prompts/moh/default.wav (synthesised by prompts/build.py) is installed as <sounds_dir>/vpbx-moh/,
# the directory of the default class in the generated musiconhold_vpbx.conf (`directory = sounds/vpbx-moh`, relative
# to Asterisk's data dir, whose sounds/ is the sounds dir).
MOH_DIR = "moh"
MOH_FILE = "default.wav"
MOH_SOUNDS_SUBDIR = shipped.MOH_SOUNDS_SUBDIR


MAX_SECONDS = PROMPT_MAX_SECONDS   # the longest prompt (10 minutes); the config's [prompts] max_seconds changes it
BLOCK_FRAMES = 65536     # frames decoded at a time: memory stays bounded by the block and the (capped) 8 kHz output


def convert(src: Path, max_seconds: int = MAX_SECONDS) -> bytes:
    """Decode `src` and return WAV PCM_16 8 kHz mono bytes; ValidationError if it is not audio soundfile can read or
    is longer than `max_seconds`. Decoded, downmixed and resampled block by block (soxr's streaming resampler), so
    memory is the block plus the 8 kHz output (at most max_seconds of it), whatever the source's size: a file that
    claims a length over the cap is refused before decoding, and decoding stops as soon as the cap is passed."""
    src = Path(src)
    fix = "give a WAV, FLAC, OGG or MP3 file"
    where = f"audio file {validate.shown(str(src))}"
    if not src.is_file():
        raise ValidationError(f"{where} not found or not a regular file; {fix}")
    if src.stat().st_size == 0:
        raise ValidationError(f"{where} is empty (0 bytes), so it contains no audio; {fix}")
    too_long = (f"{where} is longer than the {max_seconds} s a prompt may last; cut it (e.g. `sox IN OUT trim 0 "
                f"{max_seconds}`), or raise [prompts] max_seconds in vpbx.toml")
    undecodable = "(check the file is complete and not renamed from another format)"
    blocks: list[np.ndarray] = []
    try:
        with sf.SoundFile(str(src)) as f:
            rate = f.samplerate
            limit = max_seconds * rate
            if 0 < f.frames < 2**62 and f.frames > limit:    # 2**62+: libsndfile does not know the length
                raise ValidationError(f"{too_long} (it lasts {f.frames / rate:.0f} s)")
            stream = soxr.ResampleStream(rate, RATE, 1, dtype="float64", quality="HQ") if rate != RATE else None
            read = 0
            for block in f.blocks(blocksize=BLOCK_FRAMES, dtype="float64", always_2d=True):
                read += block.shape[0]
                if read > limit:
                    raise ValidationError(too_long)
                if not np.all(np.isfinite(block)):
                    raise ValidationError(f"{where} contains invalid (NaN/infinite) samples; export it again as "
                                          f"WAV PCM")
                mono = block.mean(axis=1)
                blocks.append(_pcm(stream.resample_chunk(mono) if stream is not None else mono))
            if read == 0:
                raise ValidationError(f"{where} contains no audio; record the prompt again and give a non-empty "
                                      f"file")
            if stream is not None:
                blocks.append(_pcm(stream.resample_chunk(np.zeros(0), last=True)))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
        raise ValidationError(f"{where} cannot be decoded ({_reason(exc)}); {fix} {undecodable}") from None
    pcm = np.concatenate(blocks) if blocks else np.zeros(0, dtype="<i2")
    if pcm.size == 0:
        raise ValidationError(f"{where} is too short to be a prompt; give at least a few ms of audio")
    out = io.BytesIO()
    sf.write(out, pcm, RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _pcm(samples: np.ndarray) -> np.ndarray:
    """float samples (full scale 1.0) -> 16-bit PCM, clipped rather than wrapped."""
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if "not a regular file" in text or "Format not recognised" in text:
        # libsndfile says "File does not exist or is not a regular file" for content it cannot identify
        return "not a recognised audio format"
    return text.splitlines()[-1] if text else type(exc).__name__


def _language(language: str) -> str:
    # a language is one path segment: Asterisk looks for sounds in <sounds>/<language>/ (the channel's language, which
    # a number's language sets: the same rule)
    return rules.check_language(language)


def _language_dir(sounds_dir: Path, language: str) -> Path:
    """`<sounds_dir>/<language>`, refusing a dangling symlink (e.g. an absolute link valid only inside a chroot)."""
    lang_dir = Path(sounds_dir) / _language(language)
    if lang_dir.is_symlink() and not lang_dir.exists():
        raise ConfigError(f"sounds dir {lang_dir} is a symlink to {os.readlink(lang_dir)}, which does not exist here "
                          f"(an absolute link that only resolves inside a chroot?); make it a relative link or a "
                          f"directory, or point [asterisk] sounds_dir in vpbx.toml at the real sounds dir")
    return lang_dir


def prompt_path(sounds_dir: Path, language: str, name: str) -> Path:
    return _language_dir(sounds_dir, language) / SUBDIR / f"{validate.prompt_name(name)}.wav"


def install(sounds_dir: Path, language: str, name: str, wav: bytes) -> Path:
    """Install converted `wav` (from convert()) as `<sounds_dir>/<language>/vpbx/<name>.wav` (atomic; replaces)."""
    path = prompt_path(sounds_dir, language, name)
    try:
        info = sf.info(io.BytesIO(wav))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValidationError(f"prompt {name}: the audio to install is not a WAV file ({_reason(exc)}); "
                              f"convert it with vpbx.services.prompts.convert() first") from None
    if (info.samplerate, info.channels, info.subtype, info.format) != (RATE, 1, "PCM_16", "WAV"):
        raise ValidationError(f"prompt {name}: the audio to install is {info.samplerate} Hz, "
                              f"{info.channels} channel(s), {info.subtype}; it must be WAV PCM_16 8000 Hz mono, "
                              f"convert it first")
    atomic_write(path, wav, mode=0o644)
    return path


def add(sounds_dir: Path, language: str, name: str, src: Path, max_seconds: int = MAX_SECONDS) -> Path:
    """convert() + install(): what `vpbx prompt add NAME FILE` does."""
    validate.prompt_name(name)
    _language_dir(sounds_dir, language)   # refuse a broken sounds dir before the (slower) conversion
    return install(sounds_dir, language, name, convert(src, max_seconds))


def list_prompts(sounds_dir: Path) -> list[dict[str, Any]]:
    """Every installed prompt: [{"name", "language", "seconds"}], sorted by name then language."""
    out: list[dict[str, Any]] = []
    root = Path(sounds_dir)
    if not root.is_dir():
        return out
    for lang_dir in sorted(root.iterdir()):
        if lang_dir.is_symlink() and not lang_dir.exists():
            log.warning("skipping %s: dangling symlink to %s", lang_dir, os.readlink(lang_dir))
            continue
        vpbx_dir = lang_dir / SUBDIR
        if not vpbx_dir.is_dir():
            continue
        for wav in sorted(vpbx_dir.glob("*.wav")):
            if wav.name.startswith(".") or not validate.PROMPT_RE.match(wav.stem):
                continue
            try:
                seconds = round(sf.info(str(wav)).duration, 2)
            except (sf.LibsndfileError, RuntimeError):
                seconds = None
            out.append({"name": wav.stem, "language": lang_dir.name, "seconds": seconds})
    out.sort(key=lambda p: (p["name"], p["language"]))
    return out


def installed(sounds_dir: Path, name: str) -> bool:
    """Prompt `name` is installed in some language (`vpbx prompt add`), or is a built-in prompt."""
    return name in BUILTIN_PROMPTS or any(p["name"] == name for p in list_prompts(sounds_dir))


def remove(sounds_dir: Path, name: str, language: str | None = None, *, store: Store | None = None) -> list[Path]:
    """Remove prompt `name` (in one language, or in all); returns the files removed; NotFoundError if none.
    Refused (ConflictError) while something in `store` plays it and no other language would be left: like a group, a
    prompt in use cannot disappear (removing one language of several is allowed). `store` None: a sounds dir with no
    database to ask (the CLI always passes the install's)."""
    validate.prompt_name(name)
    languages = [p["language"] for p in list_prompts(sounds_dir) if p["name"] == name]
    if language is not None:
        candidates = [prompt_path(sounds_dir, language, name)]
    else:
        candidates = [Path(sounds_dir) / lang / SUBDIR / f"{name}.wav" for lang in languages]
    with nullcontext() if store is None else store.write():   # nothing starts using the prompt while its files go
        left = [lang for lang in languages if language is not None and lang != language]
        users = [] if store is None else store.ivrs.prompt_users(name)
        if users and not left and any(path.exists() for path in candidates):
            raise ConflictError(f"prompt {name} is still used by {', '.join(users)}; change those first")
        removed = []
        for path in candidates:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    if not removed:
        where = f" in language {language}" if language else ""
        raise NotFoundError(f"prompt {name} not found{where}; list them with `vpbx prompt list`")
    return removed


def install_builtins(sounds_dir: Path, source_dir: Path | None = None) -> list[Path]:
    """Copy the built-in prompts (`<source_dir>/<language>/<name>.wav`, the repository's prompts/) into the sounds
    dir, so `sound:vpbx/<name>` plays them in the channel's language."""
    source_dir = shipped.prompts_dir() if source_dir is None else source_dir
    installed = []
    for language in BUILTIN_LANGUAGES:
        for name in BUILTIN_PROMPTS:
            src = Path(source_dir) / language / f"{name}.wav"
            if not src.is_file():
                raise NotFoundError(f"built-in prompt {src} is missing; regenerate it with `python prompts/build.py`")
            installed.append(install(sounds_dir, language, name, src.read_bytes()))
    return installed


def install_moh(sounds_dir: Path, source_dir: Path | None = None) -> list[Path]:
    """Copy the shipped music on hold into `<sounds_dir>/vpbx-moh/` (the default class's directory)."""
    source_dir = shipped.prompts_dir() if source_dir is None else source_dir
    src = Path(source_dir) / MOH_DIR / MOH_FILE
    if not src.is_file():
        raise NotFoundError(f"built-in music on hold {src} is missing; regenerate it with `python prompts/build.py`")
    path = Path(sounds_dir) / MOH_SOUNDS_SUBDIR / MOH_FILE
    atomic_write(path, src.read_bytes(), mode=0o644)
    return [path]
