"""Prompts: audio files converted to what Asterisk and the provider demand, installed into Asterisk's sounds dir.

Rule: whatever comes in (any file soundfile can read: WAV of any rate/width/channels, FLAC, OGG, MP3) is decoded,
downmixed to mono (mean of the channels), resampled to 8000 Hz with soxr (HQ) and written as WAV PCM 16-bit mono;
the result is fully built in memory before anything is written, and installed with an atomic rename, so a file that
cannot be decoded gets a ValidationError and leaves the sounds dir untouched. Prompts live in
`<sounds_dir>/<language>/vpbx/<name>.wav` and are played as `sound:vpbx/<name>` (Asterisk picks the language dir
from the channel's language).
"""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from vpbx import shipped
from vpbx.config import atomic_write
from vpbx.domain import rules
from vpbx.domain import validation as validate
from vpbx.domain.errors import ConfigError, NotFoundError, ValidationError

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
}
BUILTIN_LANGUAGES = ("en", "ru")
# Music on hold: prompts/moh/default.wav (synthesised by prompts/build.py) is installed as <sounds_dir>/vpbx-moh/,
# the directory of the default class in the generated musiconhold_vpbx.conf (`directory = sounds/vpbx-moh`, relative
# to Asterisk's data dir, whose sounds/ is the sounds dir).
MOH_DIR = "moh"
MOH_FILE = "default.wav"
MOH_SOUNDS_SUBDIR = shipped.MOH_SOUNDS_SUBDIR


def convert(src: Path) -> bytes:
    """Decode `src` and return WAV PCM_16 8 kHz mono bytes; ValidationError if it is not audio soundfile can read."""
    src = Path(src)
    fix = "give a WAV, FLAC, OGG or MP3 file"
    if not src.is_file():
        raise ValidationError(f"audio file {src} not found or not a regular file; {fix}")
    if src.stat().st_size == 0:
        raise ValidationError(f"audio file {src} is empty (0 bytes), so it contains no audio; {fix}")
    try:
        data, rate = sf.read(str(src), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
        raise ValidationError(f"audio file {src} cannot be decoded ({_reason(exc)}); {fix} "
                              f"(check the file is complete and not renamed from another format)") from None
    if data.size == 0 or data.shape[0] == 0:
        raise ValidationError(f"audio file {src} contains no audio; record the prompt again and give a non-empty file")
    if not np.all(np.isfinite(data)):
        raise ValidationError(f"audio file {src} contains invalid (NaN/infinite) samples; export it again as WAV PCM")
    mono = data.mean(axis=1)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE, quality="HQ")
    pcm = np.clip(np.round(mono * 32767.0), -32768, 32767).astype("<i2")
    if pcm.size == 0:
        raise ValidationError(f"audio file {src} is too short to be a prompt; give at least a few ms of audio")
    out = io.BytesIO()
    sf.write(out, pcm, RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


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


def add(sounds_dir: Path, language: str, name: str, src: Path) -> Path:
    """convert() + install(): what `vpbx prompt add NAME FILE` does."""
    validate.prompt_name(name)
    _language_dir(sounds_dir, language)   # refuse a broken sounds dir before the (slower) conversion
    return install(sounds_dir, language, name, convert(src))


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


def remove(sounds_dir: Path, name: str, language: str | None = None) -> list[Path]:
    """Remove prompt `name` (in one language, or in all); returns the files removed; NotFoundError if none."""
    validate.prompt_name(name)
    if language is not None:
        candidates = [prompt_path(sounds_dir, language, name)]
    else:
        candidates = [Path(sounds_dir) / p["language"] / SUBDIR / f"{name}.wav"
                      for p in list_prompts(sounds_dir) if p["name"] == name]
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
