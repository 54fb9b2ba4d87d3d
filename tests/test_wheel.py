"""vpbx installed as a sysadmin installs it: a wheel built from this checkout, installed into a clean venv outside the
checkout, run from a directory that is not the checkout - against the real Asterisk sandbox.

What it proves: the wheel carries everything the commands need (the built-in prompts and Asterisk's base config as the
data packages vpbx.prompts / vpbx.asterisk_conf, read with importlib.resources), the installed `vpbx` never reaches
into the checkout, and the version is the one `vpbx/__init__.py` defines.

Afterwards the shared sandbox gets this test session's generated config back (the wheel's `vpbx init` made new ARI/AMI
users, and its `reload` loaded them).
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import vpbx

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parent.parent
NUMBER = "+380441230077"


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", out, REPO,
        cwd=out)
    wheels = list(out.glob("vpbx-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv (no system site-packages, nothing from the checkout) with the wheel and its dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", venv, cwd=venv)
    run(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=venv)
    return venv


def clean_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment a sysadmin's shell has: no PYTHONPATH, no VPBX_* from the test session, the venv on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VPBX_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(home)
    return env


def test_wheel_carries_the_prompts_and_the_base_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for conf in sorted((REPO / "asterisk-conf").glob("*.conf")):
        assert f"vpbx/asterisk_conf/{conf.name}" in names
    for wav in sorted((REPO / "prompts").glob("*/*.wav")):
        assert f"vpbx/prompts/{wav.parent.name}/{wav.name}" in names
    assert f"vpbx-{vpbx.__version__}.dist-info/METADATA" in names      # the version is vpbx.__version__, once
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "bench/"))]


@pytest.fixture
def own_users_back(asterisk: object) -> Iterator[None]:
    yield
    # the wheel's install loaded its own AMI/ARI users and records: give the sandbox this session's back
    asterisk.generate()                    # type: ignore[attr-defined]
    asterisk.cli("core reload")            # type: ignore[attr-defined]
    asterisk.reload()                      # type: ignore[attr-defined]


def test_installed_wheel_runs_the_first_commands_against_asterisk(installed: Path, asterisk, own_users_back,
                                                                 tmp_path: Path) -> None:
    work = tmp_path / "outside"            # not the checkout: nothing can be imported or read from it by accident
    work.mkdir()
    env = clean_env(installed, work)
    vpbx_bin = installed / "bin" / "vpbx"
    python = installed / "bin" / "python"

    where = run(python, "-c", "import vpbx, vpbx.shipped as s; print(vpbx.__file__); print(s.prompts_dir()); "
                "print(s.asterisk_conf_dir())", cwd=work, env=env).stdout.split()
    assert all(str(installed) in line and str(REPO) not in line for line in where), where
    assert run(vpbx_bin, "--version", cwd=work, env=env).stdout.strip() == f"vpbx {vpbx.__version__}"

    etc = asterisk.etc
    sounds = asterisk.root / "usr" / "share" / "asterisk" / "sounds"
    home = work / "vpbx"
    run(vpbx_bin, "init", "--dir", home, "--asterisk-config-dir", etc, "--sounds-dir", sounds, cwd=work, env=env)
    env["VPBX_CONFIG"] = str(home / "vpbx.toml")
    run(vpbx_bin, "number", "add", NUMBER, "--comment", "installed from the wheel", cwd=work, env=env)
    run(vpbx_bin, "number", "route", NUMBER, "play:welcome", "--fallback", "hangup", cwd=work, env=env)
    welcome = sounds / "en_US_f_Allison" / "hello-world.wav"
    run(vpbx_bin, "prompt", "add", "welcome", welcome, cwd=work, env=env)
    generated = run(vpbx_bin, "config", "generate", cwd=work, env=env).stdout
    assert "pjsip_vpbx.conf" in generated, generated
    # the built-in prompts came out of the wheel into Asterisk's sounds dir
    for language in ("en", "ru"):
        shipped = installed.glob(f"lib/python3*/site-packages/vpbx/prompts/{language}/goodbye.wav")
        assert (sounds / language / "vpbx" / "goodbye.wav").read_bytes() == next(shipped).read_bytes()
    # a new install's AMI user is unknown to a running Asterisk until it reads manager_vpbx.conf (the error says so)
    refused = subprocess.run([vpbx_bin, "reload"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 3 and "manager reload" in refused.stderr, refused      # 3: Asterisk refused
    asterisk.cli("manager reload")
    run(vpbx_bin, "reload", cwd=work, env=env)
    # Asterisk now runs what the installed vpbx generated: its number is in the dialplan
    assert NUMBER in asterisk.cli("dialplan show vpbx-inbound")
    assert "welcome" in run(vpbx_bin, "prompt", "list", "--json", cwd=work, env=env).stdout
