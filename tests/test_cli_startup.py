"""`vpbx --help` stays fast: importing the CLI and printing help must not pull in the heavy dependencies, and the
console script's `--help` takes under 0.3 s (median of a few runs; bench/cli_startup.sh measures it more finely).
`python -m vpbx` is the same command line.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

HEAVY = ("rich", "sqlite_utils", "phonenumbers", "httpx", "websockets", "panoramisk", "soundfile", "numpy",
         "tomlkit")
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


@pytest.mark.parametrize("argv", [["--help"], ["number", "--help"], ["number", "add", "--help"],
                                  ["sip", "add", "--help"], ["trunk", "add", "--help"], ["init", "--help"]])
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


HELP_BUDGET_S = 0.3


def test_console_script_help_is_under_the_budget() -> None:
    def once() -> float:
        t0 = time.perf_counter()
        proc = subprocess.run([str(VPBX), "--help"], capture_output=True, text=True, env=_env(), timeout=60)
        elapsed = time.perf_counter() - t0
        assert proc.returncode == 0, proc.stderr
        return elapsed

    once()  # warm-up: page cache, .pyc files
    times = [once() for _ in range(7)]
    shown = ", ".join(f"{t * 1000:.0f}" for t in sorted(times))
    assert statistics.median(times) < HELP_BUDGET_S, f"vpbx --help took {shown} ms (budget {HELP_BUDGET_S} s)"


def test_python_dash_m_vpbx_is_the_same_command_line() -> None:
    proc = _run("-m", "vpbx", "--help")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    script = subprocess.run([str(VPBX), "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    # Click names the program the way it was started; the rest is identical
    assert proc.stdout == script.stdout.replace("Usage: vpbx ", "Usage: python -m vpbx ", 1)
    version = _run("-m", "vpbx", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"vpbx {vpbx_version()}"


def vpbx_version() -> str:
    import vpbx

    return vpbx.__version__
