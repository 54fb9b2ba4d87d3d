"""Helpers shared by the CLI tests: run-result checks and a database dump to prove a refused command changed nothing."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from vpbx.cli import main

# no config or database from the environment; a wide console, so rich tables never wrap a value
CLEAN_ENV = {"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"}


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


class Site:
    """`vpbx --config <tmp>/vpbx.toml ...` for a config and database in `tmp` (made by `vpbx init --dir tmp`)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cfg = tmp / "vpbx.toml"
        self.db = tmp / "vpbx.db"

    def __call__(self, *args: Any, input: str | None = None) -> Result:
        return CliRunner().invoke(main, ["--config", str(self.cfg), *[str(a) for a in args]], env=CLEAN_ENV,
                                  input=input)
