"""vpbx: a self-hosted virtual PBX on Asterisk.

Rule: importing the package is cheap (no third-party imports here) so that `vpbx --help` starts fast.
"""
from __future__ import annotations

__version__ = "0.1.0"
STASIS_APP = "vpbx"
