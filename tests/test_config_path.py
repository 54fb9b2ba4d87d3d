"""Which config file a command reads (issue 10): --config, else VPBX_CONFIG, else /etc/vpbx/vpbx.toml (the system
config; VPBX_SYSTEM_CONFIG names another file, which is how conftest keeps the machine's out of every test), else
./vpbx.toml; with none, the defaults. And `vpbx init` writing the production layout (config and database apart).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clitools import ok
from vpbx import config
from vpbx.cli import main
from vpbx.config import find_config_path, load_config


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(system config, ./vpbx.toml) inside tmp_path; cwd is tmp_path/work, HOME tmp_path/home (with a config of its
    own that must never be read)."""
    system = tmp_path / "etc" / "vpbx" / "vpbx.toml"
    work = tmp_path / "work"
    work.mkdir()
    home_config = tmp_path / "home" / ".config" / "vpbx" / "vpbx.toml"
    home_config.parent.mkdir(parents=True)
    home_config.write_text('[vpbx]\ndomain = "home.example"\n')
    monkeypatch.setenv("VPBX_SYSTEM_CONFIG", str(system))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VPBX_CONFIG", raising=False)
    monkeypatch.delenv("VPBX_DB", raising=False)
    monkeypatch.chdir(work)
    return system, work / "vpbx.toml"


def write(path: Path, domain: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[vpbx]\ndomain = "{domain}"\ndb = "{domain}.db"\n')
    return path


def test_the_system_config_comes_before_the_local_one(places: tuple[Path, Path]) -> None:
    system, local = places
    assert find_config_path(None) is None
    assert load_config().domain == "vpbx.local" and load_config().db == Path("vpbx.db")   # not the home one
    write(local, "local.example")
    assert find_config_path(None) == Path("vpbx.toml")
    write(system, "system.example")
    assert find_config_path(None) == system
    cfg = load_config()
    assert cfg.domain == "system.example" and cfg.db == system.parent / "system.example.db"


def test_config_and_vpbx_config_beat_the_search(places: tuple[Path, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    system, local = places
    write(system, "system.example")
    write(local, "local.example")
    explicit = write(tmp_path / "x.toml", "explicit.example")
    assert load_config(str(explicit)).domain == "explicit.example"
    monkeypatch.setenv("VPBX_CONFIG", str(explicit))
    assert find_config_path(None) == explicit
    result = ok(CliRunner().invoke(main, ["--config", str(local), "stats", "--json"]))
    assert result.stderr == ""


def test_the_default_system_config_is_etc_vpbx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPBX_SYSTEM_CONFIG")
    assert config.default_paths() == (Path("/etc/vpbx/vpbx.toml"), Path("vpbx.toml"))


def test_the_tests_never_read_the_machines_system_config() -> None:
    import conftest

    assert config.default_paths()[0] == Path(conftest.NO_SYSTEM_CONFIG)
    assert not Path(conftest.NO_SYSTEM_CONFIG).exists()


def test_an_unreadable_config_is_one_error_line(places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    system, _ = places
    system.mkdir(parents=True)                 # a directory where the file should be
    result = CliRunner().invoke(main, ["number", "list"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: config {system} cannot be read"), result.stderr
    system.rmdir()
    write(system, "system.example")

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    result = CliRunner().invoke(main, ["number", "list"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: config {system} is not readable by this user"), result.stderr


def test_init_writes_the_production_layout(places: tuple[Path, Path], tmp_path: Path) -> None:
    system, _ = places
    data = tmp_path / "var" / "lib" / "vpbx"
    result = ok(CliRunner().invoke(main, ["init", "--config", str(system), "--dir", str(data)]))
    assert result.stdout.splitlines() == [f"Wrote {system} (mode 0600) with new ARI/AMI secrets; database "
                                          f"{data / 'vpbx.db'}"]         # the default search finds it: no note
    assert system.stat().st_mode & 0o777 == 0o600 and (data / "vpbx.db").stat().st_mode & 0o777 == 0o600
    cfg = load_config()
    assert cfg.path == system and cfg.db == data / "vpbx.db"
    # written anywhere else, init says how the other commands find it
    other = tmp_path / "other.toml"
    result = ok(CliRunner().invoke(main, ["init", "--config", str(other), "--dir", str(tmp_path / "d2")]))
    assert result.stdout.splitlines()[1] == (f"Note: other commands use this config only with --config {other} or "
                                             f"VPBX_CONFIG={other} (they read {system} by default)")
    # the global --config is honoured the same way
    third = tmp_path / "third.toml"
    result = ok(CliRunner().invoke(main, ["--config", str(third), "init", "--dir", str(tmp_path / "d3")]))
    assert load_config(str(third)).db == tmp_path / "d3" / "vpbx.db"
    assert len(result.stdout.splitlines()) == 1 and "Note:" not in result.stdout
