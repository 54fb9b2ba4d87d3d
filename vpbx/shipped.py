"""The data vpbx ships beside its code: the built-in prompts and Asterisk's base config.

Rule: both folders stay at the top of the repository (prompts/, asterisk-conf/); setup.py packs them into the wheel as
the data packages `vpbx.prompts` and `vpbx.asterisk_conf`, and this module is the one place that finds them, through
importlib.resources. A source checkout run without an install (PYTHONPATH=checkout) finds them where they lie.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent
# the default music-on-hold class's files: <sounds dir>/<this>/ (asterisk-conf -> musiconhold_vpbx.conf points there)
MOH_SOUNDS_SUBDIR = "vpbx-moh"
_FOLDERS = {"vpbx.prompts": "prompts", "vpbx.asterisk_conf": "asterisk-conf"}


def _folder(package: str) -> Path:
    try:
        found = importlib.resources.files(package)
    except ModuleNotFoundError:
        return _CHECKOUT / _FOLDERS[package]
    if not isinstance(found, Path):     # a zipped install: vpbx copies these files, so it needs them on disk
        raise RuntimeError(f"{package} is not on disk ({found}); install vpbx unzipped (pip install)")
    return found


def prompts_dir() -> Path:
    """The built-in prompts: `<dir>/<language>/<name>.wav`."""
    return _folder("vpbx.prompts")


def asterisk_conf_dir() -> Path:
    """Asterisk's base config that the generated *_vpbx.conf files plug into (`<dir>/*.conf`)."""
    return _folder("vpbx.asterisk_conf")
