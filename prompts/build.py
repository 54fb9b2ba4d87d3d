#!/usr/bin/env python3
"""Build vpbx's built-in prompts (prompts/<language>/<name>.wav) from Asterisk's core sound files, and synthesise the
default music on hold (prompts/moh/default.wav).

Rule: reproducible - the same core sounds give byte-identical WAVs. Each prompt is the closest existing core sound
(table SOURCES), converted with vpbx.services.prompts.convert() to WAV PCM 16-bit 8 kHz mono. Core sounds are read
from the sandbox rootfs by default:

    python prompts/build.py [--sounds /var/cache/vpbx/rootfs/usr/share/asterisk/sounds] [--check]

--check rebuilds in memory and fails if a committed file differs or is missing (use it in CI).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vpbx.config import atomic_write  # noqa: E402
from vpbx.services.prompts import BUILTIN_LANGUAGES, BUILTIN_PROMPTS, MOH_DIR, MOH_FILE, convert  # noqa: E402

DEFAULT_SOUNDS = Path("/var/cache/vpbx/rootfs/usr/share/asterisk/sounds")
# language -> core sounds directory (the Debian asterisk-core-sounds-* packages)
VOICES = {"en": "en_US_f_Allison", "ru": "ru_RU_f_IvrvoiceRU"}
# built-in prompt -> core sound file it is made from (same file name in both voices)
SOURCES = {
    "vm-intro": "vm-intro",                     # "Please leave your message after the tone. ..."
    "invalid-option": "pm-invalid-option",      # "That option is invalid. Please try again."
    "number-unavailable": "ss-noservice",       # "The number you have dialed is not in service. Please check ..."
    "goodbye": "vm-goodbye",                    # "Goodbye"
    "all-busy": "all-circuits-busy-now",        # "All circuits are busy now."
    # An outbound call refused for want of money. The core sounds have no phrase about credit or money, so this says
    # "I'm sorry. This call cannot be completed as dialed."; `[billing] no_credit_prompt` names an uploaded prompt that
    # says why in the provider's own words.
    "no-credit": ("im-sorry", "cannot-complete-as-dialed"),
}
PAUSE_S = 0.25          # between the parts of a prompt made of several core sounds


# Music on hold: a synthesised loop (no recording, so no licence question), 8 s, WAV PCM 16-bit 8 kHz mono. A soft
# arpeggio over Am - F - C - G with a quiet pad: many notes at once and changing, so a test's single-tone check can
# never mistake it for a party's sine. Every note and harmonic stays 25 Hz or more away from the test phones' tones
# (700, 1100 Hz).
MOH_SECONDS = 8
MOH_CHORDS = ((220.00, 261.63, 329.63), (174.61, 220.00, 261.63), (261.63, 329.63, 392.00), (196.00, 246.94, 293.66))
MOH_NOTES = tuple(sorted({f * k for chord in MOH_CHORDS for f in chord for k in (1, 2)}))


def build_moh() -> bytes:
    """The default music-on-hold class's one file (deterministic: same bytes on every machine)."""
    import io

    import numpy as np
    import soundfile as sf

    rate = 8000
    out = np.zeros(MOH_SECONDS * rate)
    bar = len(out) // len(MOH_CHORDS)
    step = bar // 8                                   # eight arpeggio notes per chord
    t_note = np.arange(step * 3) / rate               # a note rings on under the next two
    envelope = np.minimum(t_note / 0.02, 1.0) * np.exp(-t_note * 3.0)
    for i, chord in enumerate(MOH_CHORDS):
        start = i * bar
        t_bar = np.arange(bar) / rate
        pad = sum(np.sin(2 * np.pi * f * t_bar) for f in chord[:2]) * 0.04
        fade = np.minimum(np.minimum(t_bar / 0.2, (bar / rate - t_bar) / 0.2), 1.0)
        out[start:start + bar] += pad * fade
        pattern = (chord[0], chord[1], chord[2], chord[0] * 2, chord[2], chord[1], chord[0] * 2, chord[2])
        for j, f in enumerate(pattern):
            note = (np.sin(2 * np.pi * f * t_note) + 0.25 * np.sin(4 * np.pi * f * t_note)) * envelope * 0.12
            at = start + j * step
            end = min(at + len(note), len(out))
            out[at:end] += note[:end - at]
            if at + len(note) > len(out):              # the tail of the last notes wraps round: a seamless loop
                out[:at + len(note) - len(out)] += note[end - at:]
    out *= 0.35 / float(np.max(np.abs(out)))
    pcm = np.round(out * 32767).astype("<i2")
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def build(sounds: Path) -> dict[Path, bytes]:
    assert set(SOURCES) == set(BUILTIN_PROMPTS) and set(VOICES) == set(BUILTIN_LANGUAGES)
    out = {HERE / MOH_DIR / MOH_FILE: build_moh()}
    for language, voice in VOICES.items():
        for name, core in SOURCES.items():
            parts = (core,) if isinstance(core, str) else core
            srcs = [sounds / voice / f"{part}.wav" for part in parts]
            for src in srcs:
                if not src.is_file():
                    raise SystemExit(f"core sound {src} not found; install asterisk-core-sounds "
                                     f"({voice}) or pass --sounds DIR")
            out[HERE / language / f"{name}.wav"] = convert(srcs[0]) if len(srcs) == 1 else joined(srcs)
    return out


def joined(srcs: list[Path]) -> bytes:
    """Several core sounds as one prompt, each converted as a single one is, PAUSE_S of silence between them."""
    import io

    import numpy as np
    import soundfile as sf

    pieces = []
    for i, src in enumerate(srcs):
        audio, rate = sf.read(io.BytesIO(convert(src)), dtype="int16")
        if i:
            pieces.append(np.zeros(int(rate * PAUSE_S), dtype="int16"))
        pieces.append(audio)
    buf = io.BytesIO()
    sf.write(buf, np.concatenate(pieces), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sounds", type=Path, default=DEFAULT_SOUNDS, help="Asterisk sounds dir with the core voices")
    parser.add_argument("--check", action="store_true", help="only verify the committed files are up to date")
    args = parser.parse_args(argv)
    files = build(args.sounds)
    stale = []
    for path, data in sorted(files.items()):
        rel = path.relative_to(HERE)
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(str(rel))
            continue
        atomic_write(path, data)
        print(f"{rel}  {len(data)} bytes  sha256:{hashlib.sha256(data).hexdigest()[:16]}")
    if stale:
        print("out of date: " + ", ".join(stale) + "; run `python prompts/build.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
