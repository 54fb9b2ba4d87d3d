"""Logs (issue 10): `vpbx serve --log-format text|json --log-level ...` on stderr, readable in journald; every other
command's warnings (its own and any vpbx module's, e.g. a database migrated on open) reach stderr as one
`Warning: ...` line through `logging`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from clitools import ok
from vpbx.ari_app import JsonFormatter, TextFormatter, under_journald
from vpbx.cli import main

VPBX = Path(sys.executable).with_name("vpbx")
ANSI = re.compile(r"\x1b\[")


def record(name: str = "vpbx.engine.core", level: int = logging.WARNING, msg: str = "hello %s", args: tuple = ("x",),
           exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


# ---- the formats ----------------------------------------------------------------------------------------------------
def test_json_is_one_object_per_line_with_ts_level_logger_message_and_exc() -> None:
    line = JsonFormatter().format(record(msg="two\nlines %s"))
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"ts", "level", "logger", "message"}
    assert entry["level"] == "WARNING" and entry["logger"] == "vpbx.engine.core" and entry["message"] == "two\nlines x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["ts"])
    failed = json.loads(JsonFormatter().format(record(level=logging.ERROR, exc=True)))
    assert "ValueError: boom" in failed["exc"] and failed["level"] == "ERROR"


def test_the_call_log_lines_stay_as_they_are_in_json() -> None:
    step = json.dumps({"call_id": "c1", "step": "answer"})
    assert JsonFormatter().format(record(name="vpbx.calls", level=logging.INFO, msg=step, args=())) == step


def test_text_is_one_readable_line_without_colours() -> None:
    line = TextFormatter().format(record(msg="bad\x1b[31m\r\nthing %s"))
    assert "\n" not in line and "\r" not in line and not ANSI.search(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING vpbx\.engine\.core: bad\\x1b\[31m\\r\\nthing x",
                        line), line


def test_text_under_journald_has_no_timestamp_and_a_priority_on_every_line() -> None:
    fmt = TextFormatter(journal=True)
    assert fmt.format(record(level=logging.INFO)) == "<6>INFO vpbx.engine.core: hello x"
    assert fmt.format(record(level=logging.WARNING)) == "<4>WARNING vpbx.engine.core: hello x"
    lines = fmt.format(record(level=logging.ERROR, exc=True)).split("\n")
    assert lines[0] == "<3>ERROR vpbx.engine.core: hello x" and len(lines) > 2
    assert all(line.startswith("<3>") for line in lines) and lines[-1] == "<3>ValueError: boom"


def test_journald_is_recognised_only_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as fh:
        st = os.fstat(fh.fileno())
        assert under_journald({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, fh.fileno())
        assert not under_journald({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fh.fileno())
        assert not under_journald({"JOURNAL_STREAM": "junk"}, fh.fileno())
        assert not under_journald({}, fh.fileno())


# ---- vpbx serve, for real (ARI on a closed port: the engine keeps retrying and logging) ----------------------------
def serve_lines(tmp_path: Path, *args: str, journal: bool = False, wait_for: str = "reconnecting",
                timeout: float = 20) -> list[str]:
    config = tmp_path / "vpbx.toml"
    if not config.exists():
        ok(CliRunner().invoke(main, ["init", "--config", str(config), "--dir", str(tmp_path)],
                              env={"VPBX_CONFIG": None, "VPBX_DB": None}))
        config.write_text(config.read_text().replace('url = "http://127.0.0.1:8088"', 'url = "http://127.0.0.1:9"'))
    log = tmp_path / f"serve-{len(list(tmp_path.glob('serve-*')))}.log"
    with open(log, "w") as fh:
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
        if journal:
            st = os.fstat(fh.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        proc = subprocess.Popen([str(VPBX), "--config", str(config), "serve", *args], stdout=fh, stderr=fh, env=env)
    try:
        deadline = time.monotonic() + timeout
        while wait_for not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return log.read_text().splitlines()


def test_serve_logs_text_by_default_and_json_on_request(tmp_path: Path) -> None:
    text = serve_lines(tmp_path)
    assert text and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ", line)
                        for line in text), text
    assert any("vpbx engine stopping" in line for line in text)
    assert not any(" DEBUG " in line for line in text)                 # --log-level info is the default
    entries = [json.loads(line) for line in serve_lines(tmp_path, "--log-format", "json", "--log-level", "debug")]
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries), entries
    assert any(e["message"] == "vpbx engine stopping" for e in entries)
    assert any(e["level"] == "DEBUG" for e in entries)
    quiet = serve_lines(tmp_path, "--log-level", "warning", wait_for="no such line", timeout=3)
    assert not any(" INFO " in line for line in quiet), quiet


def test_serve_under_journald_leaves_the_timestamp_to_the_journal(tmp_path: Path) -> None:
    lines = serve_lines(tmp_path, journal=True)
    assert lines and all(re.match(r"<[0-7]>(DEBUG|INFO|WARNING|ERROR) [\w.]+: ", line) for line in lines), lines
    assert any(line.startswith("<6>INFO vpbx.ari_app: vpbx engine stopping") for line in lines)


def test_a_bad_log_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["serve", "--log-format", "xml"])
    assert result.exit_code == 2 and "'xml' is not one of 'text', 'json'" in result.stderr


# ---- every other command: warnings through logging, one line each --------------------------------------------------
PROBE = """
import logging, sys
import vpbx.storage.store as store_module
real_open = store_module.Store.open.__func__
def noisy_open(cls, *args, **kwargs):
    logging.getLogger("vpbx.storage.store").warning("database %s upgraded from schema %d to %d", "x.db", 1, 2)
    logging.warning("on the root logger\\nsecond line")
    logging.getLogger("panoramisk").warning("a library's own chatter")
    logging.getLogger("vpbx.storage.store").info("not shown: below warning")
    return real_open(cls, *args, **kwargs)
store_module.Store.open = classmethod(noisy_open)
from vpbx.cli import main
sys.argv = ["vpbx", *sys.argv[1:]]
main()
"""


def test_a_vpbx_modules_warning_is_one_line_on_stderr_for_any_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VPBX_CONFIG", "VPBX_DB")}
    proc = subprocess.run([sys.executable, "-c", PROBE, "--db", str(tmp_path / "x.db"), "number", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    assert proc.stderr == ("Warning: database x.db upgraded from schema 1 to 2\n"
                           "Warning: on the root logger\\nsecond line\n"), proc.stderr


def test_the_cli_warning_handler_is_installed_once_and_follows_the_runners_stderr(tmp_path: Path) -> None:
    from vpbx.commands import output

    runner = CliRunner()
    env = {"VPBX_CONFIG": None, "VPBX_DB": None}
    for _ in range(2):
        result = runner.invoke(main, ["--db", str(tmp_path / "x.db"), "number", "list", "--json"], env=env)
        assert result.exit_code == 0
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, output._StderrHandler)]
    assert len(handlers) == 1
    result = runner.invoke(main, ["--db", str(tmp_path / "x.db"), "number", "list", "--json"], env=env)
    assert result.stderr == ""
    result = runner.invoke(main, ["--db", str(tmp_path / "x.db"), "number", "add", "+74952718459"], env=env)
    assert result.exit_code == 0 and result.stderr == ""


def test_the_clis_own_warnings_go_through_logging_as_one_line() -> None:
    """`warn` (number release, notices not sent yet) logs on vpbx.cli; the CLI handler prints it as one line."""
    from vpbx.commands import output

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            records.append(rec)

    keep = Keep()
    logging.getLogger("vpbx.cli").addHandler(keep)
    try:
        output.warn("something to say\nwith a break")
    finally:
        logging.getLogger("vpbx.cli").removeHandler(keep)
    (rec,) = records
    assert rec.levelno == logging.WARNING
    assert output.CliFormatter().format(rec) == "Warning: something to say\\nwith a break"
