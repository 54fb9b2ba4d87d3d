"""The exit codes scripts and cron rely on (README: Exit codes): 0 done, 1 bad input or state (fix the command or the
data), 2 usage, 3 Asterisk unreachable or refusing (retry later or fix Asterisk). Each failure is one `Error:` line.

Run as the real CLI in a subprocess, against closed loopback ports: nothing here needs Asterisk.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vpbx.config import new_config, write_config

REPO = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = new_config(tmp_path, asterisk_config_dir=tmp_path / "etc", asterisk_sounds_dir=tmp_path / "sounds",
                     ari_url=f"http://127.0.0.1:{closed_port()}", ami_port=closed_port())
    (tmp_path / "etc").mkdir()
    (tmp_path / "sounds").mkdir()
    path = tmp_path / "vpbx.toml"
    write_config(cfg, path)
    return path


def vpbx(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPBX_")}
    return subprocess.run([sys.executable, "-m", "vpbx", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=env)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


def test_asterisk_unreachable_exits_3(config: Path) -> None:
    proc = vpbx(config, "reload")
    assert proc.returncode == 3, proc
    assert "AMI" in one_error_line(proc) and "unreachable" in proc.stderr


def test_bad_input_exits_1_and_asterisk_is_not_blamed(config: Path) -> None:
    proc = vpbx(config, "number", "add", "12345")
    assert proc.returncode == 1, proc
    assert "12345" in one_error_line(proc)
    proc = vpbx(config, "number", "show", "+380441239999")
    assert proc.returncode == 1, proc
    one_error_line(proc)


def test_usage_error_exits_2(config: Path) -> None:
    proc = vpbx(config, "number", "add")
    assert proc.returncode == 2, proc


def test_success_exits_0(config: Path) -> None:
    proc = vpbx(config, "number", "add", "+380441239998")
    assert proc.returncode == 0, proc
    assert proc.stderr == "", proc.stderr
