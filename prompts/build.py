#!/usr/bin/env python3
"""Build vpbx's built-in prompts (prompts/<language>/<name>.wav) from Asterisk's core sound files.

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
from vpbx.services.prompts import BUILTIN_LANGUAGES, BUILTIN_PROMPTS, convert  # noqa: E402

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
}


def build(sounds: Path) -> dict[Path, bytes]:
    assert set(SOURCES) == set(BUILTIN_PROMPTS) and set(VOICES) == set(BUILTIN_LANGUAGES)
    out = {}
    for language, voice in VOICES.items():
        for name, core in SOURCES.items():
            src = sounds / voice / f"{core}.wav"
            if not src.is_file():
                raise SystemExit(f"core sound {src} not found; install asterisk-core-sounds "
                                 f"({voice}) or pass --sounds DIR")
            out[HERE / language / f"{name}.wav"] = convert(src)
    return out


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
