"""vpbx.storage: the only SQL in vpbx (SQLite through sqlite-utils), split by aggregate.

Rule: storage returns domain records and plain dicts; it decides nothing a user would call a business rule (that is
services/), and it imports only domain/ (and billing/ formatting).
"""
from __future__ import annotations

from vpbx.storage.store import Store, migrations

__all__ = ["Store", "migrations"]
