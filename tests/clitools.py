"""Helpers shared by the CLI tests: run-result checks and a database dump to prove a refused command changed nothing."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import Result


def dump(db: Path) -> str:
    """The whole database as SQL text (compare before/after)."""
    con = sqlite3.connect(db)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result
