"""The one exception hierarchy of vpbx.

Rule: every failure a user can cause is a VpbxError whose message names the object and the fix; the CLI prints it as a
single `Error: ...` line and exits 1 (3 for AsteriskError, so scripts can tell "retry later" from "fix the
input"). Anything else escaping is a bug.

    VpbxError
    +-- ValidationError     bad input (number, login, text that could inject config, DTMF, audio)
    |   +-- DestinationError    a destination string that does not parse (vpbx.domain.destinations)
    +-- NotFoundError       the named object does not exist
    +-- ConflictError       already exists / still in use / state does not allow it
    +-- ConfigError         vpbx config file missing or unreadable
    +-- AsteriskError       Asterisk (AMI / ARI) unreachable or refused a request
"""
from __future__ import annotations


class VpbxError(Exception):
    """Base of every error vpbx reports to the user."""


class ValidationError(VpbxError):
    pass


class DestinationError(ValidationError):
    """A destination string that does not parse.

    `text` is the string, `kind` the kind it claimed (None: no known kind) and `problem` what is wrong, naming the bad
    part and giving the syntax but not where the string was found, so a caller can prefix its own context
    (e.g. "IVR 'main' option 1: ...").
    """

    def __init__(self, message: str, text: str, kind: str | None, problem: str) -> None:
        super().__init__(message)
        self.text = text
        self.kind = kind
        self.problem = problem


class NotFoundError(VpbxError):
    pass


class ConflictError(VpbxError):
    pass


class ConfigError(VpbxError):
    pass


class AsteriskError(VpbxError):
    pass
