"""Errors raised by the ARI client: every REST call returns parsed JSON or raises exactly one of these.

    vpbx.domain.errors.AsteriskError
    +-- AriError            Asterisk answered with an error (400 bad parameters, 401/403 credentials, other 4xx)
        +-- AriNotFound     404: the channel / bridge / playback / recording is gone (or never existed)
        +-- AriConflict     409 / 422: the object is in the wrong state (e.g. channel not in Stasis, recording exists)
        +-- AriUnavailable  Asterisk unreachable: connect error, timeout, broken connection, or a 5xx answer

Every AriError carries `method`, `path`, `status` (None when no HTTP answer arrived) and `detail` (Asterisk's
`message` field, or the transport error text).
"""
from __future__ import annotations

from vpbx.domain.errors import AsteriskError


class AriError(AsteriskError):
    """Asterisk refused or could not serve an ARI request."""

    def __init__(self, message: str, *, method: str = "", path: str = "", status: int | None = None,
                 detail: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail


class AriNotFound(AriError):
    """404: the object the request names does not exist (for channels: already hung up)."""


class AriConflict(AriError):
    """409 / 422: the object exists but its state does not allow the request (e.g. channel not in Stasis)."""


class AriUnavailable(AriError):
    """Asterisk could not be reached or failed internally (connect error, timeout, 5xx)."""
