"""vpbx.toml is written by a TOML library: any string a path or setting can hold reads back unchanged through
load_config, the file stays mode 0600 and is replaced atomically, and what cannot be UTF-8 is refused, not mangled."""
from __future__ import annotations

import os
import stat
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vpbx.config import Config, SmtpSettings, load_config, new_config, render_config, write_config
from vpbx.domain.errors import ConfigError

TRICKY = ["a\nb", "a\r\nb", 'quote"d', "single'quoted", "back\\slash", "\\", '"""', "'''", "ünï/кириллица/日本",
          "tab\tstop", "nul\x00byte", "esc\x1b[0m", "del\x7f", "ls\u2028ps\u2029", "nel\x85", "# not a comment",
          "[section]", "key = value", "${HOME}", " leading and trailing ", "trailing newline\n"]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPBX_DB", raising=False)
    monkeypatch.delenv("VPBX_CONFIG", raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def roundtrip(cfg: Config) -> Config:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vpbx.toml"
        write_config(cfg, path)
        assert mode(path) == 0o600
        assert os.listdir(tmp) == ["vpbx.toml"], "a temporary file was left behind"
        tomllib.loads(path.read_bytes().decode("utf-8"))   # strictly valid TOML in strict UTF-8
        return load_config(str(path))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1))
@example("a\nb")
@example('quote"d\\')
@example("ünï\u2028\x85\x00")
def test_any_path_string_round_trips(text: str) -> None:
    directory = Path("/srv") / text
    cfg = new_config(directory, asterisk_config_dir=Path("/etc") / text, asterisk_sounds_dir=Path("/snd") / text)
    back = roundtrip(cfg)
    assert back.db == directory / "vpbx.db"
    assert back.asterisk_config_dir == Path("/etc") / text
    assert back.asterisk_sounds_dir == Path("/snd") / text


@pytest.mark.parametrize("text", TRICKY)
def test_every_string_setting_round_trips(text: str) -> None:
    cfg = replace(new_config(Path("/srv") / text), domain=text, language=text, default_trunk=text, sip_bind=text,
                  smtp=SmtpSettings(host=text, user=text, password=text, sender=text))
    back = roundtrip(cfg)
    assert (back.db, back.domain, back.language, back.default_trunk, back.sip_bind) == \
        (cfg.db, text, text, text, text)
    assert back.smtp == cfg.smtp
    assert back.ari == cfg.ari and back.ami == cfg.ami


def test_a_fresh_config_reads_back_equal(tmp_path: Path) -> None:
    cfg = new_config(tmp_path, sip_port=5070)
    path = tmp_path / "vpbx.toml"
    write_config(cfg, path)
    assert load_config(str(path)) == replace(cfg, path=path)


def test_the_written_file_keeps_its_comments(tmp_path: Path) -> None:
    text = render_config(new_config(tmp_path))
    assert text.startswith("# vpbx configuration (written by `vpbx init`")
    assert '[smtp]  # voicemail e-mail; fill in host to enable\nhost = ""\nport = 25\n' in text
    assert 'security = "none"  # none | starttls | tls' in text
    assert 'policy = "prorate"  # prorate' in text


def test_mode_0600_whatever_the_umask_and_replace_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "vpbx.toml"
    old = os.umask(0)
    try:
        write_config(new_config(tmp_path), path)
        assert mode(path) == 0o600
        first = path.read_bytes()
        with pytest.raises(ConfigError, match="--force"):
            write_config(new_config(tmp_path), path)
        assert path.read_bytes() == first
        write_config(new_config(tmp_path), path, force=True)
        assert mode(path) == 0o600 and path.read_bytes() != first
    finally:
        os.umask(old)
    assert sorted(os.listdir(tmp_path)) == ["vpbx.toml"]


@pytest.mark.parametrize("text", ["\udcff", "caf\udce9", "\ud800"])
def test_what_utf8_cannot_hold_is_refused_and_nothing_is_written(tmp_path: Path, text: str) -> None:
    # an undecodable byte of a command-line path reaches Python as a lone surrogate; TOML (UTF-8) cannot hold it
    path = tmp_path / "vpbx.toml"
    with pytest.raises(ConfigError, match="UTF-8"):
        write_config(new_config(Path("/srv") / text), path)
    assert not path.exists() and os.listdir(tmp_path) == []
    write_config(new_config(tmp_path), path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="UTF-8"):
        write_config(new_config(Path("/srv") / text), path, force=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["vpbx.toml"]


@pytest.mark.parametrize(("content", "needle"), [(b"[vpbx\n", "not valid TOML"), (b'db = "\xff"\n', "not UTF-8")])
def test_a_broken_file_is_one_config_error(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "vpbx.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        load_config(str(path))


@pytest.mark.parametrize("name", ["x" * 300, "nul\x00byte"])
def test_a_path_the_os_refuses_is_one_config_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="cannot write config"):
        write_config(new_config(tmp_path), tmp_path / name / "vpbx.toml")
    assert os.listdir(tmp_path) == []


def test_sip_codecs_default_read_and_written(tmp_path: Path) -> None:
    cfg = new_config(tmp_path)
    assert cfg.sip.codecs == ("g722", "opus", "alaw", "ulaw")
    path = tmp_path / "vpbx.toml"
    write_config(cfg, path)
    assert 'codecs = ["g722", "opus", "alaw", "ulaw"]' in path.read_text()
    path.write_text(path.read_text().replace('codecs = ["g722", "opus", "alaw", "ulaw"]', 'codecs = ["alaw", "g722"]'))
    assert load_config(str(path)).sip.codecs == ("alaw", "g722")
    path.write_text(path.read_text().replace("[sip]\n", "[old_sip]\n"))
    assert load_config(str(path)).sip.codecs == ("g722", "opus", "alaw", "ulaw")   # no [sip]: the default


@pytest.mark.parametrize("value", ['"g722,alaw"', '["g729"]', '["ALAW"]', "[]", '["alaw", "alaw"]', '[" alaw"]', "[1]"])
def test_a_bad_sip_codec_list_is_one_config_error(tmp_path: Path, value: str) -> None:
    path = tmp_path / "vpbx.toml"
    path.write_text(f"[sip]\ncodecs = {value}\n")
    with pytest.raises(ConfigError, match=r"\[sip\].*codecs = \["):
        load_config(str(path))
