"""Issue 13, items 3, 6, 7, 9 and 13: init writes only where it is told, no tracebacks, the generated Asterisk files
replaced as a set, documents and prompts bounded, directories with explicit modes.

Each test names the rule it checks; each failed before the fix.
"""
from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

from clitools import dump, ok
from vpbx.cli import main
from vpbx.config import Config, load_config, make_dirs
from vpbx.domain import rules
from vpbx.domain.errors import ConfigError, ValidationError
from vpbx.services import lifecycle, prompts
from vpbx.storage.store import Store

CLEAN_ENV = {"VPBX_CONFIG": None, "VPBX_DB": None, "VPBX_SYSTEM_CONFIG": "/nonexistent/vpbx.toml",
             "COLUMNS": "250"}
KYIV = "+380441234567"
MOSCOW = "+74952718459"
SEED = Path(__file__).resolve().parent.parent / "tariffs" / "seed-ru.toml"
PDF = b"%PDF-1.4\n% a scan\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def invoke(*args: object, env: dict | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env={**CLEAN_ENV, **(env or {})})


def error_line(result: Result, *needles: str, code: int = 1) -> str:
    """Exit `code` through the Error: path: stderr exactly one `Error: ` line holding every needle, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An initialised install; returns its config path."""
    ok(invoke("init", "--dir", tmp_path / "live"))
    return tmp_path / "live" / "vpbx.toml"


# ---- item 3: `vpbx init --dir NEW` writes only where its command line says ------------------------------------------
def test_init_never_writes_where_the_environment_points(site: Path, tmp_path: Path) -> None:
    """Rule: VPBX_CONFIG and VPBX_DB name the live install; init's targets are init --config, the global --config
    typed on the command line, or DIR (never the environment), so `init --dir NEW --force` leaves the live one."""
    live_db = site.parent / "vpbx.db"
    ok(invoke("number", "add", KYIV, env={"VPBX_CONFIG": str(site)}))
    before, db_before = site.read_bytes(), dump(live_db)
    env = {"VPBX_CONFIG": str(site), "VPBX_DB": str(live_db)}
    result = ok(invoke("init", "--dir", tmp_path / "new", "--force", env=env))
    assert site.read_bytes() == before and dump(live_db) == db_before
    new = tmp_path / "new" / "vpbx.toml"
    assert load_config(str(new)).db == tmp_path / "new" / "vpbx.db" and (tmp_path / "new" / "vpbx.db").exists()
    assert f"--config {new}" in result.stdout            # the note says how to use the new one
    # without --force the same: the new directory, not an "already exists" about the live config
    ok(invoke("init", "--dir", tmp_path / "newer", env=env))
    assert (tmp_path / "newer" / "vpbx.toml").exists() and site.read_bytes() == before


# ---- item 6: no tracebacks -------------------------------------------------------------------------------------------
def test_unexpected_exception_is_one_error_line_and_a_traceback_file(site: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule (the CLI edge): any exception no rule foresaw becomes one `Error:` line, exit 1, with the traceback kept
    in a private file the line names."""
    from vpbx.services import install

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(install, "init", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    line = error_line(invoke("init", "--dir", tmp_path / "x"), "RuntimeError: boom", "bug in vpbx")
    log = Path(line.rsplit(" ", 1)[1])
    assert log.parent == tmp_path and mode(log) == 0o600 and "Traceback" in log.read_text()


@pytest.mark.parametrize("value", ["100000000000000000000", "100001", str(2**63)])
def test_number_channels_are_bounded(site: Path, value: str) -> None:
    """Rule: a number's channels are MIN_CHANNELS..MAX_CHANNELS (an overflowing integer is refused, not a crash)."""
    db = site.parent / "vpbx.db"
    before = dump(db)
    error_line(invoke("--config", site, "number", "add", KYIV, "--channels", value), f"number {KYIV}",
               f"at most {rules.MAX_CHANNELS}")
    assert dump(db) == before
    with pytest.raises(ValidationError, match="at most"):
        rules.check_channels(KYIV, int(value))
    assert rules.check_channels(KYIV, rules.MAX_CHANNELS) == rules.MAX_CHANNELS


def test_float_and_undecodable_arguments_are_usage_or_error_lines(site: Path, tmp_path: Path) -> None:
    result = invoke("--config", site, "number", "add", KYIV, "--channels", "1e20")
    assert result.exit_code == 2 and "Traceback" not in result.stderr and "Error: " in result.stderr
    error_line(invoke("--config", site, "sip", "add", "al\udcffice"), "not valid UTF-8")
    latin1 = tmp_path / "numbers.csv"
    latin1.write_bytes(b"number,comment\n+380441234568,caf\xe9\n")
    error_line(invoke("--config", site, "number", "import", latin1), "not UTF-8")
    error_line(invoke("--config", site, "sip", "add", "bob", "--caller-id", ""), "SIP account bob", "caller ID")


def test_statement_month_is_bounded(site: Path) -> None:
    """Rule: a statement month is 1970-01..9999-11 (its end must be a date)."""
    ok(invoke("--config", site, "account", "add", "acme", "--email", "a@example.com"))
    error_line(invoke("--config", site, "account", "statement", "acme", "--month", "9999-12"), "9999-12",
               "1970-01 to 9999-11")
    for month in ("9999-12", "0001-01", "1969-12"):
        with pytest.raises(ValidationError, match="out of range"):
            lifecycle.month_bounds(month)
    assert lifecycle.month_bounds("9999-11")[1].isoformat() == "9999-12-01"


BAD_CONFIGS = [
    ("vpbx = 5\n", "[vpbx] must be a table"),
    ("[vpbx]\ndomain = 5\n", "[vpbx] domain must be a string"),
    ("[vpbx]\ndb = [1, 2]\n", "[vpbx] db must be a string"),
    ("[asterisk]\nconfig_dir = true\n", "[asterisk] config_dir must be a string"),
    ("[ari]\nurl = 5\n", "[ari] url must be a string"),
    ('[ami]\nport = "x"\n', "[ami] port must be a whole number"),
    ("[ami]\nport = 99999999999999\n", "[ami] port must be a port"),
    ("[smtp]\nport = 1.5\n", "[smtp] port must be a whole number"),
    ("billing = []\n", "[billing] must be a table"),
    ('[prompts]\nmax_seconds = "10"\n', "[prompts] max_seconds must be"),
    ("[prompts]\nmax_seconds = 0\n", "[prompts] max_seconds must be"),
    ("[prompts]\nmaxseconds = 10\n", "unknown setting 'maxseconds'"),
]


@pytest.mark.parametrize("text,needle", BAD_CONFIGS)
def test_config_values_have_their_types(tmp_path: Path, text: str, needle: str) -> None:
    """Rule: every section of vpbx.toml is a table and every known setting has its type; else one ConfigError."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"config {path}.*"):
        load_config(str(path))
    error_line(invoke("--config", path, "sip", "list"), needle)


def test_config_with_binary_content(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(bytes(range(256)) * 4)
    error_line(invoke("--config", path, "number", "list"), str(path), "not UTF-8")


def test_prompt_max_seconds_is_read_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[prompts]\nmax_seconds = 30\n")
    assert load_config(str(path)).prompt_max_seconds == 30
    assert Config().prompt_max_seconds == 600


def test_db_that_cannot_be_used_is_an_error_line(site: Path, tmp_path: Path) -> None:
    """Rule (Store.open): a database path that cannot be created or is not SQLite is one ConfigError naming it."""
    text = tmp_path / "notes.txt"
    text.write_bytes(b"not a database at all " * 100)
    before = text.read_bytes()
    error_line(invoke("--config", site, "--db", text, "sip", "list"), f"database {text}", "not an SQLite database")
    assert text.read_bytes() == before
    blocker = tmp_path / "plainfile"
    blocker.write_text("x")
    error_line(invoke("--config", site, "--db", blocker / "sub" / "x.db", "sip", "list"), "cannot be created")
    with pytest.raises(ConfigError, match="cannot be created"):
        Store.open(blocker / "x.db")
    a_dir = tmp_path / "adir"
    a_dir.mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        Store.open(a_dir)


# ---- item 7: the generated files are replaced as a set ---------------------------------------------------------------
def _generated(site: Path, out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_generate_replaces_the_set_or_nothing(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule (deploy.write_set): every file is staged under a temp name before any is renamed; a failure on any file
    leaves the old set whole and no temp file behind."""
    from vpbx.asterisk import deploy

    out = tmp_path / "out"
    ok(invoke("--config", site, "config", "generate", "--out", out))
    old = _generated(site, out)
    assert {"pjsip_vpbx.conf", "extensions_vpbx.conf"} <= set(old)
    ok(invoke("--config", site, "sip", "add", "alice", "--password", "alice-secret-1"))
    ok(invoke("--config", site, "number", "add", KYIV))
    ok(invoke("--config", site, "number", "route", KYIV, "sip:alice"))

    real, calls = deploy.owner_for, []

    def fails_on_the_second(path: Path, directory: Path) -> tuple[int, int] | None:   # the write of file 2 fails
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, directory)

    monkeypatch.setattr(deploy, "owner_for", fails_on_the_second)
    error_line(invoke("--config", site, "config", "generate", "--out", out), "No space left", "nothing was changed")
    assert _generated(site, out) == old, "a half-written set"
    monkeypatch.setattr(deploy, "owner_for", real)
    ok(invoke("--config", site, "config", "generate", "--out", out))
    new = _generated(site, out)
    assert set(new) == set(old) and new["pjsip_vpbx.conf"] != old["pjsip_vpbx.conf"]
    assert new["extensions_vpbx.conf"] != old["extensions_vpbx.conf"]


def test_generate_with_a_directory_in_the_way(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "extensions_vpbx.conf").mkdir(parents=True)
    error_line(invoke("--config", site, "config", "generate", "--out", out), "extensions_vpbx.conf",
               "remove or rename that directory")
    assert [p.name for p in out.iterdir()] == ["extensions_vpbx.conf"]     # nothing else written, no temp file


# ---- item 9: documents and prompts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [PDF, JPEG, PNG])
def test_documents_pdf_jpeg_png_by_content(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "scan.bin"            # the name does not matter, the content does
    path.write_bytes(content + b"\x00" * 100)
    assert lifecycle.read_document(path) == content + b"\x00" * 100


def test_document_type_is_checked_by_content(tmp_path: Path) -> None:
    fake = tmp_path / "passport.pdf"
    fake.write_text("root:$6$secret:19000:0:99999:7:::\n")
    with pytest.raises(ValidationError, match="not a PDF, JPEG, PNG file"):
        lifecycle.read_document(fake)


def test_documents_are_regular_files_only(tmp_path: Path) -> None:
    """Rule: a symlink, a FIFO and a device are refused without reading them (a FIFO with no writer must not hang)."""
    real = tmp_path / "real.pdf"
    real.write_bytes(PDF)
    link = tmp_path / "link.pdf"
    link.symlink_to(real)
    with pytest.raises(ValidationError, match="is a symbolic link"):
        lifecycle.read_document(link)
    fifo = tmp_path / "fifo.pdf"
    os.mkfifo(fifo)
    box: dict[str, BaseException] = {}

    def read_fifo() -> None:
        try:
            lifecycle.read_document(fifo)
        except BaseException as exc:
            box["exc"] = exc

    t = threading.Thread(target=read_fifo, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "document add blocked on a FIFO"
    assert isinstance(box.get("exc"), ValidationError) and "not a regular file" in str(box["exc"])
    with pytest.raises(ValidationError, match="not a regular file"):
        lifecycle.read_document(Path("/dev/zero"))


def test_documents_are_capped(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    with open(big, "wb") as fh:
        fh.write(PDF)
        fh.truncate(lifecycle.DOCUMENT_MAX_BYTES + 1)         # sparse: nothing is really written
    with pytest.raises(ValidationError, match="MiB a document may have"):
        lifecycle.read_document(big)
    with open(big, "r+b") as fh:
        fh.truncate(lifecycle.DOCUMENT_MAX_BYTES)
    assert len(lifecycle.read_document(big)) == lifecycle.DOCUMENT_MAX_BYTES


def test_document_add_cli_refuses_a_device(site: Path, tmp_path: Path) -> None:
    c = ("--config", site)
    _assigned(c)
    db = site.parent / "vpbx.db"
    before = dump(db)
    error_line(invoke(*c, "document", "add", MOSCOW, "/dev/zero"), "document '/dev/zero'", "not a regular file")
    fake = tmp_path / "shadow.pdf"
    fake.write_text("root:x:0:0\n")
    error_line(invoke(*c, "document", "add", MOSCOW, fake), "not a PDF, JPEG, PNG file")
    assert dump(db) == before and not (site.parent / "documents" / MOSCOW.lstrip("+")).exists()


def _assigned(c: tuple[object, ...]) -> None:
    """MOSCOW added and assigned to the account acme (the seed price list loaded)."""
    ok(invoke(*c, "tariff", "load", SEED))
    ok(invoke(*c, "account", "add", "acme", "--email", "a@example.com"))
    ok(invoke(*c, "account", "topup", "acme", "100000"))
    ok(invoke(*c, "number", "add", MOSCOW))
    ok(invoke(*c, "number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov"))


def _write_tone(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> None:
    """A tone written block by block (the test itself stays small in memory)."""
    with sf.SoundFile(str(path), "w", rate, channels, subtype="PCM_16") as f:
        left = int(seconds * rate)
        t0 = 0
        while left:
            n = min(left, 1 << 16)
            t = (np.arange(t0, t0 + n) / rate)[:, None]
            f.write(np.repeat(0.5 * np.sin(2 * np.pi * 1000 * t), channels, axis=1))
            t0, left = t0 + n, left - n


def test_prompt_length_is_capped(tmp_path: Path) -> None:
    """Rule: a prompt lasts at most max_seconds (default 600, [prompts] max_seconds); longer is refused."""
    src = tmp_path / "long.wav"
    _write_tone(src, 3.0, rate=8000, channels=1)
    with pytest.raises(ValidationError, match="longer than the 2 s a prompt may last"):
        prompts.convert(src, max_seconds=2)
    assert sf.info(io.BytesIO(prompts.convert(src, max_seconds=3))).frames == 24000
    assert prompts.MAX_SECONDS == 600


def test_prompt_cap_through_the_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "vpbx.toml"
    ok(invoke("--config", cfg, "init", "--dir", tmp_path, "--sounds-dir", tmp_path / "sounds"))
    with open(cfg, "a") as fh:
        fh.write("\n[prompts]\nmax_seconds = 1\n")
    src = tmp_path / "two.wav"
    _write_tone(src, 2.0)
    error_line(invoke("--config", cfg, "prompt", "add", "welcome", src), "longer than the 1 s", "max_seconds")
    assert not (tmp_path / "sounds").exists() or not list((tmp_path / "sounds").rglob("*.wav"))


def test_prompt_conversion_memory_is_bounded(tmp_path: Path) -> None:
    """Rule: conversion is streamed: memory is a block plus the 8 kHz output, not the decoded source. 60 s of
    44.1 kHz stereo is 42 MB as float64; converting it must stay far below that."""
    src = tmp_path / "minute.wav"
    _write_tone(src, 60.0)
    tracemalloc.start()
    try:
        wav = prompts.convert(src)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(sf.info(io.BytesIO(wav)).duration - 60.0) < 0.01
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


# ---- item 13: directories vpbx creates get explicit modes ------------------------------------------------------------
@pytest.fixture
def umask_000():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_make_dirs_modes_ignore_the_umask(tmp_path: Path, umask_000: None) -> None:
    make_dirs(tmp_path / "a" / "b" / "c")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o755] * 3
    make_dirs(tmp_path / "p" / "q", 0o700)
    assert [mode(tmp_path / p) for p in ("p", "p/q")] == [0o700] * 2
    (tmp_path / "keep").mkdir(mode=0o711)
    make_dirs(tmp_path / "keep" / "x")
    assert mode(tmp_path / "keep") == 0o711           # an existing directory is left as it is


def test_directories_of_init_generate_and_documents_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    ok(invoke("init", "--dir", tmp_path / "var" / "lib" / "vpbx", "--asterisk-config-dir", tmp_path / "etc" / "ast",
              "--sounds-dir", tmp_path / "sounds"))
    for d in ("var", "var/lib", "var/lib/vpbx"):
        assert mode(tmp_path / d) == 0o755, d
    cfg = tmp_path / "var" / "lib" / "vpbx" / "vpbx.toml"
    ok(invoke("--config", cfg, "config", "generate", "--out", tmp_path / "gen" / "x"))
    assert mode(tmp_path / "gen") == mode(tmp_path / "gen" / "x") == 0o755
    with Store.open(tmp_path / "db" / "deep" / "v.db") as store:
        assert store.database_path() is not None
    assert mode(tmp_path / "db") == mode(tmp_path / "db" / "deep") == 0o755
    c = ("--config", cfg)
    _assigned(c)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(PDF)
    ok(invoke(*c, "document", "add", MOSCOW, scan))
    docs = tmp_path / "var" / "lib" / "vpbx" / "documents"
    assert mode(docs) == mode(docs / MOSCOW.lstrip("+")) == 0o700
