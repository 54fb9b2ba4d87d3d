"""`vpbx --help` stays fast: importing the CLI and printing help must not pull in the heavy dependencies.

The time itself is measured by bench/cli_startup.sh, not asserted here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("rich", "sqlite_utils", "phonenumbers", "httpx", "websockets", "panoramisk", "soundfile", "numpy")
VPBX = Path(sys.executable).with_name("vpbx")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("VPBX_CONFIG", "VPBX_DB", "PYTHONSTARTUP")}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_env(), timeout=60)


def test_importing_cli_loads_no_heavy_module() -> None:
    code = ("import sys, json, vpbx.cli; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def _imported_by(argv: list[str]) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Top-level packages imported while running `vpbx ARGV` (python -X importtime, stderr)."""
    code = f"import sys; sys.argv = ['vpbx', *{argv!r}]; from vpbx.cli import main; main()"
    proc = _run("-X", "importtime", "-c", code)
    imported = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                imported.add(name.split(".")[0])
    return imported, proc


@pytest.mark.parametrize("argv", [["--help"], ["number", "--help"], ["number", "add", "--help"], ["sip", "add", "--help"],
                                  ["trunk", "add", "--help"], ["init", "--help"]])
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    imported, proc = _imported_by(argv)
    assert proc.returncode == 0
    assert "Usage: vpbx" in proc.stdout
    assert {"click", "vpbx"} <= imported  # the parse sees imports at all
    assert sorted(imported & set(HEAVY)) == []


def test_importtime_parse_would_see_a_heavy_import() -> None:
    # control: the same probe on a command that really uses phonenumbers + sqlite_utils + rich reports them
    imported, proc = _imported_by(["--db", "/nonexistent-dir-for-vpbx-test/x.db", "number", "add", "bogus"])
    assert proc.returncode == 1
    assert {"phonenumbers"} <= imported


def test_console_script_help() -> None:
    proc = subprocess.run([str(VPBX), "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("Usage: vpbx [OPTIONS] COMMAND [ARGS]...")
    for group in ("init", "number", "sip", "trunk"):
        assert f"\n  {group} " in proc.stdout
