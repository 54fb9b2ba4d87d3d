"""vpbx.services.prompts: real audio files of several formats in, WAV PCM_16 8 kHz mono out; broken input installs
nothing."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vpbx.dialplan.model import MOH_CLASS
from vpbx.domain.errors import ConfigError, NotFoundError, ValidationError
from vpbx.services.prompts import (
    BUILTIN_LANGUAGES,
    BUILTIN_PROMPTS,
    add,
    convert,
    install,
    install_builtins,
    list_prompts,
    remove,
)

REPO = Path(__file__).resolve().parent.parent


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 1000.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    mono = amp * np.sin(2 * np.pi * freq * t)
    if channels == 1:
        return mono
    # different content per channel so a wrong downmix shows: right channel = half amplitude, same phase
    return np.stack([mono, 0.5 * mono], axis=1)


def mp3_writable() -> bool:
    return "MP3" in sf.available_formats() and "MPEG_LAYER_III" in sf.available_subtypes("MP3")


CASES = [
    # name, seconds, rate, channels, format, subtype
    ("stereo-44k1-24bit.wav", 2.0, 44100, 2, "WAV", "PCM_24"),
    ("mono-16k.flac", 1.5, 16000, 1, "FLAC", "PCM_16"),
    ("stereo-48k.ogg", 3.0, 48000, 2, "OGG", "VORBIS"),
    ("mono-8k-float.wav", 1.0, 8000, 1, "WAV", "FLOAT"),
    ("mono-22k-8bit.wav", 1.2, 22050, 1, "WAV", "PCM_U8"),
    pytest.param("stereo-44k1.mp3", 2.0, 44100, 2, "MP3", "MPEG_LAYER_III",
                 marks=pytest.mark.skipif(not mp3_writable(), reason="this libsndfile cannot write MP3 "
                                          f"(libsndfile {sf.__libsndfile_version__})")),
]


def read_back(wav: bytes) -> tuple[np.ndarray, sf._SoundFileInfo]:
    info = sf.info(io.BytesIO(wav))
    data, _rate = sf.read(io.BytesIO(wav), dtype="float64")
    return data, info


def peak_hz(data: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    return float(np.fft.rfftfreq(len(data), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("name,seconds,rate,channels,fmt,subtype", CASES)
def test_convert_any_format_to_8k_mono_pcm16(tmp_path: Path, name: str, seconds: float, rate: int, channels: int,
                                            fmt: str, subtype: str) -> None:
    src = tmp_path / name
    sf.write(str(src), tone(seconds, rate, channels), rate, format=fmt, subtype=subtype)
    wav = convert(src)
    data, info = read_back(wav)
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 8000, 1)
    decoded_seconds = sf.info(str(src)).duration   # lossy codecs may pad a little: compare with what was decoded
    assert abs(info.duration - decoded_seconds) <= 0.01 * decoded_seconds
    assert abs(info.duration - seconds) <= 0.01 * seconds + (0.06 if fmt == "MP3" else 0)
    middle = data[len(data) // 4: 3 * len(data) // 4]
    assert abs(peak_hz(middle, 8000) - 1000.0) < 10, "a 1 kHz tone stays 1 kHz"
    expected_amp = 0.5 * (1 + 0.5) / 2 if channels == 2 else 0.5   # mean of the channels
    tol = 0.05 if fmt in ("OGG", "MP3") else 0.01
    assert abs(np.sqrt(2) * np.sqrt(np.mean(middle ** 2)) - expected_amp) < tol


def test_resampling_is_band_limited(tmp_path: Path) -> None:
    """A 6 kHz tone is above the 4 kHz Nyquist limit of 8 kHz audio: a real resampler removes it, no aliasing."""
    src = tmp_path / "high.wav"
    sf.write(str(src), tone(1.0, 44100, freq=6000.0), 44100, subtype="PCM_16")
    data, _info = read_back(convert(src))
    assert np.sqrt(np.mean(data[800:-800] ** 2)) < 0.01


def test_clipping_instead_of_wraparound(tmp_path: Path) -> None:
    src = tmp_path / "loud.wav"
    sf.write(str(src), tone(1.0, 8000, amp=1.5), 8000, subtype="FLOAT")   # beyond full scale
    data, _info = read_back(convert(src))
    assert data.max() > 0.99 and data.min() < -0.99
    # a wrapped int16 would jump from +max to -max between neighbouring samples
    assert np.max(np.abs(np.diff(data))) < 1.5


def test_convert_is_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "a.flac"
    sf.write(str(src), tone(1.0, 16000, 1), 16000, format="FLAC")
    assert convert(src) == convert(src)


GARBAGE = {
    "empty": b"",
    "random": np.random.default_rng(1234).bytes(4096),
    "broken-wav-header": b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10,
    "id3-tag-only": b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 500,
    "text": b"Hello, this is not audio.\n" * 20,
}


@pytest.mark.parametrize("content", GARBAGE.values(), ids=GARBAGE.keys())
def test_undecodable_or_empty_file_installs_nothing(tmp_path: Path, content: bytes) -> None:
    src = tmp_path / "greeting.mp3"
    src.write_bytes(content)
    sounds = tmp_path / "sounds"
    with pytest.raises(ValidationError) as err:
        add(sounds, "en", "welcome", src)
    assert str(src) in str(err.value)
    assert "WAV, FLAC, OGG or MP3" in str(err.value)
    assert ("is empty" if not content else "cannot be decoded") in str(err.value)
    assert not (sounds / "en" / "vpbx" / "welcome.wav").exists()
    assert list_prompts(sounds) == []
    assert not sounds.exists() or not any(p.is_file() for p in sounds.rglob("*"))


def test_header_only_wav_has_no_audio(tmp_path: Path) -> None:
    src = tmp_path / "empty.wav"
    sf.write(str(src), np.zeros(0), 8000, subtype="PCM_16")
    with pytest.raises(ValidationError, match="no audio"):
        convert(src)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not found"):
        convert(tmp_path / "nope.wav")


def test_failed_conversion_keeps_the_installed_prompt(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    good = tmp_path / "good.wav"
    sf.write(str(good), tone(1.0, 44100, 2), 44100, subtype="PCM_24")
    path = add(sounds, "en", "welcome", good)
    before = path.read_bytes()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(ValidationError):
        add(sounds, "en", "welcome", bad)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["welcome.wav"], "no temp files left behind"


def test_install_list_remove(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    src = tmp_path / "in.ogg"
    sf.write(str(src), tone(2.0, 48000, 2), 48000, format="OGG", subtype="VORBIS")
    wav = convert(src)
    p_en = install(sounds, "en", "welcome", wav)
    p_ru = install(sounds, "ru", "welcome", wav)
    install(sounds, "en", "menu", wav)
    assert p_en == sounds / "en" / "vpbx" / "welcome.wav" and p_ru == sounds / "ru" / "vpbx" / "welcome.wav"
    assert oct(p_en.stat().st_mode & 0o777) == "0o644"
    listed = list_prompts(sounds)
    assert [(p["name"], p["language"]) for p in listed] == [("menu", "en"), ("welcome", "en"), ("welcome", "ru")]
    assert all(abs(p["seconds"] - 2.0) < 0.02 for p in listed)
    assert remove(sounds, "welcome", "ru") == [p_ru]
    assert remove(sounds, "welcome") == [p_en]
    assert [p["name"] for p in list_prompts(sounds)] == ["menu"]
    with pytest.raises(NotFoundError, match="prompt list"):
        remove(sounds, "welcome")


@pytest.mark.parametrize("name", ["../evil", "a b", "", "x/y", ".hidden", "a" * 65])
def test_bad_prompt_names_refused(tmp_path: Path, name: str) -> None:
    wav = convert_tone(tmp_path)
    with pytest.raises(ValidationError, match="prompt name"):
        install(tmp_path / "sounds", "en", name, wav)
    with pytest.raises(ValidationError):
        remove(tmp_path / "sounds", name)


@pytest.mark.parametrize("language", ["../x", "", "en/vpbx", "-en"])
def test_bad_language_refused(tmp_path: Path, language: str) -> None:
    with pytest.raises(ValidationError, match="language"):
        install(tmp_path / "sounds", language, "welcome", convert_tone(tmp_path))


def test_install_refuses_unconverted_audio(tmp_path: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, tone(1.0, 16000), 16000, format="WAV", subtype="PCM_16")
    with pytest.raises(ValidationError, match="8000 Hz mono"):
        install(tmp_path / "sounds", "en", "welcome", buf.getvalue())
    with pytest.raises(ValidationError, match="not a WAV"):
        install(tmp_path / "sounds", "en", "welcome", b"garbage")


def test_dangling_language_symlink_is_a_clear_error(tmp_path: Path) -> None:
    """The sandbox's <sounds>/en -> /etc/alternatives/... only resolves inside the chroot."""
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    (sounds / "en").symlink_to("/nonexistent/etc/alternatives/asterisk-prompt-en")
    with pytest.raises(ConfigError, match=r"symlink.*relative link"):
        install(sounds, "en", "welcome", convert_tone(tmp_path))
    assert list_prompts(sounds) == []


def test_relative_language_symlink_works(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    (sounds / "en_US_f_Allison").mkdir(parents=True)
    (sounds / "en").symlink_to("en_US_f_Allison")
    path = install(sounds, "en", "welcome", convert_tone(tmp_path))
    assert (sounds / "en_US_f_Allison" / "vpbx" / "welcome.wav").is_file() and path.is_file()


def convert_tone(tmp_path: Path) -> bytes:
    src = tmp_path / "tone.wav"
    if not src.exists():
        sf.write(str(src), tone(0.5, 8000), 8000, subtype="PCM_16")
    return convert(src)


# --------------------------------------------------------------------------------------------- built-in prompts

@pytest.mark.parametrize("language", BUILTIN_LANGUAGES)
@pytest.mark.parametrize("name", sorted(BUILTIN_PROMPTS))
def test_builtin_prompts_shipped(language: str, name: str) -> None:
    path = REPO / "prompts" / language / f"{name}.wav"
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 8000, 1)
    assert 0.5 < info.duration < 10


def test_builtin_prompts_install(tmp_path: Path) -> None:
    paths = install_builtins(tmp_path / "sounds", REPO / "prompts")
    assert len(paths) == len(BUILTIN_PROMPTS) * len(BUILTIN_LANGUAGES)
    assert {(p["name"], p["language"]) for p in list_prompts(tmp_path / "sounds")} == \
        {(n, lang) for n in BUILTIN_PROMPTS for lang in BUILTIN_LANGUAGES}


def test_builtin_prompts_are_reproducible() -> None:
    sounds = Path("/var/cache/vpbx/rootfs/usr/share/asterisk/sounds")
    if not (sounds / "en_US_f_Allison").is_dir():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Asterisk core sounds not found under {sounds}: CI builds the sandbox first")
        pytest.skip(f"Asterisk core sounds not found under {sounds}")
    proc = subprocess.run([sys.executable, str(REPO / "prompts" / "build.py"), "--check", "--sounds", str(sounds)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_music_on_hold_shipped_and_installed(tmp_path: Path) -> None:
    """The default class's loop: 8 kHz 16-bit mono, a few seconds, loud enough, not one sine (a tone check must never
    take it for a party's test tone), and installed where asterisk-conf/musiconhold.conf points."""
    from vpbx.services.prompts import MOH_SOUNDS_SUBDIR, install_moh

    src = REPO / "prompts" / "moh" / "default.wav"
    info = sf.info(str(src))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    assert 4 <= info.duration <= 15 and src.stat().st_size < 300_000
    data, rate = sf.read(str(src))
    assert 0.05 < float(np.sqrt(np.mean(data ** 2))) < 0.3
    spectrum = np.abs(np.fft.rfft(data)) ** 2
    freqs = np.fft.rfftfreq(len(data), 1 / rate)
    for hz in (700, 1100):                                   # the test phones' tones
        assert spectrum[(freqs > hz - 25) & (freqs < hz + 25)].sum() / spectrum.sum() < 0.02
    strongest = max(spectrum[(freqs > f - 25) & (freqs < f + 25)].sum() for f in range(100, 4000, 50))
    assert strongest / spectrum.sum() < 0.5                  # no single tone carries most of it
    installed = install_moh(tmp_path / "sounds", REPO / "prompts")
    assert installed == [tmp_path / "sounds" / MOH_SOUNDS_SUBDIR / "default.wav"]
    assert installed[0].read_bytes() == src.read_bytes()
    from vpbx.asterisk.render.moh import render_moh

    conf = render_moh()
    assert f"\ndirectory = sounds/{MOH_SOUNDS_SUBDIR}\n" in conf and f"\n[{MOH_CLASS}]\nmode = files\n" in conf
    assert "#tryinclude musiconhold_vpbx.conf" in (REPO / "asterisk-conf" / "musiconhold.conf").read_text()
    with pytest.raises(NotFoundError, match=r"prompts/build\.py"):
        install_moh(tmp_path / "sounds", tmp_path / "no-prompts")
